"""Every setting of the monitor, declared once: name, type, default, bounds, environment
variable and help.

From this one list come the Jupyter extension's traitlets (``c.TrackLab.<name>``), the
options of ``tracklab-jupyter serve`` (``--<name>``), the environment reading of every
process (the server extension, the standalone server, a kernel or script), the checks of
the values, and the README's configuration table (``python -m tracklab_jupyter docs``; a
test fails when it is stale). Precedence, highest first: the command line, a config file,
the environment, the default. The server's request limits are declared the same way in
``server/limits.py``.

This module imports nothing of the package: any layer may read it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Where a setting applies.
JUPYTER, SERVE, KERNEL = "jupyter", "serve", "kernel"
EVERYWHERE = (JUPYTER, SERVE, KERNEL)
#: The ``source`` of values given as command-line options (errors name the option).
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Setting:
    """One setting. ``kind``: float, int, bool, str, list (of str; comma separated in the
    environment) or dict (JSON in the environment). ``low``/``high`` bound numbers
    (inclusive; ``low_open`` makes the lower bound exclusive)."""

    name: str
    kind: str
    default: Any
    help: str
    env: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    unit: str = ""
    where: tuple[str, ...] = EVERYWHERE
    #: The command-line option when it is not the name's (``--log-level``).
    flag: str = ""

    @property
    def option(self) -> str:
        """The command-line option: ``--retention-days``."""
        return self.flag or "--" + self.name.replace("_", "-")

    def bounds_text(self) -> str:
        """The accepted range in words, or ''."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"between {self.low:g} and {self.high:g}{unit}"
        if self.low is not None:
            return f"more than {self.low:g}{unit}" if self.low_open else f"at least {self.low:g}"
        return ""

    def check(self, value: Any, label: str = "") -> Any:
        """``value`` if it is of this setting's kind and within bounds; ValueError naming
        ``label`` (``c.TrackLab.interval: must be between ...``; default: the name)."""
        where = label or self.name
        if self.kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: must be a number, got {value!r}")
            bad = math.isnan(value) or (
                self.low is not None and (value <= self.low if self.low_open
                                          else value < self.low)) or (
                self.high is not None and value > self.high)
            if bad:
                raise ValueError(f"{where}: must be {self.bounds_text()}, got {value!r}")
            return int(value) if self.kind == "int" else float(value)
        return value

    def parse_env(self, text: str) -> Any:
        """The value of ``text`` read from :attr:`env`; ValueError naming the variable."""
        try:
            if self.kind == "float":
                return float(text)
            if self.kind == "int":
                return int(text)
            if self.kind == "bool":
                lowered = text.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError("not a boolean (1/0, true/false, yes/no)")
            if self.kind == "list":
                return [part.strip() for part in text.split(",") if part.strip()]
            if self.kind == "dict":
                value = json.loads(text)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                return value
        except ValueError as exc:
            raise ValueError(f"{self.env}: {exc}: {text[:100]!r}") from None
        return text


_INTERVAL_HELP = "Seconds between samples."

SETTINGS: tuple[Setting, ...] = (
    Setting("interval", "float", 1.0, _INTERVAL_HELP, env="TRACKLAB_INTERVAL", low=0.1,
            high=3600, unit="seconds"),
    Setting("data_dir", "str", "", "Where metrics.db lives (empty: ~/.tracklab).",
            env="TRACKLAB_DATA_DIR"),
    Setting("retention_days", "float", 30.0,
            "Days the 1-minute tier is kept (the longest tier, 1 hour, keeps 365).",
            low=0, low_open=True, unit="days", where=(JUPYTER, SERVE)),
    Setting("enable_cpu", "bool", True, "Sample CPU metrics.", where=(JUPYTER, SERVE)),
    Setting("enable_memory", "bool", True, "Sample memory metrics.", where=(JUPYTER, SERVE)),
    Setting("enable_disk", "bool", True, "Sample disk metrics.", where=(JUPYTER, SERVE)),
    Setting("enable_network", "bool", True, "Sample network metrics.", where=(JUPYTER, SERVE)),
    Setting("enable_gpu", "bool", True,
            "Sample accelerators: NVIDIA and AMD GPUs, Ascend NPUs, TPUs.",
            where=(JUPYTER, SERVE)),
    Setting("gpus", "list", [],
            "Accelerators to monitor: GPU indices (host-wide, all vendors), npu.N / tpu.N, "
            "or UUIDs; empty means all (each vendor's CUDA_/HIP_/ASCEND_RT_VISIBLE_DEVICES "
            "applies).", env="TRACKLAB_GPUS"),
    Setting("batch_size", "int", 100, "Samples per write to SQLite.", low=1,
            where=(JUPYTER, SERVE)),
    Setting("flush_interval", "float", 1.0,
            "Longest wait before samples are written; other processes see new samples "
            "this late.", low=0.05, high=60, unit="seconds", where=(JUPYTER, SERVE)),
    Setting("cache_size", "int", 1000,
            "Samples kept in memory for live readers while the store cannot be written.",
            low=1, where=(JUPYTER, SERVE)),
    Setting("log_level_name", "str", "", "Log level of tracklab's own loggers (DEBUG, INFO, "
            "WARNING, ...); serve's --verbose is DEBUG.", env="TRACKLAB_LOG_LEVEL",
            where=(JUPYTER, SERVE), flag="--log-level"),
    Setting("cluster", "str", "local",
            "Nodes to monitor besides this host: 'local' (this host alone), "
            "'dask://HOST:PORT' (a Dask scheduler), 'ray:auto' or 'ray://HOST:PORT'.",
            env="TRACKLAB_CLUSTER", where=(JUPYTER, SERVE)),
    Setting("cluster_node_timeout", "float", 10.0,
            "Seconds without an answer before a cluster node is down.", low=0,
            low_open=True, unit="seconds", where=(JUPYTER, SERVE)),
    Setting("cluster_per_worker", "bool", False,
            "Monitor each Dask worker or Ray node as its own node even when several share a "
            "host (tests, demos).", where=(JUPYTER, SERVE)),
    Setting("kernel_interval", "float", 5.0,
            "Seconds between reads of every kernel's process tree (CPU, memory, threads, "
            "accelerator memory).", low=0.5, high=3600, unit="seconds", where=(JUPYTER,)),
    Setting("alerts", "dict", {},
            "Alert rules, by name, each a dict of its settings; {'memory': {'enabled': "
            "False}} turns one off. See docs/ALERTS.md.", env="TRACKLAB_ALERTS"),
    # The standalone server in production (docs/DEPLOY.md).
    Setting("certfile", "str", "",
            "PEM certificate (chain) to serve HTTPS with; needs keyfile.",
            env="TRACKLAB_CERTFILE", where=(SERVE,)),
    Setting("keyfile", "str", "", "PEM private key of certfile (not encrypted).",
            env="TRACKLAB_KEYFILE", where=(SERVE,)),
    Setting("hsts_seconds", "int", 0,
            "Strict-Transport-Security max-age sent over HTTPS; 0: no HSTS header.",
            low=0, unit="seconds", where=(SERVE,)),
    Setting("allow_origin", "list", [],
            "Browser origins allowed cross-origin (CORS and the WebSocket), such as "
            "https://dash.example.org; an entry starting with ^ is a regular expression "
            "matched against the whole origin, * allows any. Empty: same-origin only.",
            env="TRACKLAB_ALLOW_ORIGIN", where=(SERVE,)),
    Setting("read_token", "str", "",
            "A second token that may read (GET, WebSocket, /metrics) but not edit or delete "
            "runs (403). Never logged.", env="TRACKLAB_READ_TOKEN", where=(SERVE,)),
    Setting("read_only", "bool", False,
            "Refuse every edit (PATCH, DELETE) whatever the token.", where=(SERVE,)),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: The defaults, by name (copies for the mutable ones are made by :func:`resolve`).
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}
DEFAULT_INTERVAL: float = DEFAULTS["interval"]


def from_env(environ: Mapping[str, str], where: str = KERNEL) -> dict[str, Any]:
    """The settings given by environment variables (set and not empty) for a process of
    kind ``where``; ValueError names a variable that does not parse."""
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env and where in setting.where:
            text = environ.get(setting.env, "")
            if text.strip():
                out[setting.name] = setting.parse_env(text)
    return out


@dataclass
class Resolved:
    """The settings of one process, each checked, and where each came from: ``source``
    (``c.TrackLab``, ``command line``), its environment variable, or ``default``."""

    values: dict[str, Any]
    origins: dict[str, str]

    def origin(self, name: str) -> str:
        """How an error about ``name`` names it: ``c.TrackLab.alerts``, ``TRACKLAB_ALERTS``."""
        origin = self.origins.get(name, "default")
        setting = BY_NAME[name]
        if origin == setting.env:
            return origin
        if origin == COMMAND_LINE:
            return setting.option
        return f"{origin}.{name}" if origin != "default" else name


def resolve(given: Mapping[str, Any], environ: Mapping[str, str], where: str,
            source: str) -> Resolved:
    """Every setting of a process of kind ``where``: ``given`` (the command line or config;
    None means not given) over the environment over the defaults, each checked. ValueError
    names a bad one as ``source.name``, or by its environment variable."""
    values = {s.name: _copy(s.default) for s in SETTINGS if where in s.where}
    origins = dict.fromkeys(values, "default")
    for name, value in from_env(environ, where).items():
        values[name], origins[name] = value, BY_NAME[name].env
    for name, value in given.items():
        if value is not None and name in values:  # other options are not settings
            values[name], origins[name] = value, source
    resolved = Resolved(values, origins)
    for name, value in values.items():
        values[name] = BY_NAME[name].check(value, resolved.origin(name))
    return resolved


def check_all(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` (by setting name) each checked, errors naming ``source.name``."""
    return {name: BY_NAME[name].check(value, f"{source}.{name}")
            for name, value in values.items()}


def _copy(value: Any) -> Any:
    return type(value)(value) if isinstance(value, (list, dict)) else value


def traits() -> dict[str, Any]:
    """One traitlet per setting that applies to the Jupyter extension, its default read
    from the environment (``c.TrackLab.<name>`` and the command line win over it)."""
    from traitlets import Bool, Dict, Float, Int, List, Unicode

    kinds = {"float": Float, "int": Int, "bool": Bool, "str": Unicode, "dict": Dict}
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        if JUPYTER not in setting.where:
            continue
        help_ = setting.help + (f" Env: {setting.env}." if setting.env else "")
        trait = List(Unicode(), help=help_) if setting.kind == "list" else \
            kinds[setting.kind](help=help_)
        out[setting.name] = trait.tag(config=True)
        out[f"_default_{setting.name}"] = _env_default(setting)
    return out


def _env_default(setting: Setting) -> Any:
    from traitlets import default

    def read(self: Any) -> Any:
        import os

        text = os.environ.get(setting.env, "") if setting.env else ""
        if text.strip():
            try:
                return setting.parse_env(text)
            except ValueError as exc:
                # Kept for the start-up check, which disables the extension with the reason.
                self._env_errors = [*getattr(self, "_env_errors", []), str(exc)]
        return _copy(setting.default)

    return default(setting.name)(read)


def add_arguments(parser: Any, where: str = SERVE, skip: tuple[str, ...] = (),
                  only: tuple[str, ...] | None = None) -> None:
    """One ``--option`` per setting that applies to ``where`` (default None: not given);
    ``only`` limits them to the settings it names."""
    for setting in SETTINGS:
        if where not in setting.where or setting.name in skip:
            continue
        if only is not None and setting.name not in only:
            continue
        env = f"; env {setting.env}" if setting.env else ""
        default = f" (default: {_shown(setting.default)}{env})"
        if setting.kind == "bool":
            from argparse import BooleanOptionalAction

            parser.add_argument(setting.option, dest=setting.name, default=None,
                                action=BooleanOptionalAction,
                                help=setting.help + default)
            continue
        parse: Any = {"float": float, "int": int, "str": str, "list": _comma_list,
                      "dict": _json_object}[setting.kind]
        parser.add_argument(setting.option, dest=setting.name, type=parse, default=None,
                            metavar=setting.unit.upper() or _METAVARS[setting.kind],
                            help=setting.help + default)


_METAVARS = {"float": "SECONDS", "int": "N", "str": "TEXT", "list": "A,B", "dict": "JSON"}


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)  # argparse reports a ValueError as an invalid "JSON object"
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


_comma_list.__name__ = "comma-separated list"
_json_object.__name__ = "JSON object"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if value else "empty"
    if isinstance(value, (list, dict)):
        return json.dumps(value) if value else "empty"
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| setting | default | bounds | environment | where | meaning |",
             "|---|---|---|---|---|---|"]
    names = {JUPYTER: "`c.TrackLab.{}`", SERVE: "`serve {}`", KERNEL: "kernels, scripts"}
    for s in SETTINGS:
        where = ", ".join(names[w].format(s.name if w == JUPYTER else s.option)
                          for w in s.where)
        help_ = s.help.replace("|", "\\|")
        lines.append(f"| `{s.name}` | {_shown(s.default)} | {s.bounds_text() or '–'} | "
                     f"{f'`{s.env}`' if s.env else '–'} | {where} | {help_} |")
    return "\n".join(lines) + "\n"
