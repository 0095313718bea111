"""Alignment benchmark: chemtomo's similarity reprojection alignment against a translation-only
joint reprojection alignment (the approach of TomoPy's ``align_joint``, implemented here since
TomoPy is not installed) and against the coarse alignment alone, on the same simulated data.

Data: the two-energy misaligned series of ``tests/align/align_testdata.py`` (plate phantom,
32×48 px projections, 36 angles over ±70°, shifts up to ±6/±10 px, rotation ±1°, scale ±1 %,
energy offset up to ±3 px, 1 % noise, ±5 % gain drift). Accuracy is the RMS displacement of sample
points from where the truth puts them after removing the gauge (see
``chemtomo.align.transform.alignment_error_px``); the reconstruction error is SIRT (100 iterations)
after alignment against SIRT after perfect alignment of the same data.

``--data simulate`` uses ``chemtomo.simulate`` instead: 6 LiFePO4/FePO4 plates filling a 32×48×48
field (material leaves the field when projections shift), 31 angles from −80° to 77° (the demo's
range), the simulator's default misalignment and OD noise σ 0.01.

Run: ``.venv/bin/python benchmarks/align.py [--seeds 1 2 3] [--data phantom|simulate]``; prints a
Markdown table.

``--paper``: the aligned problem the pipeline solves on the ``paper`` preset, built directly (no
ptychography): the preset's phantom (151×129×257 voxels, 80 plates, seed 7, not the preset's
seed 0) projected at its 158 angles (−80..77°) and two energies (708.2, 710.2 eV), placed in the
170×274 px field the pipeline's tilt series has, misaligned with the preset's distributions
(an independent draw), plus Gaussian OD noise ``--noise`` (default 0.01, about the ptychographic
OD noise at the preset's dose). ``chemtomo.align.align`` is timed with each settings set in
turn in one process (``--settings``), each reporting time, mean final residual (the pipeline's
"alignment residual") and the RMS error against the true misalignment on the sample.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "align"))
from align_testdata import misaligned_series  # noqa: E402

from chemtomo import tomo  # noqa: E402
from chemtomo.align import Alignment, align, apply, register_translation  # noqa: E402
from chemtomo.align.transform import alignment_error_px, remove_gauge, warp  # noqa: E402
from chemtomo.align import ReprojectionOptions  # noqa: E402
from chemtomo.simulate import draw_misalignment, misalign, od_tilt_series, plate_sample  # noqa: E402

E1 = 708.2


def joint_translation(tilt, angles_deg, *, init=None, iterations=8, recon_iterations=30,
                      upsample=20, tol_px=0.01):
    """TomoPy ``align_joint`` approach: from zero shifts (or ``init``'s), repeat SIRT (warm-started,
    as chemtomo's) → reproject → upsampled cross-correlation of each projection with its
    reprojection → shift, until the largest shift update is below ``tol_px``."""
    n = tilt.shape[0]
    shifts = np.zeros((n, 2)) if init is None else init.shifts_px.copy()
    zeros, ones = np.zeros(n), np.ones(n)
    vol = None
    for _ in range(iterations):
        aligned = warp(tilt, shifts, zeros, ones)
        extra = {} if vol is None else {"x0": vol}
        vol = tomo.reconstruct(aligned, angles_deg, algorithm="sirt", iterations=recon_iterations, **extra)
        reproj = tomo.project(vol, angles_deg, nu=tilt.shape[2])
        new = register_translation(reproj, tilt, upsample=upsample)
        upd = np.abs(new - shifts).max()
        shifts = new
        if upd < tol_px:
            break
    return Alignment(shifts, zeros, ones)


class _Simulated:
    """The simulator's data in the shape of ``align_testdata.Misaligned``."""

    def __init__(self, seed):
        sample = plate_sample((32, 48, 48), 6.7e-9, n_particles=6, seed=seed)
        self.angles_deg = np.linspace(-80.0, 77.0, 31)
        od = od_tilt_series(sample, [E1, 710.2], self.angles_deg, noise_sigma=0.01, seed=seed)
        t = draw_misalignment(self.angles_deg.size, [E1, 710.2], seed=seed)
        self.raw = {e: misalign(od[e], t, e) for e in od}
        self.perfect = od
        self.truth = (t.shifts_px, t.rotation_deg, t.scale)


def recon_error(d, params):
    fixed = remove_gauge((32, 48), d.angles_deg, params, d.truth, common_rotation=True)
    v = tomo.reconstruct(apply(d.raw[E1], Alignment(*fixed)), d.angles_deg, algorithm="sirt", iterations=100)
    v0 = tomo.reconstruct(apply(d.raw[E1], Alignment(*d.truth)), d.angles_deg, algorithm="sirt", iterations=100)
    return float(np.linalg.norm(v - v0) / np.linalg.norm(v0))


# --- the paper-size aligned problem ---------------------------------------------------------------

PAPER_FIELD = (170, 274)  # the pipeline's OD tilt series on the paper preset, pixels


class PaperProblem:
    """The paper preset's alignment problem: raw two-energy OD tilt series and the truth."""

    def __init__(self, seed: int = 7, noise: float = 0.01, angle_step: int = 1):
        from chemtomo.simulate.experiment import PRESETS
        p = PRESETS["paper"]
        angles = np.asarray(p.angles_deg, np.float64)
        angles = angles[::angle_step]  # > 1: a development run on every k-th angle
        self.angles_deg = angles
        self.energies = tuple(p.energies_ev)
        sample = plate_sample(p.shape, p.voxel_m, n_particles=p.n_particles, seed=seed)
        od = od_tilt_series(sample, self.energies, angles, seed=seed)
        ny, nx = od[self.energies[0]].shape[1:]
        fy, fx = PAPER_FIELD
        pad = ((0, 0), ((fy - ny) // 2, fy - ny - (fy - ny) // 2), ((fx - nx) // 2, fx - nx - (fx - nx) // 2))
        self.perfect = {e: np.pad(v, pad) for e, v in od.items()}
        t = draw_misalignment(angles.size, self.energies, shift_sigma_px=p.shift_sigma_px,
                              shift_max_px=p.shift_max_px, rotation_sigma_deg=p.rotation_sigma_deg,
                              rotation_max_deg=p.rotation_max_deg, scale_sigma=p.scale_sigma,
                              scale_max=p.scale_max, energy_offset_max_px=p.energy_offset_max_px,
                              seed=seed + 1)
        rng = np.random.default_rng(seed + 2)
        self.raw = {e: (misalign(v, t, e) + rng.normal(0.0, noise, v.shape)).astype(np.float32)
                    for e, v in self.perfect.items()}
        self.truth = (t.shifts_px, t.rotation_deg, t.scale)
        self.offsets = t.offsets()
        self.mask = (self.perfect[self.energies[0]] > 0.05 * self.perfect[self.energies[0]].max()).any(axis=0)
        self.field = PAPER_FIELD

    def binned(self) -> "PaperProblem":
        """The same problem on 2×2-binned projections (a development size): shifts halve."""
        def b2(a):
            n, ny, nx = a.shape
            return a.reshape(n, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4), dtype=np.float32)
        out = object.__new__(PaperProblem)
        out.__dict__.update(self.__dict__)
        out.raw = {e: b2(v) for e, v in self.raw.items()}
        out.perfect = {e: b2(v) for e, v in self.perfect.items()}
        out.truth = (self.truth[0] / 2.0, self.truth[1], self.truth[2])
        out.offsets = {e: tuple(np.asarray(o) / 2.0) for e, o in self.offsets.items()}
        out.mask = self.mask[::2, ::2]
        out.field = (PAPER_FIELD[0] // 2, PAPER_FIELD[1] // 2)
        return out


SETTINGS = {
    # the pipeline's AlignConfig before issue 15: 10 iterations, SIRT-30 per iteration, no binning
    "old": dict(iterations=10, tol_px=0.02, algorithm="sirt",
                options=ReprojectionOptions(recon_iterations=30, binned_iterations=0)),
    # issue 15 defaults (AlignConfig): 3 warm-started ART sweeps per iteration, 3 binned iterations first
    "new": dict(iterations=10, tol_px=0.02, algorithm="art",
                options=ReprojectionOptions(recon_iterations=3, binned_iterations=3)),
}


def paper(args) -> None:
    t0 = time.perf_counter()
    prob = PaperProblem(seed=args.seed, noise=args.noise, angle_step=args.angle_step)
    if args.bin2:
        prob = prob.binned()
    n = prob.angles_deg.size
    print(f"paper problem: {n} angles, field {prob.field}, noise {args.noise}, built in "
          f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()}", flush=True)
    rows = []
    for name in args.settings:
        cfg = SETTINGS[name]
        capped = name == "old" and args.old_iterations is not None
        t = time.perf_counter()
        cpu = time.process_time()
        al = align(prob.raw, prob.angles_deg, algorithm=cfg["algorithm"],
                   iterations=args.old_iterations if capped else cfg["iterations"],
                   tol_px=cfg["tol_px"], options=cfg["options"])
        dt = time.perf_counter() - t
        cpu = time.process_time() - cpu
        if capped:  # the rest of the run extrapolated from the iterations done (coarse step timed apart)
            tc, cc = time.perf_counter(), time.process_time()
            align(prob.raw, prob.angles_deg, method="coarse")
            coarse, coarse_cpu = time.perf_counter() - tc, time.process_time() - cc
            dt = coarse + (dt - coarse) * cfg["iterations"] / args.old_iterations
            cpu = coarse_cpu + (cpu - coarse_cpu) * cfg["iterations"] / args.old_iterations
            name = f"{name} (extrapolated from {args.old_iterations} of {cfg['iterations']} iterations)"
        err = alignment_error_px(prob.field, prob.angles_deg, al.params, prob.truth, mask=prob.mask)
        e2 = prob.energies[1]
        off_err = float(np.abs(np.asarray(al.energy_offsets_px[e2]) - np.asarray(prob.offsets[e2])).max())
        resid = float(np.mean(al.history[-1].residual))
        rows.append((name, dt, cpu, len(al.history) - 1, resid, err, off_err))
        print(f"  {name:10s} {dt:8.1f} s (CPU {cpu:.1f} s)  {len(al.history) - 1} iterations  residual {resid:.4f}  "
              f"error {err:.4f} px  energy offset error {off_err:.3f} px  load {os.getloadavg()[0]:.1f}", flush=True)
    base = rows[0][1]
    print()
    base_cpu = rows[0][2]
    print(f"| settings | seconds | ÷ {rows[0][0]} | CPU seconds (all threads) | ÷ {rows[0][0]} | outer iterations | "
          "mean final residual | RMS error vs truth (px) | energy offset error (px) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, dt, cpu, it, resid, err, off_err in rows:
        print(f"| {name} | {dt:.1f} | {dt / base:.2f} | {cpu:.1f} | {cpu / base_cpu:.2f} | {it} | {resid:.4f} | "
              f"{err:.4f} | {off_err:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--data", choices=["phantom", "simulate"], default="phantom")
    ap.add_argument("--paper", action="store_true", help="the paper-size problem (see the module notes)")
    ap.add_argument("--settings", nargs="+", default=["old", "new"], help="with --paper: settings sets to time")
    ap.add_argument("--seed", type=int, default=7, help="with --paper: phantom seed")
    ap.add_argument("--noise", type=float, default=0.01, help="with --paper: OD noise σ")
    ap.add_argument("--old-iterations", type=int, default=None,
                    help="with --paper: run the old settings for this many outer iterations and extrapolate the time")
    ap.add_argument("--bin2", action="store_true", help="with --paper: 2×2-binned projections (development size)")
    ap.add_argument("--angle-step", type=int, default=1, help="with --paper: every k-th angle only (development)")
    args = ap.parse_args()
    if args.paper:
        paper(args)
        return
    rows = {}
    for seed in args.seeds:
        d = misaligned_series(n_angles=36, seed=seed) if args.data == "phantom" else _Simulated(seed)
        mask = (d.perfect[E1] > 0.05 * d.perfect[E1].max()).any(axis=0)
        combined = d.raw[E1]
        coarse = align(d.raw, d.angles_deg, method="coarse")
        runs = {
            "coarse only (integer px)": lambda: align(d.raw, d.angles_deg, method="coarse"),
            "joint translation (align_joint approach), from zero": lambda: joint_translation(combined, d.angles_deg),
            "joint translation, from the coarse alignment": lambda: joint_translation(
                combined, d.angles_deg, init=coarse),
            "chemtomo reprojection, translation only": lambda: align(
                d.raw, d.angles_deg, iterations=8, similarity=False),
            "chemtomo reprojection, similarity": lambda: align(
                d.raw, d.angles_deg, iterations=8),
        }
        for name, fn in runs.items():
            t0 = time.perf_counter()
            al = fn()
            dt = time.perf_counter() - t0
            err = alignment_error_px((32, 48), d.angles_deg, al.params, d.truth, mask=mask)
            rows.setdefault(name, []).append((err, recon_error(d, al.params), dt))
    print(f"machine: {platform.machine()}, {platform.system()}, reconstruct from "
          f"{tomo.reconstruct.__module__}; data {args.data}, seeds {args.seeds}")
    print("| method | RMS error on sample (px) | SIRT rel. error vs perfect | time (s) |")
    print("|---|---|---|---|")
    for name, vals in rows.items():
        v = np.array(vals)
        print(f"| {name} | {v[:, 0].mean():.3f} ± {v[:, 0].std():.3f} | {v[:, 1].mean():.3f} | "
              f"{v[:, 2].mean():.1f} |")


if __name__ == "__main__":
    main()
