"""How the ptychography stage scales from one to two Dask worker processes.

Simulates the demo dataset once, then runs only the `ptycho` stage of the pipeline into a fresh
store for each cluster size, on a `distributed.LocalCluster` of N single-threaded worker
processes (so N is the parallelism), and prints one table: wall seconds, scans per second and the
speed-up over one worker. Not a test; never run in CI.

    .venv/bin/python benchmarks/pipeline_scaling.py [--workers 1 2] [--out /tmp/scaling]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("/tmp/chemtomo-scaling"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    os.environ.setdefault("CHEMTOMO_FFT_WORKERS", "1")  # one core per worker process: N workers = N cores
    from distributed import Client, LocalCluster

    from chemtomo.io.simulated import write_dataset
    from chemtomo.pipeline import config_for_manifest, run_pipeline
    from chemtomo.simulate import simulate_dataset

    data = args.out / "data"
    if not (data / "manifest.csv").exists():
        write_dataset(data, simulate_dataset(preset="demo", seed=args.seed))
    cfg = config_for_manifest(data / "manifest.csv")
    rows = []
    for n in args.workers:
        store = args.out / f"run-{n}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          env={"CHEMTOMO_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1",
                               "NUMBA_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("chemtomo.ptycho"))  # import cost out of the timing
            t0 = time.perf_counter()
            s = run_pipeline(cfg, store, only=("ptycho",), client=client)
            dt = time.perf_counter() - t0
        n_scans = s.stage_record("ptycho")["summary"]["scans"]
        rows.append((n, dt, n_scans / dt))
    base = rows[0][1]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}")
    print("| workers | ptycho stage (s) | scans/s | speed-up |")
    print("|---:|---:|---:|---:|")
    for n, dt, rate in rows:
        print(f"| {n} | {dt:.1f} | {rate:.2f} | {base / dt:.2f}× |")


if __name__ == "__main__":
    main()
