"""Runs and projects (docs/RUNS.md): ``tracklab.init``, run metrics, crash detection, the
watcher that tells servers about runs written by other processes."""
