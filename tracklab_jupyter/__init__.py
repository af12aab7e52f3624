"""tracklab-jupyter: live system, GPU and cluster monitoring inside Jupyter."""

from tracklab_jupyter._version import __version__

__all__ = ["__version__"]
