import sys

from tracklab_jupyter.cli import main

sys.exit(main())
