"""Readable numbers: bytes in binary units, rates, percentages."""

from __future__ import annotations

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB")


def format_bytes(value: float, *, decimal: bool = False) -> str:
    """``1536`` -> ``'1.5 KiB'``; ``decimal=True`` uses powers of 1000 (for rates)."""
    units, base = (_DECIMAL, 1000.0) if decimal else (_BINARY, 1024.0)
    size = float(value)
    for unit in units[:-1]:
        if abs(size) < base:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= base
    return f"{size:.1f} {units[-1]}"


def format_rate(value: float) -> str:
    """Bytes per second as ``'12.3 MB/s'`` (decimal, as network and disk tools do)."""
    return format_bytes(value, decimal=True) + "/s"

