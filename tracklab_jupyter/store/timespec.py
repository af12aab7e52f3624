"""Reading times and durations the way people write them.

Times: a ``datetime`` (naive means UTC, like the index of the DataFrames we return), epoch
seconds, an ISO 8601 string, ``"now"``, or a relative string such as ``"-15min"``,
``"-2h"``, ``"now-1d"``. Durations: seconds as a number, a ``timedelta``, or ``"10s"``,
``"1min"``, ``"2h"``, ``"1d"``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

TIME_FORMS = (
    "a datetime (naive means UTC), epoch seconds (1718000000), "
    "an ISO 8601 string ('2025-06-01T12:00:00Z', '2025-06-01 12:00'), "
    "'now', or a relative time ('-30s', '-15min', '-2h', '-1d', '-1w', 'now-90min')"
)
DURATION_FORMS = (
    "seconds as a number (10), a timedelta, or a string with a unit "
    "('500ms', '10s', '1min', '15m', '2h', '1d', '1w')"
)

_UNITS = {
    "ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0, "t": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]+)?\s*$")
_RELATIVE_RE = re.compile(r"^\s*(?:now)?\s*-\s*(.+)$", re.IGNORECASE)


class TimeFormatError(ValueError):
    """A time or duration that could not be read; the message lists the accepted forms."""


def parse_duration(value: Any) -> float:
    """Seconds in ``value`` (see module doc); raises :class:`TimeFormatError`."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        unit = (match.group(2) or "s").lower() if match else None
        if match is None or unit not in _UNITS:
            raise TimeFormatError(
                f"cannot read {value!r} as a duration. Accepted: {DURATION_FORMS}")
        seconds = float(match.group(1)) * _UNITS[unit]
    else:
        raise TimeFormatError(
            f"cannot read {value!r} as a duration. Accepted: {DURATION_FORMS}")
    if not seconds > 0:
        raise TimeFormatError(f"a duration must be positive, got {value!r}")
    return seconds


def parse_time(value: Any, now: float | None = None) -> float:
    """Epoch seconds (UTC) for ``value`` (see module doc); raises :class:`TimeFormatError`."""
    now = time.time() if now is None else now
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hasattr(value, "astype") and str(getattr(value, "dtype", "")).startswith("datetime64"):
        # numpy.datetime64: convert through nanoseconds since the epoch.
        return int(value.astype("datetime64[ns]").astype("int64")) / 1e9
    if not isinstance(value, str):
        raise TimeFormatError(f"cannot read {value!r} as a time. Accepted: {TIME_FORMS}")
    text = value.strip()
    if text.lower() == "now":
        return now
    relative = _RELATIVE_RE.match(text)
    if relative is not None and not re.match(r"^\d{4}-", text):
        try:
            return now - parse_duration(relative.group(1))
        except TimeFormatError:
            raise TimeFormatError(
                f"cannot read {value!r} as a time. Accepted: {TIME_FORMS}") from None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeFormatError(
            f"cannot read {value!r} as a time. Accepted: {TIME_FORMS}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
