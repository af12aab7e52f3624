"""OS thread names: tracklab's threads show up by name in top -H and /proc."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from tracklab_jupyter.threads import name_os_thread, os_thread_name, python_name


def test_names_fit_the_kernels_15_bytes() -> None:
    assert os_thread_name("tracklab-store-writer") == b"tl-store-writer"
    assert os_thread_name("tracklab-sampler-slow-cpu") == b"tl-sampler-slow"
    assert os_thread_name("worker") == b"worker"
    assert os_thread_name("trackläb-" + "é" * 10) == "trackläb-éé".encode()  # no half char
    assert python_name("tl-store-writer") == "tracklab-store-writer"
    assert python_name("python3") == "python3"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_thread_gets_its_os_name() -> None:
    seen: list[str] = []

    def run() -> None:
        name_os_thread()
        comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm")
        seen.append(comm.read_text().strip())

    thread = threading.Thread(target=run, name="tracklab-demo-thread-long")
    thread.start()
    thread.join()
    assert seen == ["tl-demo-thread-"]


def test_no_error_without_prctl(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracklab_jupyter.threads as threads

    monkeypatch.setattr(threads, "_prctl", None)  # as off Linux, or a libc without it
    name_os_thread("anything")
