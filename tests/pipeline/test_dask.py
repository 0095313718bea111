"""The same run sent to an existing Dask cluster (two worker processes) gives the same result."""

import numpy as np
from distributed import LocalCluster

from chemtomo.io.store import RunStore

from runcli import run_cli


def test_run_on_a_two_process_cluster_matches_the_local_run(tiny_dataset, reference_run, tmp_path):
    out = tmp_path / "run.zarr"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        r = run_cli(["run", str(tiny_dataset / "run.toml"), "--out", str(out), "--no-report",
                     "--scheduler", cluster.scheduler_address])
    assert r.returncode == 0, r.stderr[-3000:]
    s = RunStore(out, create=False)
    assert s.attrs["config"]["compute"]["scheduler"].startswith("tcp://")
    # scans and slice blocks ran in other processes: the same deterministic result
    for key in ("projections/708.2", "volumes/710.2"):
        np.testing.assert_allclose(s.read(key), reference_run.read(key), rtol=1e-4,
                                   atol=1e-6 * np.abs(reference_run.read(key)).max())


def test_unreachable_scheduler_is_a_clear_error(tiny_dataset, tmp_path):
    r = run_cli(["run", str(tiny_dataset / "run.toml"), "--out", str(tmp_path / "r.zarr"),
                 "--scheduler", "tcp://127.0.0.1:9"])
    assert r.returncode == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr
    # nothing listens there: refused at once, not after distributed's 5 s of retries
    assert "connection refused" in " ".join(r.stderr.split())
