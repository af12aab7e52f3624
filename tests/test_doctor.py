"""``tracklab-jupyter doctor``: the accelerator, data dir and sampler checks, the exit
status, the JSON, and ``api/health?full=1``. Each failing case is made real where this
machine allows (a lock held by another process, a read-only directory for an unprivileged
user, a full tmpfs in a mount namespace, a store with an old schema); the NVIDIA hardware
is the fake NVML replaying the recorded H200."""

from __future__ import annotations

import grp
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import IN_CI, wait_for

from tracklab_jupyter.doctor.accelerators import accelerator_checks
from tracklab_jupyter.doctor.data_dir import data_dir_checks
from tracklab_jupyter.doctor.report import run_checks
from tracklab_jupyter.store.schema import SCHEMA_VERSION, _migrate_to_1

SHIM = Path(__file__).parent / "shim"
ROOT = Path(__file__).resolve().parents[1]


def doctor(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
           timeout: float = 60) -> tuple[int, dict, str]:
    """Run the real command; (exit status, the JSON report, stderr)."""
    cmd = [*prefix, sys.executable, "-m", "tracklab_jupyter", "doctor", "--json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert "Traceback" not in done.stderr, done.stderr
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"not JSON (exit {done.returncode}): {done.stdout[-1500:]}{done.stderr}")
    return done.returncode, report, done.stderr


def finding(report: dict, check: str) -> dict:
    found = [c for c in report["checks"] if c["check"] == check]
    assert found, f"no {check!r} finding in {[c['check'] for c in report['checks']]}"
    return found[0]


def by_check(findings) -> dict:
    return {f.check: f for f in findings}


def make_store(data_dir: Path, version: int) -> Path:
    """A metrics.db whose schema says ``version`` (1: the first release's tables)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = data_dir / "metrics.db"
    conn = sqlite3.connect(db, isolation_level=None)
    _migrate_to_1(conn)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    return db


def as_unprivileged() -> tuple[str, ...]:
    """The command prefix that runs a process without root's permission bypass: still uid
    0 (its Python stays where it is), but without the capabilities that override file
    modes; nothing when this is not root."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if IN_CI:
            pytest.fail("setpriv (util-linux) is needed to test permissions as root")
        pytest.skip("setpriv missing: cannot drop root's capabilities here")
    caps = "-dac_override,-dac_read_search,-fowner"
    return (setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}")


# -- the report ---------------------------------------------------------------------------
def test_a_check_that_raises_becomes_a_problem_and_the_others_still_run():
    def broken():
        raise RuntimeError("library exploded")

    report = run_checks([("accelerators", broken),
                         ("sampler", lambda: accelerator_checks())])
    first = report.findings[0]
    assert (first.status, first.section) == ("problem", "accelerators")
    assert "library exploded" in first.found and "doctor --json" in first.fix
    assert len(report.findings) > 1 and report.exit_code == 2


# -- accelerators ---------------------------------------------------------------------------
def test_the_recorded_h200s_are_found_with_their_driver(fake_nvml_factory):
    fake_nvml_factory(gpus=2, mode="trace")
    found = by_check(accelerator_checks())
    assert found["nvidia"].status == "ok"
    assert found["nvidia"].found.startswith("2 NVIDIA devices (NVIDIA H200), driver 580.")
    assert found["nvidia"].details == {"devices": 2, "on_host": 2}
    assert found["amd"].status == "skipped"
    assert "visibility" not in "".join(found)


def test_cuda_visible_devices_hiding_gpus_is_a_warning_with_the_fix(fake_nvml_factory,
                                                                    monkeypatch):
    fake_nvml_factory(gpus=2, mode="trace")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    found = by_check(accelerator_checks())
    hidden = found["nvidia visibility"]
    assert hidden.status == "warning"
    assert "CUDA_VISIBLE_DEVICES='1' hides 1 of 2" in hidden.found
    assert "unset CUDA_VISIBLE_DEVICES" in hidden.fix
    # an explicit selection is the user's choice: no warning
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "nvidia visibility" not in by_check(accelerator_checks(["0"]))


def test_no_nvml_library_on_a_machine_with_an_nvidia_gpu_is_a_problem(
        fake_nvml_factory, monkeypatch, tmp_path):
    fake_nvml_factory(library_missing=True)
    (tmp_path / "host" / "dev").mkdir(parents=True)
    (tmp_path / "host" / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
    (tmp_path / "host" / "dev" / "nvidiactl").touch()  # the driver's device file is there
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(tmp_path / "host"))
    found = by_check(accelerator_checks())["nvidia"]
    assert found.status == "problem"
    assert "NVML library not found" in found.found
    assert "pip install nvidia-ml-py" in found.fix and "nvidia-smi" in found.fix
    # the same library missing on a machine without NVIDIA hardware is not applicable
    (tmp_path / "host" / "dev" / "nvidiactl").unlink()
    assert by_check(accelerator_checks())["nvidia"].status == "skipped"


def test_device_files_the_user_may_not_open_name_the_group_to_join(tmp_path):
    host = tmp_path / "host"
    (host / "dev").mkdir(parents=True)
    for name in ("nvidiactl", "nvidia0", "nvidia1"):
        (host / "dev" / name).touch(mode=0o660)
    os.chmod(host / "dev" / "nvidia0", 0o666)  # one the user may open
    group = "video" if _has_group("video") else "nogroup"
    prefix = as_unprivileged()
    for name in ("nvidiactl", "nvidia1"):
        # owned by someone else, in a group the user is not in (root's case as any user's)
        os.chown(host / "dev" / name, 65534 if prefix else -1, grp.getgrnam(group).gr_gid)
    code, report, _ = doctor("--only", "accelerators", prefix=prefix, env={
        "PYTHONPATH": f"{SHIM}{os.pathsep}{ROOT}", "TRACKLAB_FAKE_NVML_GPUS": "2",
        "TRACKLAB_HOST_ROOT": str(host)})
    files = finding(report, "nvidia device files")
    assert code == 2 and report["status"] == "problem"
    assert files["status"] == "problem"
    assert "nvidiactl" in files["found"] and "nvidia1" in files["found"]
    assert "nvidia0" not in files["found"].replace("nvidia0 ", "")
    assert f"usermod -aG {group}" in files["fix"]
    assert finding(report, "nvidia")["status"] == "ok"


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


# -- the data dir ---------------------------------------------------------------------------
def test_a_recording_store_is_all_fine_and_names_the_recorder(tmp_path):
    data = tmp_path / "data"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "tracklab_jupyter", "record", "--data-dir", str(data),
         "--interval", "0.2", "--flush-interval", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for(lambda: (data / "recorder.lock").exists()
                 and (data / "recorder.lock").read_text().strip(), 30, "the recorder lock")
        wait_for(lambda: finding(doctor("--only", "data-dir", "--data-dir", str(data))[1],
                                 "newest sample")["status"] == "ok", 30, "a stored sample")
        code, report, _ = doctor("--only", "data-dir", "--data-dir", str(data))
        assert code == 0 and report["status"] == "ok", report
        lock = finding(report, "recorder lock")
        assert f"pid {recorder.pid} " in lock["found"] and "(alive)" in lock["found"]
        assert finding(report, "schema")["found"] == f"schema version {SCHEMA_VERSION} (current)"
        assert "raw " in finding(report, "size")["found"]
        assert finding(report, "SQLite")["found"].startswith(f"SQLite {sqlite3.sqlite_version}")
        assert not list(data.glob(".tracklab-doctor*")), "the write probes were left behind"
    finally:
        recorder.terminate()
        recorder.wait(20)
    code, report, _ = doctor("--only", "data-dir", "--data-dir", str(data))
    assert finding(report, "recorder lock")["found"].startswith("free")


def test_a_missing_data_dir_is_a_warning_and_the_exit_status_says_so(tmp_path):
    code, report, _ = doctor("--only", "data-dir", "--data-dir", str(tmp_path / "none"))
    assert code == 1 and report["exit_code"] == 1 and report["status"] == "warning"
    assert "jupyter lab" in finding(report, "directory")["fix"]


def test_text_output_marks_each_check_and_gives_the_fix(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "doctor", "--only", "data-dir",
         "--data-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 1
    assert "⚠ directory:" in done.stdout and "\n      fix: start the monitor" in done.stdout
    assert "0 ok, 1 warnings, 0 problems" in done.stdout


def test_an_old_schema_is_a_warning_and_a_newer_one_a_problem(tmp_path):
    make_store(tmp_path / "old", 1)
    found = by_check(data_dir_checks(tmp_path / "old"))["schema"]
    assert found.status == "warning"
    assert f"schema version 1, older than this version's {SCHEMA_VERSION}" in found.found
    assert "restart" in found.fix
    make_store(tmp_path / "new", SCHEMA_VERSION + 1)
    code, report, _ = doctor("--only", "data-dir", "--data-dir", str(tmp_path / "new"))
    newer = finding(report, "schema")
    assert code == 2 and newer["status"] == "problem"
    assert "pip install -U tracklab-jupyter" in newer["fix"]
    # the doctor looked, it did not migrate
    conn = sqlite3.connect(tmp_path / "old" / "metrics.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_lock_held_while_it_names_a_dead_pid_is_a_problem(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock = data / "recorder.lock"
    lock.write_text(json.dumps({"pid": gone.pid, "hostname": os.uname().nodename,
                                "since": time.time() - 3600}))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, report, _ = doctor("--only", "data-dir", "--data-dir", str(data))
        found = finding(report, "recorder lock")
        assert code == 2 and found["status"] == "problem"
        assert f"pid {gone.pid} " in found["found"] and "not running" in found["found"]
        assert f"the kernel says pid {holder.pid}" in found["found"]
        assert f"fuser -v {lock}" in found["fix"]
    finally:
        holder.kill()
        holder.wait()
    # released: the same file is only history now
    assert finding(doctor("--only", "data-dir", "--data-dir", str(data))[1],
                   "recorder lock")["status"] == "ok"


def test_a_live_recorder_that_stopped_writing_is_a_problem(tmp_path):
    data = tmp_path / "data"
    db = make_store(data, SCHEMA_VERSION)
    conn = sqlite3.connect(db, isolation_level=None)
    hour_ago_ms = int((time.time() - 3600) * 1000)
    conn.execute("INSERT INTO raw_ticks VALUES (1, ?, ?, 1, x'00')",
                 (hour_ago_ms - 1000, hour_ago_ms))
    conn.close()
    lock = data / "recorder.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, json, os, socket, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, json.dumps({'pid': os.getpid(), 'hostname': socket.gethostname(),"
         " 'since': time.time()}).encode())\nprint('held', flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, report, _ = doctor("--only", "data-dir", "--data-dir", str(data))
    finally:
        holder.kill()
        holder.wait()
    found = finding(report, "recorder lock")
    assert code == 2 and found["status"] == "problem"
    assert f"held by pid {holder.pid} " in found["found"]
    assert "newest sample is 60 min old: the recorder is stuck" in found["found"]
    assert finding(report, "newest sample")["status"] == "skipped"


def test_a_read_only_data_dir_is_a_problem(tmp_path):
    data = tmp_path / "data"
    make_store(data, SCHEMA_VERSION)
    data.chmod(0o500)
    try:
        code, report, _ = doctor("--only", "data-dir", "--data-dir", str(data),
                                 prefix=as_unprivileged())
    finally:
        data.chmod(0o700)
    writable = finding(report, "writable")
    assert code == 2 and writable["status"] == "problem"
    assert "Permission denied" in writable["found"] and f"chmod u+w {data}" in writable["fix"]
    assert finding(report, "SQLite")["status"] == "problem"
    assert finding(report, "permissions")["status"] == "ok"


def test_a_full_disk_is_a_problem(tmp_path):
    """A real full filesystem: a 512 KiB tmpfs in a mount namespace of its own, filled."""
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-rm", "true"], capture_output=True) \
        if unshare else None
    if probe is None or probe.returncode != 0:
        if IN_CI:
            pytest.fail("unshare -rm (user and mount namespaces) is needed for the full-disk test")
        pytest.skip("no user namespaces here")
    data = tmp_path / "data"
    data.mkdir()
    store = make_store(tmp_path / "seed", SCHEMA_VERSION)
    script = (f"mount -t tmpfs -o size=512k,mode=700 tmpfs {data} && cp {store} {data}/ && "
              f"(dd if=/dev/zero of={data}/fill bs=4k 2>/dev/null; true) && "
              f"exec {sys.executable} -m tracklab_jupyter doctor --json --only data-dir "
              f"--data-dir {data}")
    done = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    report = json.loads(done.stdout)
    free = finding(report, "free space")
    assert done.returncode == 2 and free["status"] == "problem"
    assert free["found"].startswith("0 B free of 512.0 KiB") and "full" in free["found"]
    assert "free space" in free["fix"] and "TRACKLAB_DATA_DIR" in free["fix"]
    assert finding(report, "writable")["status"] == "problem"
    assert finding(report, "schema")["status"] == "ok"  # the store itself still reads


def test_a_recorder_that_cannot_write_is_a_problem(tmp_path):
    (tmp_path / "data").mkdir(mode=0o700)
    found = by_check(data_dir_checks(tmp_path / "data", writer={
        "failing": True, "last_error": "database or disk is full", "pending_samples": 120}))
    assert found["writes"].status == "problem"
    assert "database or disk is full; 120 samples wait" in found["writes"].found


def test_a_bad_environment_setting_is_a_finding_not_a_traceback(tmp_path):
    code, report, _ = doctor("--only", "data-dir", env={"TRACKLAB_INTERVAL": "soon"})
    bad = finding(report, "settings")
    assert code == 2 and bad["status"] == "problem" and "TRACKLAB_INTERVAL" in bad["found"]


@pytest.mark.parametrize("args, message", [
    (("--timeout", "0"), "--timeout must be more than 0"),
    (("--url", "ftp://x"), "--url must start with http:// or https://"),
    (("--cafile", "/nonexistent.pem", "--url", "https://127.0.0.1:1/"), "no such file"),
    (("--only", "everything"), "invalid choice"),
])
def test_bad_options_get_one_clear_line(args, message):
    done = subprocess.run([sys.executable, "-m", "tracklab_jupyter", "doctor", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# -- the sampler ---------------------------------------------------------------------------
def test_the_sampler_section_times_a_sample_and_lists_the_slow_reads():
    code, report, _ = doctor("--only", "sampler", env={
        "PYTHONPATH": f"{SHIM}{os.pathsep}{ROOT}", "TRACKLAB_FAKE_NVML_GPUS": "1"})
    cost = finding(report, "cost")
    assert code == 0 and cost["status"] == "ok"
    assert cost["details"]["wall_ms"] > 0 and "nvidia" in cost["found"]
    slow = {c["found"].split(":")[0]: c for c in report["checks"] if c["check"] == "slow thread"}
    assert {"cpu", "disk", "network", "nvidia"} <= set(slow)
    assert "energy_j" in slow["nvidia"]["found"] and "every 5 s" in slow["nvidia"]["found"]


# -- api/health?full=1 -------------------------------------------------------------------------
async def test_health_full_carries_the_doctor_report(jp_fetch, tracklab_server):
    async def health(**params):
        reply = await jp_fetch("tracklab", "api", "health", params=params)
        return json.loads(reply.body)

    plain = await health()
    assert "doctor" not in plain
    body: dict = {}
    for _ in range(100):  # the sampler's first samples
        body = await health(full="1")
        if body["doctor"]["checks"] and any(
                c["check"] == "cost" and c["status"] == "ok" for c in body["doctor"]["checks"]):
            break
        await _sleep(0.2)
    doctor_ = body["doctor"]
    sections = {c["section"] for c in doctor_["checks"]}
    assert {"accelerators", "data dir", "jupyter", "sampler"} <= sections
    assert finding(doctor_, "server extension")["found"].endswith("running in this server")
    assert "samples)" in finding(doctor_, "cost")["found"]
    lock = finding(doctor_, "recorder lock")
    assert f"pid {os.getpid()} " in lock["found"] and "(alive)" in lock["found"]
    assert doctor_["status"] in ("ok", "warning", "problem")


async def test_health_full_refuses_other_values(jp_fetch, tracklab_server):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("tracklab", "api", "health", params={"full": "yes"})
    assert err.value.code == 400
    assert "full is one of 0, 1" in json.loads(err.value.response.body)["detail"]


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
