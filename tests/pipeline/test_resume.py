"""A run killed with SIGKILL at any moment, then rerun with the same command, completes with the
same result as an uninterrupted run and does not redo finished scans or slice blocks."""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from chemtomo.io.store import RunStore

from runcli import CLI, run_cli

def kill_when(args, ready, timeout_s=300):
    """Start ``chemtomo args``; SIGKILL it as soon as ``ready()`` is true. Returns True if killed."""
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    t0 = time.time()
    try:
        while proc.poll() is None and time.time() - t0 < timeout_s:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return False


def partial_count(store: Path, stage: str) -> int:
    d = store / ".chemtomo" / "partial" / stage
    # finished units only: units being written are hidden temporaries (.KEY.tmp-PID.npz)
    return len([p for p in d.glob("*.npz") if not p.name.startswith(".")]) if d.exists() else 0


def compare(a: RunStore, b: RunStore):
    # the same inputs and deterministic algorithms: equal up to float32 summation order
    for key in ("volumes/708.2", "volumes/710.2", "chem/fraction"):
        np.testing.assert_allclose(a.read(key), b.read(key), rtol=1e-4, atol=1e-6 * np.nanmax(np.abs(a.read(key))),
                                   equal_nan=True)
    np.testing.assert_array_equal(a.read("chem/labels"), b.read("chem/labels"))
    assert a.group_attrs("particles")["n_particles"] == b.group_attrs("particles")["n_particles"]


def test_kill_during_ptychography_resumes(tiny_dataset, reference_run, tmp_path):
    out = tmp_path / "run.zarr"
    args = ["run", str(tiny_dataset / "run.toml"), "--out", str(out), "--no-report"]
    killed = kill_when(args, lambda: partial_count(out, "ptycho") >= 5)
    assert killed, "the run finished before it could be killed during ptychography"
    done_before = partial_count(out, "ptycho")
    assert 5 <= done_before < 18
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    store = RunStore(out, create=False)
    assert store.stage_record("ptycho")["summary"]["resumed"] >= done_before  # finished scans not redone
    compare(store, reference_run)


def test_kill_during_reconstruction_resumes(tiny_dataset, reference_run, tmp_path):
    out = tmp_path / "run.zarr"
    args = ["run", str(tiny_dataset / "run.toml"), "--out", str(out), "--no-report"]
    killed = kill_when(args, lambda: partial_count(out, "recon") >= 2)
    assert killed, "the run finished before it could be killed during reconstruction"
    done_before = partial_count(out, "recon")
    store = RunStore(out, create=False)
    assert store.stage_record("ptycho") is not None and store.stage_record("recon") is None
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ptycho      up to date (skipped)" in r.stdout
    store = RunStore(out, create=False)
    assert store.stage_record("recon")["summary"]["resumed"] >= done_before
    compare(store, reference_run)


def test_changed_setting_redoes_the_stage_and_downstream(tiny_dataset, reference_run, tmp_path):
    import shutil

    out = tmp_path / "run.zarr"
    shutil.copytree(reference_run.path, out)
    cfg = tmp_path / "run.toml"
    cfg.write_text((tiny_dataset / "run.toml").read_text().replace("iterations = 200", "iterations = 10")
                   .replace('manifest = "manifest.csv"', f'manifest = "{tiny_dataset / "manifest.csv"}"'))
    r = run_cli(["run", str(cfg), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    for stage in ("ptycho", "tiltseries", "align"):
        assert f"{stage:<11} up to date (skipped)" in r.stdout
    for stage in ("recon", "fsc", "chem", "particles"):
        assert f"{stage:<11} up to date" not in r.stdout
    assert RunStore(out, create=False).group_attrs("volumes")["iterations"] == 10


def test_fsc_off_skips_only_the_fsc(tiny_dataset, reference_run, tmp_path):
    # the FSC only tunes the segmentation's smoothing (an optional upstream): turning it off must
    # skip that stage and nothing after it, and the particles are redone without it
    import shutil

    out = tmp_path / "run.zarr"
    shutil.copytree(reference_run.path, out)
    cfg = tmp_path / "run.toml"
    cfg.write_text((tiny_dataset / "run.toml").read_text()
                   .replace('manifest = "manifest.csv"', f'manifest = "{tiny_dataset / "manifest.csv"}"')
                   + "[resolution]\nfsc = false\n")
    r = run_cli(["run", str(cfg), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    store = RunStore(out, create=False)
    assert store.stage_record("fsc")["skipped"] == "[resolution] fsc = false"
    rec = store.stage_record("particles")
    assert "skipped" not in rec and rec["summary"]
    assert rec["hash"] != reference_run.stage_record("particles")["hash"]  # redone, not left as it was
