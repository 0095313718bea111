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
"""

from __future__ import annotations

import argparse
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--data", choices=["phantom", "simulate"], default="phantom")
    args = ap.parse_args()
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
