"""Tomography benchmark: chemtomo against the ASTRA Toolbox (CPU 2D algorithms) and scikit-image.

Data: a simulated field of LiFePO4/FePO4 plates (``chemtomo.simulate.plate_sample``, 40 plates,
64 slices of 256×256 voxels of 6.7 nm), its optical density at 708.2 eV projected on a 2× finer
grid at the paper's 158 angles (−80..77° in 1° steps) with Gaussian OD noise σ = 0.005. The truth
is the OD per voxel of the sample. Every method gets the same tilt series and the same iteration
count; "nonneg" is chemtomo's ``nonneg=True`` and ASTRA's ``MinConstraint=0`` (scikit-image's
``clip=(0, inf)``). Relaxations are matched: ART λ = 0.25 (chemtomo's default; ASTRA ``Lambda``),
SART and SIRT λ = 1 (both defaults).

ASTRA's CPU algorithms are 2D: they run slice by slice, one thread, and their time is exactly
linear in the number of slices, so the slow iterative ones are timed on ``--astra-slices`` slices
(spread over the volume) and scaled to the whole volume (the table says so); FBP runs on all.
Errors are relative L2 errors against the truth, on the slices each method reconstructed; the
chemtomo rows also give the error on those same slices so the comparison is like for like.
Peak memory is the largest rise of the process's resident memory during the method (sampled every
5 ms). All in one process, one method after another.

Run: ``.venv/bin/python benchmarks/tomo.py [--quick] [--astra-slices 4]``; prints a Markdown table.

``--heldout``: ART on a field the defaults were not tuned on (plate field seed 31, 64 slices of
64², 90 angles over −80..77°, OD noise σ 0.01, 20 sweeps, non-negativity): chemtomo's default
ART (spread angle order, λ 1 → 0.1) and its former default (acquisition order, λ 0.25) against
ASTRA's ART at λ 0.25, 0.5, 1 in its default sequential ray order and in a seeded random ray
order (``RayOrder="custom"``), and both SARTs; errors on ``--astra-slices`` common slices (8).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import threading
import time

import numpy as np

from chemtomo.simulate import od_tilt_series, plate_sample, reference_spectra
from chemtomo.tomo import reconstruct
from chemtomo.tomo.operator import operator_for

ENERGY_EV = 708.2
ANGLES = np.arange(-80.0, 78.0, 1.0)
ITER = 20
ART_LAMBDA = 0.25


class PeakRSS:
    """Largest rise of this process's resident memory while the block runs, bytes."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.rise = self.peak - self.base


def make_data(n_slices: int, seed: int = 0):
    sample = plate_sample((n_slices, 256, 256), 6.7e-9, n_particles=max(4, 40 * n_slices // 64),
                          soc=0.5, seed=seed)
    lfp, fp = sample.phase_volumes()
    refs = reference_spectra([ENERGY_EV])
    truth = ((refs.LiFePO4.iloc[0] * lfp + refs.FePO4.iloc[0] * fp) * sample.voxel_m).astype(np.float32)
    tilt = od_tilt_series(sample, [ENERGY_EV], ANGLES, noise_sigma=0.005, seed=seed)[ENERGY_EV]
    return truth, tilt


def rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- ASTRA ---------------------------------------------------------------------------------------

def astra_run(astra, tilt, slices, alg: str, iterations: int, options: dict):
    """Reconstruct the given slices one by one with an ASTRA CPU algorithm (strip projector)."""
    n = tilt.shape[2]
    vg = astra.create_vol_geom(n, n)
    # chemtomo's u = x cos θ + z sin θ with the slice as (z rows, x columns) is ASTRA's geometry at −θ
    pg = astra.create_proj_geom("parallel", 1.0, n, -np.deg2rad(ANGLES))
    pid = astra.create_projector("strip", pg, vg)
    out = np.zeros((len(slices), n, n), np.float32)
    for k, y in enumerate(slices):
        sid = astra.data2d.create("-sino", pg, np.ascontiguousarray(tilt[:, y, :]))
        rid = astra.data2d.create("-vol", vg, 0.0)
        cfg = astra.astra_dict(alg)
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid, option=dict(options))
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid, iterations)
        out[k] = astra.data2d.get(rid)
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)
    return out


# --- scikit-image --------------------------------------------------------------------------------

def skimage_fbp(tilt, slices):
    from skimage.transform import iradon
    return np.stack([iradon(tilt[:, y, :].T, -ANGLES, circle=True, filter_name="ramp")
                     for y in slices]).astype(np.float32)


def skimage_sart(tilt, slices, iterations):
    from skimage.transform import iradon_sart
    out = []
    for y in slices:
        sino = tilt[:, y, :].T.astype(np.float64)
        img = None
        for _ in range(iterations):
            img = iradon_sart(sino, -ANGLES, image=img, clip=(0, np.inf))
        out.append(img)
    return np.stack(out).astype(np.float32)


# --- held-out ART check ------------------------------------------------------------------------

HELDOUT_ANGLES = np.linspace(-80.0, 77.0, 90)


def heldout_data(seed: int = 31):
    sample = plate_sample((64, 64, 64), 6.7e-9, n_particles=10, soc=0.5, seed=seed)
    lfp, fp = sample.phase_volumes()
    refs = reference_spectra([ENERGY_EV])
    truth = ((refs.LiFePO4.iloc[0] * lfp + refs.FePO4.iloc[0] * fp) * sample.voxel_m).astype(np.float32)
    tilt = od_tilt_series(sample, [ENERGY_EV], HELDOUT_ANGLES, noise_sigma=0.01, seed=seed)[ENERGY_EV]
    return truth, tilt


def astra_heldout(astra, tilt, slices, alg, iterations, options, ray_seed=None):
    """ASTRA 2D CPU run per slice at the held-out angles; a seeded random ray order if asked."""
    n = tilt.shape[2]
    na = tilt.shape[0]
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, -np.deg2rad(HELDOUT_ANGLES))
    pid = astra.create_projector("strip", pg, vg)
    opts = dict(options)
    if ray_seed is not None:
        perm = np.random.default_rng(ray_seed).permutation(na * n)
        opts.update(RayOrder="custom", RayOrderList=np.stack([perm // n, perm % n], 1).ravel().astype(np.float32))
    out = np.zeros((len(slices), n, n), np.float32)
    for k, y in enumerate(slices):
        sid = astra.data2d.create("-sino", pg, np.ascontiguousarray(tilt[:, y, :]))
        rid = astra.data2d.create("-vol", vg, 0.0)
        cfg = astra.astra_dict(alg)
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid, option=opts)
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid, iterations)
        out[k] = astra.data2d.get(rid)
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)
    return out


def heldout(n_sub: int = 8) -> None:
    import astra
    truth, tilt = heldout_data()
    n_slices = truth.shape[0]
    occupied = np.flatnonzero(truth.sum(axis=(1, 2)) > 0)
    sub = occupied[np.linspace(0, occupied.size - 1, n_sub).round().astype(int)]
    print(f"held-out: {tilt.shape} tilt, load average {os.getloadavg()}", flush=True)
    reconstruct(tilt[:, :1], HELDOUT_ANGLES, "art", 1)  # compile outside the timings
    rows = []

    def record(name, kind, fn, slices):
        t = time.perf_counter()
        rec = fn()
        dt = time.perf_counter() - t
        e_sub = rel_err(rec[np.searchsorted(slices, sub)], truth[sub])
        rows.append((name, kind, dt * n_slices / len(slices), len(slices) != n_slices, e_sub))
        print(f"  {name:52s} {rows[-1][2]:8.2f} s  err(sub) {e_sub:.4f}", flush=True)

    every = np.arange(n_slices)
    record("chemtomo ART (default: spread order, λ 1→0.1)", "ART",
           lambda: reconstruct(tilt, HELDOUT_ANGLES, "art", ITER), every)
    record("chemtomo ART (acquisition order, λ 0.25: former default)", "ART",
           lambda: reconstruct(tilt, HELDOUT_ANGLES, "art", ITER, relaxation=0.25, order="sequential"), every)
    record("chemtomo SART", "SART", lambda: reconstruct(tilt, HELDOUT_ANGLES, "sart", ITER), every)
    n_rays = tilt.shape[0] * tilt.shape[2]
    for lam in (0.25, 0.5, 1.0):
        record(f"ASTRA ART (sequential rays, λ {lam})", "ART",
               lambda lam=lam: astra_heldout(astra, tilt, sub, "ART", ITER * n_rays,
                                             {"MinConstraint": 0.0, "Lambda": lam}), sub)
    for lam in (0.5, 1.0):
        record(f"ASTRA ART (random ray order, seed 0, λ {lam})", "ART",
               lambda lam=lam: astra_heldout(astra, tilt, sub, "ART", ITER * n_rays,
                                             {"MinConstraint": 0.0, "Lambda": lam}, ray_seed=0), sub)
    record("ASTRA SART (default random projection order)", "SART",
           lambda: astra_heldout(astra, tilt, sub, "SART", ITER * tilt.shape[0], {"MinConstraint": 0.0}), sub)
    best = {k: min(r[4] for r in rows if r[1] == k and r[0].startswith("ASTRA")) for k in ("ART", "SART")}
    fast = {k: min(r[2] for r in rows if r[1] == k and r[0].startswith("ASTRA")) for k in ("ART", "SART")}
    print()
    print(f"Held-out: plate field seed 31, 64×64×64, 90 angles −80..77°, OD noise 0.01, {ITER} sweeps, "
          f"non-negativity; ASTRA {astra.__version__} on {n_sub} slices (time scaled ×{n_slices / n_sub:.0f}); "
          f"load average at end {os.getloadavg()}")
    print()
    print(f"| method | seconds (64 slices) | rel. error ({n_sub} common slices) | ÷ best ASTRA error of its kind | "
          "fastest ASTRA time of its kind / this |")
    print("|---|---:|---:|---:|---:|")
    for name, kind, secs, scaled, e in rows:
        print(f"| {name} | {secs:.2f}{' (scaled)' if scaled else ''} | {e:.4f} | {e / best[kind]:.2f} | "
              f"{fast[kind] / secs:.1f}× |")


# --- the run -------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 slices, ASTRA and skimage on 2")
    ap.add_argument("--slices", type=int, default=64, help="slices of the volume (default 64)")
    ap.add_argument("--astra-slices", type=int, default=4,
                    help="slices the slow per-slice iterative baselines run on (default 4)")
    ap.add_argument("--heldout", action="store_true", help="only the held-out ART check (64³, 90 angles)")
    args = ap.parse_args(argv)
    if args.heldout:
        heldout()
        return
    n_slices = 16 if args.quick else args.slices
    k = 2 if args.quick else args.astra_slices

    t0 = time.perf_counter()
    truth, tilt = make_data(n_slices)
    print(f"data: {tilt.shape} tilt, {truth.shape} truth, made in {time.perf_counter() - t0:.1f} s; "
          f"load average {os.getloadavg()}")
    occupied = np.flatnonzero(truth.sum(axis=(1, 2)) > 0)
    sub = occupied[np.linspace(0, occupied.size - 1, k).round().astype(int)]
    all_slices = np.arange(n_slices)
    rows = []  # (method, seconds for the whole volume, scaled?, error on its slices, error on sub, peak MB)

    def record(name, fn, slices, kind):
        operator_for.cache_clear()  # every chemtomo method pays for building its weights
        with PeakRSS() as mem:
            t = time.perf_counter()
            rec = fn()
            dt = time.perf_counter() - t
        scale = n_slices / len(slices)
        err_sub = rel_err(rec[np.searchsorted(slices, sub)], truth[sub]) if set(sub) <= set(slices) else float("nan")
        rows.append({"name": name, "kind": kind, "seconds": dt * scale, "scaled": scale != 1,
                         "err": rel_err(rec, truth[slices]), "err_sub": err_sub, "peak_mb": mem.rise / 2**20})
        print(f"  {name:34s} {dt * scale:9.2f} s{f' (scaled ×{scale:.0f})' if scale != 1 else ''}"
              f"  err {rows[-1]['err']:.4f}  err(sub) {err_sub:.4f}  peak +{mem.rise / 2**20:.0f} MB", flush=True)

    ours = {
        "ART": lambda: reconstruct(tilt, ANGLES, "art", ITER, relaxation=ART_LAMBDA),
        "SART": lambda: reconstruct(tilt, ANGLES, "sart", ITER),
        "SIRT": lambda: reconstruct(tilt, ANGLES, "sirt", ITER),
        "CGLS": lambda: reconstruct(tilt, ANGLES, "cgls", ITER),
        "CGLS (no nonneg)": lambda: reconstruct(tilt, ANGLES, "cgls", ITER, nonneg=False),
        "FBP": lambda: reconstruct(tilt, ANGLES, "fbp", nonneg=False),
    }
    reconstruct(tilt[:, :1], ANGLES, "art", 1)  # compile / load the kernels outside the timings
    for kind, fn in ours.items():
        nonneg = "" if kind in ("FBP", "CGLS (no nonneg)") else ", nonneg"
        record(f"chemtomo {kind.split(' ')[0]}{nonneg}", fn, all_slices, kind)

    try:
        import astra
        astra_version = astra.__version__
    except ImportError as exc:
        astra, astra_version = None, f"not importable ({exc})"
    if astra is not None:
        n_rays = len(ANGLES) * tilt.shape[2]
        plan = [
            ("ART", "ART", ITER * n_rays, {"MinConstraint": 0.0, "Lambda": ART_LAMBDA}, sub),
            ("SART", "SART", ITER * len(ANGLES), {"MinConstraint": 0.0}, sub),
            ("SIRT", "SIRT", ITER, {"MinConstraint": 0.0}, sub),
            ("CGLS", "CGLS", ITER, {"MinConstraint": 0.0}, sub),
            ("CGLS (no nonneg)", "CGLS", ITER, {}, sub),
            ("FBP", "FBP", 1, {}, all_slices),
        ]
        for kind, alg, iters, opts, slices in plan:
            label = f"ASTRA {alg} (strip{', MinConstraint=0' if 'MinConstraint' in opts else ''})"
            run = functools.partial(astra_run, astra, tilt, slices, alg, iters, opts)
            record(label, run, slices, kind)

    record("scikit-image iradon (ramp)", lambda: skimage_fbp(tilt, all_slices), all_slices, "FBP")
    record("scikit-image iradon_sart", lambda: skimage_sart(tilt, sub, ITER), sub, "SART")

    base = {r["kind"]: r["seconds"] for r in rows if r["name"].startswith("ASTRA")}
    base_err = {r["kind"]: r["err_sub"] for r in rows if r["name"].startswith("ASTRA")}
    print()
    print(f"Volume {n_slices}×256×256, {len(ANGLES)} angles −80..77°, OD noise σ 0.005, {ITER} iterations; "
          f"ASTRA {astra_version}, numba threads {os.environ.get('NUMBA_NUM_THREADS', os.cpu_count())}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average at end {os.getloadavg()}")
    print()
    print("| method | kind | seconds (whole volume) | rel. error (its slices) | rel. error (the "
          f"{k} common slices) | error vs ASTRA | peak memory (MB) | ASTRA time / this |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        secs = f"{r['seconds']:.1f}" + (" (scaled)" if r["scaled"] else "")
        ratio = base.get(r["kind"])
        ratio_s = f"{ratio / r['seconds']:.1f}×" if ratio else "—"
        e_ratio = base_err.get(r["kind"])
        e_ratio_s = f"{r['err_sub'] / e_ratio:.2f}" if e_ratio and np.isfinite(r["err_sub"]) else "—"
        print(f"| {r['name']} | {r['kind']} | {secs} | {r['err']:.4f} | {r['err_sub']:.4f} | {e_ratio_s} | "
              f"{r['peak_mb']:.0f} | {ratio_s} |")


if __name__ == "__main__":
    main()
