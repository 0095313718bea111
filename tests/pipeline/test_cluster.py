"""A run on a real Dask cluster of separate processes (``dask scheduler`` + two ``dask worker``,
started with Dask's own tools) survives losing workers, and a lost scheduler is one clear line,
exit 1, after which the same command resumes.

The dataset is the pipeline tests' tiny one (18 scans of 32² frames, two energies, 9 angles), with
the reprojection alignment switched on so that every stage that runs on the cluster (ptychography,
the alignment's reconstructions and registrations, the slice-block reconstruction) does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from chemtomo.io.store import RunStore

from tiny import TINY_CONFIG
from dask_procs import DaskProcesses
from runcli import CLI, run_cli

#: reprojection alignment (its loop runs as Dask tasks when a scheduler is given), kept short;
#: SIRT-60 blocks so that the whole run stays around ten seconds on two cores
CLUSTER_CONFIG = (TINY_CONFIG.replace('method = "coarse"', 'method = "reprojection"\niterations = 3\n'
                                      'binned_iterations = 1\ntol_px = 0.001\nresidual_rtol = 0.0')
                  .replace("iterations = 200", "iterations = 60"))
TIMEOUT_S = 120  # any one run; the test fails rather than hangs


@pytest.fixture(scope="module")
def cluster_dataset(tiny_dataset, tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    text = CLUSTER_CONFIG.replace('manifest = "manifest.csv"', f'manifest = "{tiny_dataset / "manifest.csv"}"')
    (d / "run.toml").write_text(text)
    # the workers read the scans and write their own results into the store (one file system here)
    (d / "shared.toml").write_text(text.replace("[compute]\n", "[compute]\nshared_storage = true\n"))
    return d


@pytest.fixture(scope="module")
def local_run(cluster_dataset):
    """The same run on the default local scheduler (threads in one process)."""
    out = cluster_dataset / "local.zarr"
    r = run_cli(["run", str(cluster_dataset / "run.toml"), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    return RunStore(out, create=False)


@pytest.fixture
def dask_procs(tmp_path):
    procs = DaskProcesses(tmp_path / "dask")
    yield procs
    procs.close()  # the finaliser: every scheduler, nanny and worker process, also on failure


def _partials(out, stage: str) -> int:
    d = out / ".chemtomo" / "partial" / stage
    return len([p for p in d.glob("*.npz") if not p.name.startswith(".")]) if d.exists() else 0


def _log(out) -> str:
    p = out / ".chemtomo" / "run.log"
    return p.read_text() if p.exists() else ""


def _start_run(args):
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _compare(a: RunStore, b: RunStore) -> None:
    # Tolerance (measured: identical to the bit on this machine): the scans, slice blocks and
    # registrations are the same deterministic float32
    # computations whether they run in the client's threads or in worker processes; only the
    # order of float32 sums differs (FFT planning, numba reductions). The alignment's
    # Levenberg-Marquardt fits turn that ~1e-7 relative noise into parameter differences
    # far below its 1e-3 px tolerance, and the volumes (μ, 1/m) then differ by ~1e-4 of
    # their maximum at most: 1e-3 of the maximum is a tenth of the OD noise and still fails on
    # any real difference (a wrong shift of one pixel changes edge voxels by ~50 % of it).
    for key in ("projections/708.2", "projections/710.2"):
        np.testing.assert_allclose(a.read(key), b.read(key), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.read("alignment/shifts_px"), b.read("alignment/shifts_px"), atol=0.01)
    for key in ("volumes/708.2", "volumes/710.2"):
        va, vb = a.read(key), b.read(key)
        np.testing.assert_allclose(va, vb, rtol=0, atol=1e-3 * np.abs(vb).max())


def test_workers_killed_during_ptychography_and_alignment(cluster_dataset, local_run, dask_procs):
    address = dask_procs.start_scheduler()
    dask_procs.start_workers(2)
    out = cluster_dataset / "killed.zarr"
    proc = _start_run(["run", str(cluster_dataset / "run.toml"), "--out", str(out), "--no-report",
                       "--scheduler", address, "--profile"])
    killed = []
    t0 = time.time()
    try:
        while proc.poll() is None and time.time() - t0 < TIMEOUT_S and len(killed) < 2:
            if not killed and _partials(out, "ptycho") >= 3:
                # kill -9 one worker process: its nanny starts a new one, Dask reruns its task
                first_nanny, worker = sorted(dask_procs.worker_pids().items())[0]
                os.kill(worker, signal.SIGKILL)
                killed.append(("ptycho", _partials(out, "ptycho")))
            elif len(killed) == 1 and "align: start" in _log(out):
                # now kill the other worker with its nanny: it stays dead, the run ends on one
                nanny = next(p.pid for p in dask_procs.nannies if p.pid != first_nanny)
                os.killpg(nanny, signal.SIGKILL)
                killed.append(("align", "align: done" in _log(out)))
            time.sleep(0.02)
        stdout, stderr = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    assert [k for k, _ in killed] == ["ptycho", "align"], killed
    assert killed[0][1] < 18, "the worker was killed after the ptychography had finished"
    assert killed[1][1] is False, "the second worker was killed after the alignment had finished"
    # --profile: Dask's performance report of the run, beside where the run's report goes
    profile = out.parent / "killed_dask-profile.html"
    assert f"Dask performance report: {profile}" in stdout.replace("\n", "")
    assert "Dask Performance Report" in profile.read_text()
    _compare(RunStore(out, create=False), local_run)


def test_lost_scheduler_is_one_line_and_the_same_command_resumes(cluster_dataset, local_run, dask_procs, tmp_path):
    # with compute.shared_storage: the scans and slice blocks are saved by the workers themselves
    dask_procs.start_scheduler()
    dask_procs.start_workers(2)
    out = cluster_dataset / "lost.zarr"
    toml = str(cluster_dataset / "shared.toml")
    proc = _start_run(["run", toml, "--out", str(out), "--no-report", "--scheduler", dask_procs.address])
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < TIMEOUT_S and _partials(out, "ptycho") < 4:
        time.sleep(0.02)
    dask_procs.kill_scheduler()
    done_before = _partials(out, "ptycho")
    stdout, stderr = _finish(proc)
    assert proc.returncode == 1, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: lost the connection to the Dask scheduler at "), stderr
    assert "rerun the same command to resume" in lines[0]
    assert 4 <= done_before < 18
    # a new scheduler (another address) and new workers; the old workers are gone with it
    dask_procs.close()
    again = DaskProcesses(tmp_path / "dask2")
    try:
        again.start_scheduler()
        again.start_workers(2)
        r = run_cli(["run", toml, "--out", str(out), "--no-report", "--scheduler", again.address])
    finally:
        again.close()
    assert r.returncode == 0, r.stderr[-3000:]
    store = RunStore(out, create=False)
    assert store.stage_record("ptycho")["summary"]["resumed"] >= done_before  # finished scans not redone
    assert store.attrs["config"]["compute"]["shared_storage"] is True
    _compare(store, local_run)


def test_a_partial_result_whose_checksum_differs_is_redone(tmp_path):
    from chemtomo.io.store import write_partial_file

    store = RunStore(tmp_path / "r.zarr")
    folder = store.partial_dir("recon")
    size, crc = write_partial_file(folder, "k", {"block": np.arange(12, dtype=np.float32)}, {"y0": 3})
    arrays, meta = store.load_partial("recon", "k")
    assert meta == {"y0": 3} and arrays["block"][5] == 5 and (folder / "k.npz").stat().st_size == size
    assert not list(folder.glob(".*"))  # no temporaries left
    raw = bytearray((folder / "k.npz").read_bytes())
    raw[-40] ^= 0xFF  # one flipped byte somewhere in the file (as a bad disk or copy would)
    (folder / "k.npz").write_bytes(bytes(raw))
    assert store.load_partial("recon", "k") is None  # redone, not trusted
    assert not (folder / "k.npz").exists() and not (folder / "k.npz.crc32").exists()


def test_cluster_failures_become_one_line_errors():
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    from chemtomo.core.errors import InputError
    from chemtomo.pipeline.cluster import ClusterError, cluster_error

    lost = cluster_error(FutureCancelledError("ptycho-ab", "scheduler-connection-lost"), "tcp://h:1", "r.zarr")
    assert isinstance(lost, ClusterError) and "tcp://h:1" in str(lost) and "r.zarr" in str(lost)
    from types import SimpleNamespace

    killed = cluster_error(KilledWorker("recon-cd", SimpleNamespace(address="tcp://w:2"), 3), "", "r.zarr")
    assert "recon-cd" in str(killed) and "--memory-limit" in str(killed) and "\n" not in str(killed)
    # not cluster failures: left as they are
    assert cluster_error(ValueError("x"), "", "r.zarr") is None
    assert cluster_error(InputError("cannot reach the Dask scheduler"), "", "r.zarr") is None
