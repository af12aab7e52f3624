"""The metric catalogue."""
