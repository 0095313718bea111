"""One writer per store, and a store damaged by hand is reported and repaired, never a traceback.

Issue 13: a second `chemtomo run` on the store of a run in progress used to run alongside it.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

from runcli import CLI, run_cli
from test_resume import compare

from chemtomo.io.store import RunStore


def _wait_for_lock_holder(out, proc, timeout_s=300):
    lock = out / ".chemtomo" / "lock"
    t0 = time.time()
    while time.time() - t0 < timeout_s and proc.poll() is None:
        text = lock.read_text() if lock.exists() else ""
        if text:
            return json.loads(text)
        time.sleep(0.05)
    raise AssertionError("the first run never took the store's lock")


def test_second_writer_fails_fast_and_a_dead_holders_lock_is_taken_over(tiny_dataset, reference_run, tmp_path):
    out = tmp_path / "run.zarr"
    args = ["run", str(tiny_dataset / "run.toml"), "--out", str(out), "--no-report"]
    first = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        holder = _wait_for_lock_holder(out, first)
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        assert holder["command"].startswith("chemtomo run ") and str(out) in holder["command"]
        for second in (args, ["recon", str(out)]):
            t0 = time.time()
            r = run_cli(second)
            elapsed = time.time() - t0
            assert r.returncode == 1, (r.stdout, r.stderr)
            assert first.poll() is None, "the first run ended before the second was refused; test is void"
            message = " ".join(r.stderr.split())  # rich wraps long lines
            assert f"{out}: in use by another chemtomo process (pid {first.pid} on {socket.gethostname()}" in message
            assert f"started {holder['started']}" in message and "command: chemtomo run" in message
            assert "Traceback" not in r.stderr
            # refused at once: the time of starting Python and importing chemtomo, not of a stage
            # (a whole tiny run takes far longer); 60 s leaves room for a heavily shared machine
            assert elapsed < 60
        # read-only commands take no lock
        assert run_cli(["info", str(out)]).returncode == 0
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # a crash: the lock file keeps its holder's details
        first.wait()
    assert json.loads((out / ".chemtomo" / "lock").read_text())["pid"] == first.pid
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"took over the store's stale lock (pid {first.pid}" in " ".join(r.stdout.split())
    assert "process gone" in r.stdout
    assert (out / ".chemtomo" / "lock").read_text() == ""  # released on a clean exit
    compare(RunStore(out, create=False), reference_run)


def test_damaged_groups_are_reported_and_redone(reference_run, tmp_path):
    out = tmp_path / "run.zarr"
    shutil.copytree(reference_run.path, out)
    # 1. garbage over one chunk of chem/fraction (same size: only the checksum shows it)
    chunk = min(p for p in (out / "chem" / "fraction" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(os.urandom(chunk.stat().st_size))
    r = run_cli(["info", str(out)])
    assert r.returncode == 0 and "DAMAGED" in r.stdout
    text = " ".join(r.stdout.split())
    assert "chem: file fraction/c/" in text and "checksum differs" in text and "redoes stage chem" in text
    # (the HTML report draws what it can: one unreadable section does not cost the report)
    r = run_cli(["export", str(out), "--format", "hdf5", "-o", str(tmp_path / "export")])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "array 'chem/fraction' of group 'chem' is damaged" in " ".join(r.stderr.split())
    r = run_cli(["particles", str(out)])  # a stage alone on a damaged upstream group: says so
    assert r.returncode == 1 and "group 'chem', written by stage 'chem', is damaged" in " ".join(r.stderr.split())
    # 2. and a deleted chunk of a volume (Zarr alone would read it as zeros)
    next(p for p in (out / "volumes" / "710.2" / "c").rglob("*") if p.is_file()).unlink()
    assert "volumes: file 710.2/c/" in " ".join(run_cli(["info", str(out)]).stdout.split())
    r = run_cli(["run", os.path.join(reference_run.attrs["base_dir"], "run.toml"), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    said = " ".join(r.stdout.split())
    assert "chem store group 'chem' is damaged" in said
    assert "recon store group 'volumes' is damaged (file 710.2/c/" in said
    for stage in ("ptycho", "tiltseries", "align", "fsc"):
        assert f"{stage:<11} up to date (skipped)" in r.stdout
    for stage in ("recon", "chem", "particles"):
        assert f"{stage:<11} up to date" not in r.stdout
    store = RunStore(out, create=False)
    assert store.damaged_groups() == {}
    compare(store, reference_run)

