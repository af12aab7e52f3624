"""Collectors for metric sources."""
