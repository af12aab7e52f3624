"""The alert rules' settings: defaults, validation, and the effective values.

``c.TrackLab.alerts`` (and ``TRACKLAB_ALERTS`` for the standalone server and a kernel that
records itself) is a dict of rule name to a dict of that rule's settings; anything left out
keeps its default. ``{"memory": False}`` is short for ``{"memory": {"enabled": False}}``.
docs/ALERTS.md describes every rule and setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Rules evaluated where the machine's samples are recorded (one process per data dir).
HOST_RULES = ("memory", "disk", "thermal", "ecc", "device_lost", "node_offline",
              "recorder_stale")
#: Rules evaluated by the server that owns the kernels.
KERNEL_RULES = ("idle_gpu", "kernel_death")
RULES = ("memory", "idle_gpu", "disk", "thermal", "ecc", "device_lost", "node_offline",
         "recorder_stale", "kernel_death")


@dataclass(frozen=True)
class Spec:
    """One numeric setting: its default and the range it may take."""

    default: float
    low: float
    high: float
    unit: str = ""


#: Every rule's numeric settings (``enabled`` is every rule's, True by default).
SPECS: dict[str, dict[str, Spec]] = {
    "memory": {"threshold_pct": Spec(90.0, 1, 100, "%"), "clear_pct": Spec(85.0, 0, 100, "%"),
               "critical_pct": Spec(97.0, 1, 100, "%"), "for_s": Spec(5.0, 0, 3600, "s")},
    "idle_gpu": {"idle_minutes": Spec(30.0, 0.01, 10080, "min"),
                 "idle_util_pct": Spec(5.0, 0, 100, "%")},
    "disk": {"threshold_pct": Spec(95.0, 1, 100, "%"), "clear_pct": Spec(92.0, 0, 100, "%"),
             "for_s": Spec(0.0, 0, 3600, "s")},
    "thermal": {"clear_s": Spec(10.0, 0, 3600, "s")},
    "ecc": {},
    "device_lost": {},
    "node_offline": {},
    "recorder_stale": {"stale_s": Spec(30.0, 1, 86400, "s")},
    "kernel_death": {},
}

#: Environment variable with the settings as JSON, where no Jupyter config applies.
ENV = "TRACKLAB_ALERTS"


@dataclass(frozen=True)
class AlertSettings:
    """The effective settings of every rule: ``rules[name]`` holds ``enabled`` and the
    rule's numbers, defaults filled in."""

    rules: Mapping[str, Mapping[str, Any]]

    def enabled(self, rule: str) -> bool:
        return bool(self.rules[rule]["enabled"])

    def __getitem__(self, rule: str) -> Mapping[str, Any]:
        return self.rules[rule]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """A JSON-ready copy (``api/alerts`` ``rules``)."""
        return {name: dict(values) for name, values in self.rules.items()}


def defaults() -> AlertSettings:
    return AlertSettings({name: {"enabled": True, **{k: s.default for k, s in specs.items()}}
                          for name, specs in SPECS.items()})


def parse_alert_settings(value: Any, source: str = "alerts") -> AlertSettings:
    """Validate ``value`` (a dict of rule name to settings, or None for the defaults) and
    return the effective settings; raise ValueError naming ``source``, the rule and the
    setting, e.g. ``c.TrackLab.alerts.memory.threshold_pct: must be between 1 and 100,
    got 150``."""
    if isinstance(value, AlertSettings):
        return value
    out = {name: dict(values) for name, values in defaults().rules.items()}
    if value is None:
        return AlertSettings(out)
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: must be a dict of rule name to settings, e.g. "
                         f"{{'memory': {{'threshold_pct': 80}}}}, got {_show(value)}")
    for rule, settings in value.items():
        if rule not in SPECS:
            raise ValueError(f"{source}: unknown rule {_show(rule)}; rules: {', '.join(RULES)}")
        where = f"{source}.{rule}"
        if isinstance(settings, bool):
            settings = {"enabled": settings}
        if not isinstance(settings, Mapping):
            raise ValueError(f"{where}: must be a dict of settings (e.g. {{'enabled': False}}) "
                             f"or True/False, got {_show(settings)}")
        specs = SPECS[rule]
        for key, given in settings.items():
            if key == "enabled":
                if not isinstance(given, bool):
                    raise ValueError(f"{where}.enabled: must be True or False, got "
                                     f"{_show(given)}")
                out[rule]["enabled"] = given
                continue
            spec = specs.get(key) if isinstance(key, str) else None
            if spec is None:
                names = ", ".join(["enabled", *specs])
                raise ValueError(f"{where}: unknown setting {_show(key)}; settings of "
                                 f"{rule}: {names}")
            out[rule][key] = _number(f"{where}.{key}", given, spec)
    for rule in ("memory", "disk"):
        _check_order(source, rule, out[rule])
    return AlertSettings(out)


def settings_from_env(environ: Mapping[str, str], source: str = ENV) -> AlertSettings:
    """The settings in ``$TRACKLAB_ALERTS`` (JSON), or the defaults; ValueError when bad."""
    text = environ.get(ENV, "").strip()
    if not text:
        return defaults()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON ({exc}); e.g. "
                         '\'{"memory": {"threshold_pct": 80}}\'') from None
    return parse_alert_settings(value, source)


def _number(where: str, given: Any, spec: Spec) -> float:
    if isinstance(given, bool) or not isinstance(given, int | float):
        raise ValueError(f"{where}: must be a number, got {_show(given)}")
    if not spec.low <= given <= spec.high:  # NaN fails this too
        raise ValueError(f"{where}: must be between {spec.low:g} and {spec.high:g}, got "
                         f"{given!r}")
    return float(given)


def _check_order(source: str, rule: str, values: dict[str, Any]) -> None:
    """Hysteresis needs the clear level below the firing one (and critical not below it)."""
    where = f"{source}.{rule}"
    if values["clear_pct"] >= values["threshold_pct"]:
        raise ValueError(f"{where}.clear_pct: must be below threshold_pct "
                         f"({values['threshold_pct']:g}), got {values['clear_pct']:g}")
    if "critical_pct" in values and values["critical_pct"] < values["threshold_pct"]:
        raise ValueError(f"{where}.critical_pct: must be at least threshold_pct "
                         f"({values['threshold_pct']:g}), got {values['critical_pct']:g}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."
