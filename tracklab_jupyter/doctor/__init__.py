"""``tracklab-jupyter doctor``: what stands between this machine and working monitoring.

Five sections of checks, each a function returning :class:`~report.Finding` objects:
accelerators (``accelerators.py``), the data dir and store (``data_dir.py``), Jupyter
(``jupyter.py``), a standalone server at a URL (``standalone.py``) and the sampler
(``sampler.py``). :func:`diagnose` runs them for the command line; :func:`diagnose_running`
runs the ones that make sense inside a running server, from its own state, for
``api/health?full=1`` and the sidebar's Diagnose button.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tracklab_jupyter.doctor.report import Check, Finding, Report, run_checks

#: Section names, in the order they run (``--only`` takes these).
SECTIONS = ("accelerators", "data-dir", "jupyter", "standalone", "sampler")


@dataclass
class DoctorOptions:
    """What to check. ``url`` turns the standalone section on."""

    data_dir: Path
    gpus: Sequence[str] | None = None
    interval: float = 1.0
    only: Sequence[str] = ()
    url: str = ""
    token: str = ""
    origin: str = ""
    cafile: str = ""
    timeout: float = 5.0


def diagnose(options: DoctorOptions) -> Report:
    """Run every section ``options`` asks for (all but standalone without a URL)."""
    from tracklab_jupyter.doctor.accelerators import accelerator_checks
    from tracklab_jupyter.doctor.data_dir import data_dir_checks
    from tracklab_jupyter.doctor.jupyter import jupyter_checks
    from tracklab_jupyter.doctor.sampler import sampler_checks
    from tracklab_jupyter.doctor.standalone import standalone_checks

    available: dict[str, tuple[str, Check]] = {
        "accelerators": ("accelerators", partial(accelerator_checks, options.gpus)),
        "data-dir": ("data dir", partial(data_dir_checks, options.data_dir)),
        "jupyter": ("jupyter", partial(jupyter_checks, timeout=options.timeout)),
        "standalone": ("standalone server", partial(
            standalone_checks, options.url, token=options.token, origin=options.origin,
            cafile=options.cafile, timeout=options.timeout)),
        "sampler": ("sampler", partial(sampler_checks, options.gpus, options.interval)),
    }
    wanted = [s for s in SECTIONS if (s in options.only if options.only
                                      else s != "standalone" or options.url)]
    return run_checks([available[s] for s in wanted])


def diagnose_running(*, data_dir: Path, gpus: Sequence[str] | None, max_bytes: int,
                     writer: dict[str, Any] | None, sampler: dict[str, Any] | None,
                     collectors: Sequence[Any] = (), in_jupyter: bool = True) -> Report:
    """The checks of a running server, from its own state: its accelerators, data dir
    (with its writer's errors), sampler figures and the installed Jupyter pieces (not in
    the standalone server: ``in_jupyter`` False). Blocking (it opens the vendor libraries
    and the store): call it off the event loop."""
    from tracklab_jupyter.doctor.accelerators import accelerator_checks
    from tracklab_jupyter.doctor.data_dir import data_dir_checks
    from tracklab_jupyter.doctor.sampler import running_sampler_checks

    def sampler_findings() -> list[Finding]:
        return running_sampler_checks(sampler, collectors)

    return run_checks([
        ("accelerators", partial(accelerator_checks, gpus)),
        ("data dir", partial(data_dir_checks, data_dir, max_bytes=max_bytes, writer=writer)),
        ("jupyter", _installation_checks if in_jupyter else _standalone_note),
        ("sampler", sampler_findings),
    ])


def _standalone_note() -> list[Finding]:
    from tracklab_jupyter.doctor.report import skipped

    return [skipped("jupyter", "jupyter", "this is the standalone server; "
                    "`tracklab-jupyter doctor` in a terminal checks the Jupyter pieces")]


def _installation_checks() -> list[Finding]:
    """The Jupyter checks that need no network: what is installed and enabled (a server
    checking itself over HTTP would only learn it answers)."""
    from tracklab_jupyter._version import __version__
    from tracklab_jupyter.doctor.jupyter import labextension_check, versions_check
    from tracklab_jupyter.doctor.report import ok

    # This server runs the extension, whatever its config files say (it may be enabled
    # on the command line or by a JupyterHub spawner).
    loaded = ok("jupyter", "server extension",
                f"tracklab_jupyter {__version__} is running in this server")
    lab, lab_version = labextension_check()
    return [loaded, lab, versions_check(lab_version)]
