"""The whole pipeline on a simulated preset, stage by stage: time, peak memory and quality.

Simulates the preset once (cached in ``benchmarks/out/<preset>/data``), then runs every stage of
``chemtomo run`` in turn into a fresh store, through ``run_pipeline`` exactly as the CLI does, and
prints one table: wall seconds of each stage, the peak resident memory while it ran (this process
plus every child process, e.g. Dask worker processes: sampled every 0.2 s from ``/proc`` with
psutil, so peaks shorter than that can be missed) and what the stage produced, then the quality
against the simulation's truth: FRC of the ptychographic projections, the alignment residual
and RMS alignment error against the true misalignment on the sample, the state of charge against
the truth, particles found out of the truth's and how many are active (at the first activity
threshold) against the truth.

    .venv/bin/python benchmarks/pipeline_paper.py [--preset paper|demo] [--out benchmarks/out]
        [--stages ptycho tiltseries ...] [--keep]

The paper preset takes about 15 minutes on the 2-core Intel sandbox (899 s, session 26) (plus about 2 minutes to simulate it
the first time); ``--preset demo`` checks the script in about a minute. Not a test; not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import threading
import time
from pathlib import Path

import numpy as np


class PeakRSS:
    """Peak of the summed resident memory of this process and its children while a block runs."""

    def __init__(self, every_s: float = 0.2):
        import psutil
        self._me = psutil.Process()
        self.every_s = every_s

    def _rss(self) -> int:
        total = 0
        procs = [self._me]
        try:
            procs += self._me.children(recursive=True)
        except Exception:  # a child that ended while listing
            pass
        for p in procs:
            try:
                total += p.memory_info().rss
            except Exception:
                pass
        return total

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())


def _truth_quality(store, data: Path) -> dict:
    """Quality figures of a finished run against the simulation's truth."""
    from chemtomo.align.transform import alignment_error_px
    from chemtomo.io.simulated import read_truth
    from chemtomo.pipeline.tomo_stage import load_alignment

    truth = read_truth(data)
    out = {"soc_truth": float(truth.soc_measured)}
    table = truth.sample.table
    out["particles_truth"] = int(len(table))
    if "fp_fraction" in table.columns:  # active at the pipeline's first threshold (15 %)
        out["active_truth"] = int((table["fp_fraction"] > 0.15).sum())
    try:
        al = load_alignment(_Ctx(store))
        t = truth.alignment
        od0 = truth.od[float(truth.energies_ev[0])]
        ny, nx = od0.shape[1:]
        mask = (od0 > 0).any(axis=0)
        shifts = np.asarray(al.params[0], float).copy()
        if al.shape != (ny, nx):
            # The pipeline's field (the lit part of the ptychographic field) is larger than the
            # truth grid, and both are centred on scan position 0, but with different centre
            # conventions (even against odd sizes): the two frames differ by one constant shift
            # for all angles, which is fitted and removed (2 numbers against 4 per angle).
            shifts += (t.shifts_px - shifts).mean(axis=0)
            out["align_error_note"] = "constant frame offset removed"
        out["align_error_px"] = alignment_error_px((ny, nx), truth.angles_deg, (shifts, al.params[1], al.params[2]),
                                                   (t.shifts_px, t.rotation_deg, t.scale), mask=mask)
    except Exception as exc:  # the figure is optional; say why it is missing
        out["align_error_px"] = f"n/a ({type(exc).__name__}: {exc})"
    try:
        out.update(_voxel_quality(store, truth))
    except Exception as exc:  # optional as well
        out["voxel_note"] = f"n/a ({type(exc).__name__}: {exc})"
    return out


def _crop_to(volume: np.ndarray, shape) -> np.ndarray:
    c = [(a - b) // 2 for a, b in zip(volume.shape, shape)]
    return volume[tuple(slice(o, o + n) for o, n in zip(c, shape))]


def _voxel_quality(store, truth) -> dict:
    """Per-voxel FePO4 fraction against the truth on the plates (truth occupancy > 0.5), as the
    demo's end-to-end test measures it: the store's volume cropped to the truth grid and moved by
    the whole-voxel shift that registers its first energy onto the truth's μ."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    e0 = float(truth.energies_ev[0])
    mu = truth.mu[e0].astype(np.float64)
    shift, _, _ = phase_cross_correlation(mu, _crop_to(store.read(f"volumes/{e0:g}"), mu.shape).astype(np.float64),
                                          upsample_factor=10, normalization=None)
    frac = ndimage.shift(_crop_to(np.nan_to_num(store.read("chem/fraction"), nan=-1.0), mu.shape), np.round(shift),
                         order=0, cval=-1.0)
    frac = np.where(frac < 0, np.nan, frac)
    on = (truth.sample.occupancy > 0.5) & np.isfinite(frac) & np.isfinite(truth.sample.fraction)
    err = frac[on] - truth.sample.fraction[on]
    return {"fraction_mean_error": float(err.mean()), "fraction_rms_error": float(np.sqrt(np.mean(err ** 2))),
            "fp_rich_agreement": float(np.mean((frac[on] > 0.7) == (truth.sample.fraction[on] > 0.7))),
            "voxels_compared": int(on.sum())}


class _Ctx:
    def __init__(self, store):
        self.store = store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper", choices=["paper", "demo"])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", nargs="+", default=None, help="run only these stages (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep (resume) the existing run store")
    ap.add_argument("--force", action="store_true", help="redo the --stages even where the store has them up to date")
    ap.add_argument("--processes", default="auto", choices=["auto", "on", "off"],
                    help="compute.processes: the local cluster's workers as processes or threads")
    ap.add_argument("--algorithm", default=None, help="ptycho.algorithm for this run (default: the pipeline's)")
    ap.add_argument("--no-refine-positions", action="store_true",
                    help="ptycho.refine_positions = false (the scan positions held as the files give them)")
    args = ap.parse_args()

    from chemtomo.io.simulated import write_dataset
    from chemtomo.pipeline import config_for_manifest, run_pipeline
    from chemtomo.pipeline.context import local_processes, make_client
    from chemtomo.pipeline.run import STAGES
    from chemtomo.simulate import simulate_dataset

    root = args.out / args.preset
    data = root / "data"
    if not (data / "manifest.csv").exists():
        t0 = time.perf_counter()
        write_dataset(data, simulate_dataset(preset=args.preset, seed=args.seed))
        print(f"simulated the {args.preset} preset in {time.perf_counter() - t0:.0f} s into {data}")
    store_path = root / "run.zarr"
    if not args.keep:
        shutil.rmtree(store_path, ignore_errors=True)
    ptycho = {"algorithm": args.algorithm} if args.algorithm else {}
    if args.no_refine_positions:
        ptycho["refine_positions"] = False
    overrides = {"compute": {"processes": args.processes}} | ({"ptycho": ptycho} if ptycho else {})
    cfg = config_for_manifest(data / "manifest.csv", overrides)
    names = args.stages or [s.name for s in STAGES]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average at start "
          f"{os.getloadavg()}", flush=True)
    # the local cluster the chemtomo command makes (this script's main is guarded: it may spawn)
    client = make_client(cfg.compute.scheduler, cfg.compute.workers,
                         processes=local_processes(cfg.compute, "scans", names, can_spawn=True))
    rows = []
    t_all = time.perf_counter()
    try:
        for name in names:
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                store = run_pipeline(cfg, store_path, only=(name,), client=client, force=args.force)
                dt = time.perf_counter() - t0
            rec = store.stage_record(name) or {}
            rows.append((name, dt, mem.peak, rec.get("summary", {})))
            print(f"  {name:11s} {dt:8.1f} s  peak {mem.peak / 2**20:7.0f} MiB  {json.dumps(rec.get('summary', {}))}",
                  flush=True)
        if args.stages is None:  # the HTML report, as `chemtomo run` writes it at the end
            from chemtomo.io.export import write_text
            from chemtomo.report import build_report
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                report = write_text(root / "run_report.html", build_report(store))
                dt = time.perf_counter() - t0
            rows.append(("report", dt, mem.peak, {"file": report.name, "MiB": round(report.stat().st_size / 2**20, 1)}))
            print(f"  {'report':11s} {dt:8.1f} s  peak {mem.peak / 2**20:7.0f} MiB", flush=True)
    finally:
        client.close()
    total = time.perf_counter() - t_all
    q = _truth_quality(store, data)
    s = {name: summ for name, _, _, summ in rows}
    print()
    print(f"Preset {args.preset}, seed {args.seed}; total {total:.0f} s ({total / 60:.1f} min); peak memory of the "
          f"whole run {max(r[2] for r in rows) / 2**30:.2f} GiB; load average at end {os.getloadavg()}")
    print()
    print("| stage | seconds | peak RSS (MiB) | result |")
    print("|---|---:|---:|---|")
    for name, dt, peak, summ in rows:
        print(f"| {name} | {dt:.1f} | {peak / 2**20:.0f} | {', '.join(f'{k} {v}' for k, v in summ.items())} |")
    print(f"| **total** | {total:.1f} | {max(r[2] for r in rows) / 2**20:.0f} | |")
    print()
    print("| quality | this run | truth |")
    print("|---|---|---|")
    if "ptycho" in s:
        print(f"| FRC of the projections (nm) | {s['ptycho'].get('frc_nm')} | — |")
    if "align" in s:
        print(f"| alignment residual (mean, last iteration) | {s['align'].get('final_residual')} | — |")
        err = q.get("align_error_px")
        err = f"{err:.3f}" if isinstance(err, float) else err
        print(f"| alignment RMS error on the sample (px{', ' + q['align_error_note'] if 'align_error_note' in q else ''}) | {err} | 0 |")
    if "fsc" in s:
        print(f"| FSC resolution (nm) | {s['fsc'].get('resolution_nm')} | — |")
    if "chem" in s:
        print(f"| state of charge | {s['chem'].get('soc')} ± {s['chem'].get('soc_sigma')} | {q['soc_truth']:.4f} |")
    if "particles" in s:
        if "fraction_rms_error" in q:
            print(f"| FePO4 fraction per voxel on the plates: mean error, RMS error | {q['fraction_mean_error']:.4f}, "
                  f"{q['fraction_rms_error']:.4f} ({q['voxels_compared']} voxels) | 0 |")
            print(f"| voxels in the right FP-rich class (> 70 %) | {100 * q['fp_rich_agreement']:.1f} % | 100 % |")
        print(f"| particles found | {s['particles'].get('particles')} | {q['particles_truth']} |")
        print(f"| active particles | {s['particles'].get('active')} | {q.get('active_truth', '—')} |")


if __name__ == "__main__":
    main()
