"""Subcommands of the tracklab-jupyter command line, one module each."""
