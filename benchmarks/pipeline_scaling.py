"""How ptychography, alignment and reconstruction scale from one to two Dask worker processes.

On a ``distributed.LocalCluster`` of N single-threaded worker processes (FFT and numba threads
pinned to one per worker, so N is the parallelism), for each N in turn:

- ``ptycho``: the `ptycho` stage of the pipeline on the demo dataset (62 scans of 54 frames of
  64², the pipeline's default ptychography settings), through ``run_pipeline`` exactly as ``chemtomo run --scheduler tcp://…`` does,
  into a fresh store;
- ``align``: ``chemtomo.align.align`` with ``client=``, i.e. the reconstruction and reprojection
  of every outer iteration as tasks over blocks of slices and the registrations as tasks over
  blocks of angles (what the pipeline's `align` stage does when ``compute.scheduler`` is set), on
  a simulated two-energy series: 96×144 px projections, 79 angles over −80..77°, the
  simulator's misalignment, OD noise 0.01; 3 binned + 4 full outer iterations of 3 ART sweeps;
- ``align-paper`` (not in the default parts): the same ``align`` call on the paper preset's own
  OD tilt series (158 angles, 170×274 px, two energies), as ``benchmarks/pipeline_paper.py``
  left them in its store; the size at which the alignment's serial steps (energy registration,
  coarse alignment, the client's warp and gauge steps) stop dominating;
- ``recon``: ART-20 of one energy of that series (96 slices of 144²) as tasks over blocks of
  8 slices, the pipeline's `recon` stage (its ``_recon_block`` task).

The client code is the same for any scheduler: pass ``--scheduler tcp://HOST:PORT`` to run the
align and recon parts against a running cluster instead of local ones. Not a test; never in CI.

    .venv/bin/python benchmarks/pipeline_scaling.py [--workers 1 2] [--parts ptycho align recon] [--out /tmp/scaling]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

WORKER_ENV = {"CHEMTOMO_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _series(seed: int = 3):
    from chemtomo.simulate import draw_misalignment, misalign, od_tilt_series, plate_sample
    sample = plate_sample((96, 144, 144), 6.7e-9, n_particles=16, seed=seed)
    angles = np.linspace(-80.0, 77.0, 79)
    energies = (708.2, 710.2)
    od = od_tilt_series(sample, energies, angles, noise_sigma=0.01, seed=seed)
    truth = draw_misalignment(angles.size, energies, seed=seed)
    return {e: misalign(v, truth, e) for e, v in od.items()}, angles


def _paper_sim_series(seed: int = 3):
    """The paper preset's sample and geometry (158 angles, −80..77°, 6.7 nm voxels, 80 plates)
    projected directly to OD and misaligned: the ``align-paper`` problem without the 30-minute
    ptychography run that ``pipeline_paper.py`` needs to make it."""
    from chemtomo.simulate import draw_misalignment, misalign, od_tilt_series, plate_sample
    from chemtomo.simulate.experiment import PRESETS
    p = PRESETS["paper"]
    sample = plate_sample(p.shape, p.voxel_m, n_particles=p.n_particles, seed=seed)
    angles = np.linspace(-80.0, 77.0, 158)
    od = od_tilt_series(sample, p.energies_ev, angles, noise_sigma=0.01, seed=seed)
    truth = draw_misalignment(angles.size, p.energies_ev, seed=seed)
    return {e: misalign(v, truth, e) for e, v in od.items()}, angles


def _ptycho(client, out: Path, n: int, seed: int) -> tuple[float, str]:
    from chemtomo.io.simulated import write_dataset
    from chemtomo.pipeline import config_for_manifest, run_pipeline
    from chemtomo.simulate import simulate_dataset
    data = out / "data"
    if not (data / "manifest.csv").exists():
        write_dataset(data, simulate_dataset(preset="demo", seed=seed))
    cfg = config_for_manifest(data / "manifest.csv")
    store = out / f"run-{n}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    client.run(lambda: __import__("chemtomo.ptycho"))  # import cost out of the timing
    t0 = time.perf_counter()
    s = run_pipeline(cfg, store, only=("ptycho",), client=client)
    dt = time.perf_counter() - t0
    return dt, f"{s.stage_record('ptycho')['summary']['scans'] / dt:.2f} scans/s"


def _align(client, series) -> tuple[float, str]:
    from chemtomo.align import ReprojectionOptions, align
    raw, angles = series
    opts = ReprojectionOptions(recon_iterations=3, binned_iterations=3)
    client.run(lambda: __import__("chemtomo.align"))
    t0 = time.perf_counter()
    al = align(raw, angles, iterations=4, algorithm="art", tol_px=1e-6, options=opts, client=client)
    dt = time.perf_counter() - t0
    return dt, f"{len(al.history) - 1} outer iterations, residual {np.mean(al.history[-1].residual):.4f}"


def _paper_series(path: Path):
    """The paper preset's OD tilt series as the pipeline made them (``pipeline_paper.py``'s store)."""
    import zarr
    g = zarr.open_group(str(path / "tiltseries"), mode="r")
    energies = [k for k in g.array_keys() if not k.startswith("phase_")]
    return ({float(k): np.asarray(g[k]) for k in energies},
            np.asarray(g[energies[0]].attrs["angles_deg"], float))


def _recon(client, series) -> tuple[float, str]:
    from distributed import wait

    from chemtomo.pipeline.tomo_stage import _recon_block
    raw, angles = series
    tilt = raw[708.2]
    options = {"algorithm": "art", "iterations": 20, "nonneg": True}
    client.run(lambda: __import__("chemtomo.tomo"))
    t0 = time.perf_counter()
    futs = [client.submit(_recon_block, tilt[:, y0:y0 + 8], angles, options, pure=False)
            for y0 in range(0, tilt.shape[1], 8)]
    wait(futs)
    vol = np.concatenate(client.gather(futs), axis=0)
    dt = time.perf_counter() - t0
    return dt, f"{vol.shape[0]} slices of {vol.shape[1]}×{vol.shape[2]}, {len(futs)} tasks"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--parts", nargs="+", default=["ptycho", "align", "recon"],
                    choices=["ptycho", "align", "recon", "align-paper"],
                    help="align-paper: the alignment on the paper preset's own tilt series (158 angles, 170×274 px; "
                         "needs benchmarks/pipeline_paper.py's store, --paper-store)")
    ap.add_argument("--paper-store", type=Path, default=Path(__file__).resolve().parent / "out" / "paper" / "run.zarr")
    ap.add_argument("--paper-sim", action="store_true",
                    help="align-paper on the paper preset's sample projected directly (no pipeline_paper.py store)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/chemtomo-scaling"))
    ap.add_argument("--scheduler", default="", help="a running scheduler's address instead of local clusters")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    os.environ.setdefault("CHEMTOMO_FFT_WORKERS", "1")  # one core per worker process: N workers = N cores
    from distributed import Client, LocalCluster

    series = _series() if {"align", "recon"} & set(args.parts) else None
    paper = None
    if "align-paper" in args.parts:
        paper = _paper_sim_series() if args.paper_sim else _paper_series(args.paper_store)
    load0 = os.getloadavg()
    rows = []
    for n in ([0] if args.scheduler else args.workers):
        if args.scheduler:
            cluster, client = None, Client(args.scheduler)
        else:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   env=WORKER_ENV)
            client = Client(cluster)
        try:
            for part in args.parts:
                if part == "ptycho":
                    dt, what = _ptycho(client, args.out, n, args.seed)
                elif part == "align":
                    dt, what = _align(client, series)
                elif part == "align-paper":
                    dt, what = _align(client, paper)
                else:
                    dt, what = _recon(client, series)
                rows.append((part, n, dt, what))
                print(f"  {part:7s} {n} worker(s) {dt:7.1f} s  {what}  load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}; "
          f"load average at start {load0}, at end {os.getloadavg()}")
    print("| part | workers | seconds | speed-up | |")
    print("|---|---:|---:|---:|---|")
    for part, n, dt, what in rows:
        base = next(r[2] for r in rows if r[0] == part)
        print(f"| {part} | {n} | {dt:.1f} | {base / dt:.2f}× | {what} |")


if __name__ == "__main__":
    main()
