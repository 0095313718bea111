"""The local cluster's workers as processes or threads (``compute.processes``): the same run
either way, and a worker process's log records reach the command's console."""

import logging
import os

import numpy as np
import pytest
from runcli import run_cli

from chemtomo.io.store import RunStore
from chemtomo.pipeline.config import ComputeConfig
from chemtomo.pipeline.context import close_client, local_processes, make_client

TWO_CORES = (os.cpu_count() or 1) >= 2


def test_auto_uses_processes_for_scans_on_two_workers_or_more_from_the_command():
    def auto(workers, kind, stages, can_spawn=True):
        return local_processes(ComputeConfig(workers=workers), kind, stages, can_spawn)

    assert auto(2, "scans", ("ptycho", "tiltseries"))
    assert not auto(2, "scans", ("tiltseries", "recon"))  # no scan to reconstruct
    assert not auto(2, "projections", ("ptycho", "recon"))
    assert not auto(1, "scans", ("ptycho",))
    # from Python (run_pipeline's default): spawning would import an unguarded script afresh
    assert not auto(2, "scans", ("ptycho",), can_spawn=False)
    assert not local_processes(ComputeConfig(workers=4, processes="off"), "scans", ("ptycho",), True)
    assert local_processes(ComputeConfig(workers=1, processes="on"), "od", ("recon",))


@pytest.fixture(scope="module")
def processes_run(tiny_dataset, tmp_path_factory):
    """The tiny run with worker processes, the command's default on two cores (the tiny
    configuration asks for threads, tests/pipeline/tiny.py), logged with -v: (store, stderr)."""
    d = tmp_path_factory.mktemp("processes")
    config = d / "processes.toml"
    config.write_text((tiny_dataset / "run.toml").read_text().replace(
        'manifest = "manifest.csv"', f'manifest = "{(tiny_dataset / "manifest.csv").as_posix()}"')
        .replace('processes = "off"', 'processes = "auto"'))
    r = run_cli(["-v", "run", str(config), "--out", str(d / "run.zarr"), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    return RunStore(d / "run.zarr", create=False), r.stderr


def test_threads_give_the_run_that_worker_processes_give(reference_run, processes_run):
    # reference_run: worker threads (tests/pipeline/tiny.py); processes_run: the command's
    # default, worker processes on two cores or more (threads on one)
    assert reference_run.attrs["config"]["compute"]["processes"] == "off"
    s, _ = processes_run
    assert s.attrs["config"]["compute"]["processes"] == "auto"
    # every scan runs on one core in either (core.fft.one_core), with its own seed: the same
    # projections to the bit; the volumes are sums over blocks whose numba kernels may run on
    # more threads in a worker thread than in a one-thread worker process, which can change the
    # order of float32 additions: float32 rounding over a few hundred SIRT sweeps (rtol 1e-4, as
    # for a run sent to a cluster, tests/pipeline/test_dask.py)
    for key in ("projections/708.2", "projections/710.2"):
        np.testing.assert_array_equal(s.read(key), reference_run.read(key))
    for key in ("volumes/708.2", "volumes/710.2"):
        np.testing.assert_allclose(s.read(key), reference_run.read(key), rtol=1e-4,
                                   atol=1e-6 * np.abs(reference_run.read(key)).max())


@pytest.mark.skipif(not TWO_CORES, reason="worker processes are the default on two cores or more")
def test_worker_process_logs_reach_the_console(processes_run):
    # logged inside a worker process by ptycho.reconstruct, forwarded to this command's handler
    assert "chemtomo.ptycho.reconstruct: ptycho RAAR:30: stopped after" in processes_run[1]


def test_close_client_quiets_worker_processes_before_the_scheduler_goes(monkeypatch):
    # a heartbeat in flight when the scheduler closes is logged by distributed with a traceback
    # (seen once on a run's stderr): the workers' distributed loggers are at CRITICAL before the
    # client and the cluster close
    client = make_client(workers=2, processes=True)
    levels = {}
    close = client.close

    def spy_close(*args, **kwargs):
        levels.update(client.run(lambda: logging.getLogger("distributed.worker").getEffectiveLevel()))
        return close(*args, **kwargs)

    monkeypatch.setattr(client, "close", spy_close)
    close_client(client)
    assert len(levels) == 2 and set(levels.values()) == {logging.CRITICAL}
    assert logging.getLogger("distributed.worker").getEffectiveLevel() < logging.CRITICAL  # this process's untouched


def test_two_local_clusters_at_once_ask_for_no_fixed_port(recwarn):
    # two runs on one machine (or two test processes): each local cluster's HTTP servers take a
    # free port on 127.0.0.1, not distributed's default 8787 ("Port 8787 is already in use")
    clients = [make_client(workers=1), make_client(workers=1)]
    try:
        hosts = {c.cluster.scheduler.http_server.address for c in clients}
    finally:
        # last made, first closed: each client restores the dask config it found (scheduler
        # "dask.distributed" left set would send a later test's dask arrays to no client)
        for c in reversed(clients):
            close_client(c)
    assert hosts == {"127.0.0.1"}
    assert not [w for w in recwarn if "already in use" in str(w.message)]
