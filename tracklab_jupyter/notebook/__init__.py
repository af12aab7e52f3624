"""Notebook surfaces: the live widget, the %tracklab magic and per-cell costs."""
