"""What ``tracklab-jupyter doctor`` found: one :class:`Finding` per check, and the report.

A finding is ``ok``, ``warning`` or ``problem``; ``skipped`` marks a check that does not
apply here (a vendor whose hardware this machine does not have) and never changes the exit
status. Every warning and problem carries ``fix``: the command or setting that fixes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tracklab_jupyter._version import __version__

OK, WARNING, PROBLEM, SKIPPED = "ok", "warning", "problem", "skipped"
#: Worst last; the exit status is the index (0 fine, 1 warnings, 2 problems).
_RANK = {SKIPPED: 0, OK: 0, WARNING: 1, PROBLEM: 2}
SYMBOLS = {OK: "✓", WARNING: "⚠", PROBLEM: "✗", SKIPPED: "–"}
_ASCII = {OK: "ok", WARNING: "!!", PROBLEM: "XX", SKIPPED: "--"}
_COLOURS = {OK: "32", WARNING: "33", PROBLEM: "31", SKIPPED: "2"}


@dataclass(frozen=True)
class Finding:
    """One check's result: ``found`` is one line of what it saw, ``fix`` what to do."""

    section: str
    check: str
    status: str
    found: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in _RANK:
            raise ValueError(f"status must be one of {', '.join(_RANK)}, not {self.status!r}")
        if self.status in (WARNING, PROBLEM) and not self.fix:
            raise ValueError(f"{self.section}/{self.check}: a {self.status} needs a fix")


def ok(section: str, check: str, found: str, **details: Any) -> Finding:
    return Finding(section, check, OK, found, details=details)


def warning(section: str, check: str, found: str, fix: str, **details: Any) -> Finding:
    return Finding(section, check, WARNING, found, fix, details)


def problem(section: str, check: str, found: str, fix: str, **details: Any) -> Finding:
    return Finding(section, check, PROBLEM, found, fix, details)


def skipped(section: str, check: str, found: str, **details: Any) -> Finding:
    return Finding(section, check, SKIPPED, found, details=details)


def duration_words(seconds: float) -> str:
    """An age as people say it: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def worst(findings: Iterable[Finding]) -> str:
    status = OK
    for finding in findings:
        if _RANK[finding.status] > _RANK[status]:
            status = finding.status
    return status


@dataclass
class Report:
    """Every finding, in the order the checks ran."""

    findings: list[Finding]
    took_s: float = 0.0

    @property
    def status(self) -> str:
        return worst(self.findings)

    @property
    def exit_code(self) -> int:
        return _RANK[self.status]

    def merged(self, other: Report) -> Report:
        """This report's findings, then ``other``'s."""
        return Report([*self.findings, *other.findings], self.took_s + other.took_s)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_RANK, 0)
        for finding in self.findings:
            out[finding.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "version": __version__,
                "time": time.time(), "took_s": round(self.took_s, 3), "counts": self.counts(),
                "checks": [asdict(f) for f in self.findings]}

    def render(self, *, colour: bool = False, unicode: bool = True) -> str:
        """The report as people read it: one line per check, the fix indented below."""
        lines: list[str] = []
        section = None
        for f in self.findings:
            if f.section != section:
                section = f.section
                lines.append(("" if not lines else "\n") + section)
            mark = (SYMBOLS if unicode else _ASCII)[f.status]
            if colour:
                mark = f"\033[{_COLOURS[f.status]}m{mark}\033[0m"
            lines.append(f"  {mark} {f.check}: {f.found}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
        c = self.counts()
        lines.append(f"\n{c[OK]} ok, {c[WARNING]} warnings, {c[PROBLEM]} problems"
                     + (f", {c[SKIPPED]} not applicable" if c[SKIPPED] else ""))
        return "\n".join(lines) + "\n"


Check = Callable[[], Sequence[Finding]]


def run_checks(sections: Sequence[tuple[str, Check]]) -> Report:
    """Run each section's checks in order. A check that raises becomes a problem finding
    (with the error), never a traceback: the doctor must survive what it diagnoses."""
    started = time.monotonic()
    findings: list[Finding] = []
    for name, check in sections:
        try:
            findings.extend(check())
        except Exception as exc:
            findings.append(problem(
                name, "check", f"the check itself failed: {type(exc).__name__}: {exc}"[:300],
                "report this at the project's issue tracker, with `tracklab-jupyter doctor "
                "--json`"))
    return Report(findings, time.monotonic() - started)
