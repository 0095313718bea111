"""STXM 2D XAS (``chemtomo xas``) on simulated drifting stacks with known maps (issue 24).

The stack is the tests' documented simulation (``tests/io/stxm_sample.py``): three two-phase
particles (LiFePO4/FePO4 thickness maps known), 32 energies across a simulated Fe L3 edge,
Poisson counts (3000 incident per pixel, flux varying ±25 % with energy) and a random-walk drift
of up to ±1.5 px between energies. For each seed the script writes the stack as ``.hdr``/``.xim``,
runs :func:`chemtomo.pipeline.run_xas` on it (the CLI's code path: read, OD with the automatic
I0 region, energy registration, NNLS fit, store + figure) and compares with the truth:

- registration: RMS error of the per-energy shifts after removing the gauge (px), for the
  default (3 neighbours, plain cross-correlation) and for alternatives on the same OD stack:
  a neighbour chain (``max_gap=1``) and phase correlation;
- maps: RMS of (fit − truth)/σ inside the particles, σ the shot-noise standard deviation of the
  least-squares map predicted per pixel (1.0 = as good as the photon noise allows), and the mean
  of the same (bias in σ), with alignment (cubic or bilinear resampling) and without;
- I0 region: pixels, and the most material under any of them (nm);
- R-factor: share of sample pixels with R < 0.15.

Usage::

    .venv/bin/python benchmarks/stxm_xas.py            # ~1 min on 2 shared cores
    .venv/bin/python benchmarks/stxm_xas.py --shape 96 128 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "io"))

import stxm_sample as ss  # noqa: E402  (the tests' documented writer)

from chemtomo.align import register_stack  # noqa: E402
from chemtomo.chem import stack_optical_density  # noqa: E402
from chemtomo.pipeline import run_xas, xas_maps  # noqa: E402


def truth_in_frame(sim, ref):
    ny, nx = sim.thickness.shape[1:]
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    return ss.thickness_at(yy - sim.shifts_px[ref, 0], xx - sim.shifts_px[ref, 1], (ny, nx))


def sigma(sim, truth):
    m = ss.mu(sim.stack.energies_ev)
    p = np.linalg.pinv(m)
    od = np.einsum("ek,kyx->eyx", m, truth)
    return np.sqrt(np.einsum("ke,eyx->kyx", p ** 2, np.exp(od) / sim.n0[:, None, None]))


def map_scores(maps, truth, sim):
    s = sigma(sim, truth)
    inside = np.all(truth > 5e-9, axis=0) & np.isfinite(maps[0])
    z = (maps - truth)[:, inside] / s[:, inside]
    return np.sqrt(np.mean(z ** 2, axis=1)), z.mean(axis=1)


def shift_rms(est, sim, ref):
    err = (est - est[ref]) - (sim.shifts_px - sim.shifts_px[ref])
    return float(np.sqrt(np.mean(err ** 2)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=2, default=(64, 96))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    rows = {k: [] for k in ("reg_default", "reg_chain", "reg_phase", "z_al", "b_al", "z_lin", "b_lin", "z_raw", "b_raw",
                            "i0_n", "i0_max_nm", "r_share", "t_run", "t_aligned", "t_fit_only")}
    for seed in args.seeds:
        sim = ss.simulate(shape=tuple(args.shape), seed=seed)
        with tempfile.TemporaryDirectory() as d:
            path, refs = ss.write_stack(d, sim, "hdr")
            t = time.perf_counter()
            res, _, _ = run_xas(path, refs, Path(d) / "maps.zarr")
            rows["t_run"].append(time.perf_counter() - t)
        ref = int(np.argmin(np.abs(res.shifts_px).sum(axis=1)))
        truth = truth_in_frame(sim, ref)
        rows["reg_default"].append(shift_rms(res.shifts_px, sim, ref))
        od, _ = stack_optical_density(sim.stack.counts)
        rows["reg_chain"].append(shift_rms(register_stack(od, reference_index=ref, max_gap=1), sim, ref))
        rows["reg_phase"].append(shift_rms(register_stack(od, reference_index=ref, normalization="phase"), sim, ref))
        z, b = map_scores(res.fit.maps, truth, sim)
        rows["z_al"].append(z)
        rows["b_al"].append(b)
        t = time.perf_counter()
        xas_maps(sim.stack.counts, sim.stack.energies_ev, ss.reference_table(), pixel_m=ss.PIXEL_M)
        rows["t_aligned"].append(time.perf_counter() - t)
        lin = xas_maps(sim.stack.counts, sim.stack.energies_ev, ss.reference_table(), pixel_m=ss.PIXEL_M,
                       resample_order=1)
        z, b = map_scores(lin.fit.maps, truth, sim)
        rows["z_lin"].append(z)
        rows["b_lin"].append(b)
        t = time.perf_counter()
        raw = xas_maps(sim.stack.counts, sim.stack.energies_ev, ss.reference_table(), pixel_m=ss.PIXEL_M,
                       align=False)
        rows["t_fit_only"].append(time.perf_counter() - t)
        z, b = map_scores(raw.fit.maps, sim.thickness, sim)
        rows["z_raw"].append(z)
        rows["b_raw"].append(b)
        rows["i0_n"].append(res.i0.n_pixels)
        rows["i0_max_nm"].append(float(truth.sum(axis=0)[res.i0.mask].max() * 1e9))
        rows["r_share"].append(res.summary["share_r_below_0.15"])
    mean = {k: np.mean(np.asarray(v), axis=0) for k, v in rows.items()}
    n_e = sim.stack.energies_ev.size
    print(f"# STXM 2D XAS, {args.shape[0]}x{args.shape[1]} px, {n_e} energies, seeds {args.seeds}; "
          f"{platform.processor() or platform.machine()}, numpy {np.__version__}")
    print("| quantity | value (mean over seeds) | ratio |")
    print("|---|---:|---:|")
    d = mean["reg_default"]
    print(f"| shift error, default (3 neighbours, cross-correlation) | {d:.3f} px | 1.00 |")
    print(f"| shift error, neighbour chain (max_gap=1) | {mean['reg_chain']:.3f} px | {mean['reg_chain'] / d:.2f} |")
    print(f"| shift error, phase correlation | {mean['reg_phase']:.3f} px | {mean['reg_phase'] / d:.2f} |")
    for k, name in enumerate(ss.PHASES):
        print(f"| {name} map error / shot noise, aligned | {mean['z_al'][k]:.2f} σ (bias {mean['b_al'][k]:+.2f} σ) | 1.00 |")
        print(f"| {name} map error / shot noise, aligned, bilinear resampling | {mean['z_lin'][k]:.2f} σ "
              f"(bias {mean['b_lin'][k]:+.2f} σ) | {mean['z_lin'][k] / mean['z_al'][k]:.2f} |")
        print(f"| {name} map error / shot noise, not aligned | {mean['z_raw'][k]:.2f} σ (bias {mean['b_raw'][k]:+.2f} σ) "
              f"| {mean['z_raw'][k] / mean['z_al'][k]:.2f} |")
    print(f"| I0 region (auto) | {mean['i0_n']:.0f} px, ≤ {mean['i0_max_nm']:.2f} nm under it | |")
    print(f"| sample pixels with R < 0.15 | {mean['r_share']:.1%} | |")
    print(f"| time: xas_maps with / without energy alignment | {mean['t_aligned']:.2f} s / "
          f"{mean['t_fit_only']:.2f} s | {mean['t_aligned'] / mean['t_fit_only']:.1f} |")
    print(f"| time: run_xas (read .xim text, store, figure included) / xas_maps aligned | {mean['t_run']:.2f} s / "
          f"{mean['t_aligned']:.2f} s | {mean['t_run'] / mean['t_aligned']:.1f} |")


if __name__ == "__main__":
    main()
