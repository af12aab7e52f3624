"""Request parameters, declared once: each one both checks what a client sent and writes
its own OpenAPI entry, so the document cannot accept what the server refuses.

A parameter's ``schema`` is exactly the set of values ``parse`` accepts (the schemathesis
test holds both to that), and ``parse`` turns the text into the value the endpoint uses or
raises :class:`ParamError`, whose message names the parameter and the accepted forms.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracklab_jupyter.server.limits import Limits, clip

Params = Mapping[str, list[str]]

#: Times are clamped to 1970 .. the year 3000: a range reaching past either reads what the
#: store holds inside it.
TIME_MAX = 32503680000.0
TEXT_MAX = 64  # characters of a time or duration

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                 "d": 86400.0, "w": 604800.0}
_UNITS = "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))
# One grammar for durations and relative times: up to 6 digits and a unit ("-15min").
_AMOUNT = rf"([1-9][0-9]{{0,5}})({_UNITS})"
_DURATION_RE = rf"^{_AMOUNT}$"
_RELATIVE_RE = rf"^(?:now)?-{_AMOUNT}$"
_EPOCH_RE = r"^[0-9]{1,11}(?:\.[0-9]{1,6})?$"
_ISO_RE = (r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})"
           r"(?::([0-9]{2})(?:\.([0-9]+))?)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?$")
TIME_FORMS = ("epoch seconds (1718000000), 'now', a relative time ('-30s', '-15min', "
              "'-2h', '-7d', 'now-1w'; up to 6 digits, units ms s sec m min h d w) or an "
              "ISO 8601 date or date-time ('2025-06-01', '2025-06-01T12:00:00Z')")
DURATION_FORMS = "a whole number and a unit, e.g. '10s', '1min', '2h', '1d'"


class ParamError(ValueError):
    """A query or path parameter the server cannot use (400); ``name`` is the parameter."""

    name = ""
    title = ""


@dataclass(frozen=True)
class Param:
    """One parameter: its name, where it is, its JSON Schema, and how its text is read."""

    name: str
    description: str
    schema: dict[str, Any]
    parse: Callable[[str], Any] = str
    location: str = "query"
    default: Any = None
    #: Repeated (``?m=a&m=b``) and comma separated values, read into a list.
    array: bool = False
    max_items: int | None = None

    def openapi(self) -> dict[str, Any]:
        schema = dict(self.schema)
        if self.array:
            schema = {"type": "array", "items": schema, "minItems": 1}
            if self.max_items is not None:
                schema["maxItems"] = self.max_items
        elif self.default is not None:
            schema["default"] = self.default
        out: dict[str, Any] = {"name": self.name, "in": self.location,
                               "required": self.location == "path",
                               "description": self.description, "schema": schema}
        if self.array:
            out["style"] = "form"
            out["explode"] = True
        return out

    def read(self, values: list[str] | None) -> Any:
        """The parsed value from the request's texts (``None`` when absent: the default)."""
        if not values:
            return self.default
        if not self.array:
            return self.parse(values[-1])
        items: list[Any] = []
        for value in values:
            pieces = [p.strip() for p in value.split(",")]
            if not any(pieces):
                raise ParamError(f"{self.name} holds an empty value: give names, separated "
                                 "by commas or repeated")
            items += [self.parse(p) for p in pieces if p]
            if self.max_items is not None and len(items) > self.max_items:
                raise ParamError(f"at most {self.max_items} {self.name} per request (limit "
                                 f"max_patterns); got more")
        return items


def read_params(declared: tuple[Param, ...], params: Params,
                path_args: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every declared parameter, parsed; unknown query parameters are refused."""
    known = {p.name for p in declared if p.location == "query"}
    unknown = sorted(set(params) - known - {"token"})
    if unknown:
        error = ParamError(f"accepted: {', '.join(sorted(known)) or 'none'}")
        error.title = f"unknown query parameter {clip(unknown[0])!r}"
        raise error
    out: dict[str, Any] = {}
    for param in declared:
        try:
            if param.location == "path":
                out[param.name] = param.parse((path_args or {})[param.name])
            else:
                out[param.name] = param.read(params.get(param.name))
        except ParamError as exc:
            exc.name = param.name
            raise
    return out


# -- parsers --------------------------------------------------------------------------

def _bad(name: str, text: str, accepted: str) -> ParamError:
    return ParamError(f"bad {name} {clip(text)!r}: {accepted}")


def integer(name: str, low: int, high: int, limit: str = "") -> Callable[[str], int]:
    bound = f" (limit {limit})" if limit else ""

    def parse(text: str) -> int:
        if not re.fullmatch(r"-?[0-9]{1,19}", text) or not low <= int(text) <= high:
            raise _bad(name, text, f"{name} is an integer from {low} to {high}{bound}")
        return int(text)
    return parse


def choice(name: str, values: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in values:
            raise _bad(name, text, f"{name} is one of {', '.join(values)}")
        return text
    return parse


def matching(name: str, pattern: str, max_chars: int, what: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if len(text) > max_chars or not compiled.search(text):
            raise _bad(name, text, what)
        return text
    return parse


def parse_duration(name: str, text: str) -> float:
    match = re.fullmatch(_DURATION_RE, text)
    if match is None:
        raise _bad(name, text, f"{name} is {DURATION_FORMS}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_time(name: str, text: str, now: float) -> float:
    """Epoch seconds for ``text`` (see TIME_FORMS), clamped to 1970 .. TIME_MAX."""
    if len(text) > TEXT_MAX:
        raise _bad(name, text, f"{name} is at most {TEXT_MAX} characters")
    if text == "now":
        return now
    if (match := re.fullmatch(_RELATIVE_RE, text)) is not None:
        return max(0.0, now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if re.fullmatch(_EPOCH_RE, text):
        return min(float(text), TIME_MAX)
    if (match := re.fullmatch(_ISO_RE, text)) is not None:
        return _iso_seconds(name, text, match)
    raise _bad(name, text, f"{name} is {TIME_FORMS}")


def _iso_seconds(name: str, text: str, match: re.Match[str]) -> float:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         # A leap second (:60) is read as the last instant of its minute.
                         min(int(second or 0), 59), tzinfo=UTC)
    except ValueError as exc:
        if int(year) == 0:
            return 0.0  # year 0 is valid ISO 8601, and long before any data
        raise _bad(name, text, f"not a calendar date-time ({exc})") from None
    value = stamp.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)
    if zone and zone not in "Zz":
        sign = 1 if zone[0] == "+" else -1
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        if int(zone[1:3]) > 23 or int(zone[4:6]) > 59:
            raise _bad(name, text, "a UTC offset is at most +23:59")
        value -= sign * offset
    return min(max(value, 0.0), TIME_MAX)


# -- the parameters the endpoints share ------------------------------------------------

# RFC 3339 date-times and dates are documented; the parser also takes ISO 8601 without
# seconds or zone (UTC), as people type them.
_TIME_SCHEMA = {"type": "string", "maxLength": TEXT_MAX, "anyOf": [
    {"pattern": r"^now$"}, {"pattern": _RELATIVE_RE}, {"pattern": _EPOCH_RE},
    {"format": "date-time"}, {"format": "date"}]}
NAME_CHARS = r"[^,\s]"  # a metric name or glob holds at least one of these


def time_param(name: str, description: str, default: str | None) -> Param:
    # Checked here; the endpoint reads it against one "now" for the whole request.
    def check(text: str) -> str:
        parse_time(name, text, time.time())
        return text
    return Param(name, description, _TIME_SCHEMA, check, default=default)


def names_param(name: str, description: str, limits: Limits) -> Param:
    what = (f"each of {name} is a name or glob of 1 to {limits.max_pattern_chars} "
            f"characters (limit max_pattern_chars)")
    return Param(name, description,
                 {"type": "string", "minLength": 1, "maxLength": limits.max_pattern_chars,
                  "pattern": NAME_CHARS},
                 matching(name, NAME_CHARS, limits.max_pattern_chars, what),
                 array=True, max_items=limits.max_patterns)


def node_param(description: str = "Node name; this host when omitted. Unknown nodes give "
                                  "404.") -> Param:
    return Param("node", description, {"type": "string", "minLength": 1, "maxLength": 200},
                 matching("node", r"^[\s\S]{1,200}$", 200, "a node name of 1 to 200 "
                          "characters"))


def int_param(name: str, description: str, low: int, high: int, default: int | None,
              limit: str = "") -> Param:
    """An integer from ``low`` to ``high``; ``limit`` names the setting that is ``high``."""
    return Param(name, description, {"type": "integer", "minimum": low, "maximum": high},
                 integer(name, low, high, limit), default=default)


def enum_param(name: str, description: str, values: tuple[str, ...], default: str | None
               ) -> Param:
    return Param(name, description, {"type": "string", "enum": list(values)},
                 choice(name, values), default=default)


def duration_param(name: str, description: str) -> Param:
    def check(text: str) -> str:
        parse_duration(name, text)
        return text
    return Param(name, description, {"type": "string", "pattern": _DURATION_RE}, check)
