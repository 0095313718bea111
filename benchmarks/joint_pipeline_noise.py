"""Joint vs two-step chemistry on the demo pipeline's own series: excess noise from repeated measurements.

Issue 24, part 4 asks for the per-voxel *excess noise* of the joint method to be ≤ 0.6× the
two-step method's on the pipeline's own series. The RMS error against the truth mixes noise with
deterministic errors (ptychographic blur at plate rims, residual misregistration between
energies); the noise is what changes between independent noise realisations of one measurement.
So for every sample seed the demo dataset is simulated twice with the same sample, misalignment,
scan positions and detector but different photon noise (``simulate_dataset(noise_seed=...)``,
``chemtomo simulate --noise-seed``), each is run through the pipeline (``chemtomo run``:
ptychography, OD, alignment), and both chemistry methods are applied to each run's aligned OD
tilt series:

- **two-step** (the pipeline's default, ``[chem] method = "exact"``): ART-20 per energy with the
  pipeline's tomography settings, per-voxel exact 2×2 unmixing, the pipeline's sample mask and
  SOC (concentrations over the mask grown by 3 voxels);
- **joint** (``[chem] method = "joint"``): ``chem.joint_reconstruct`` with the settings the
  pipeline passes (10 sweeps, TV weight from a pilot solve, regularised fraction, SOC from the
  projection totals).

Scores, on the particle voxels (truth occupancy > 0.5) where all four fraction maps (both
methods, both runs) are defined ("cover" is each method's own share of the particle voxels):

- **excess noise** = RMS of (fraction_a − fraction_b) / √2: the per-voxel noise of one run;
- **RMS error** against the noise-free truth (mean over the two runs of the squared error);
- **systematic error**: the part of the RMS error that does not change with the noise,
  sqrt(RMS((a + b)/2 − truth)² − excess noise²/2) (resolution, blur, misregistration, the
  regularisers' bias);
- **SOC** of each run, its truth, and |SOC_joint − SOC_two-step| per run.

Alignment: each run's pipeline estimates its own alignment from its own noisy projections, so
their difference also lands in (a − b). The table gives the RMS difference of the per-angle
shifts between the runs (after their mean, a common translation, is removed; and that mean) and
the largest difference of the energy-to-energy offsets; it reports both variants:

- **own alignment**: each run with the alignment its pipeline found (what a user repeating the
  measurement sees: noise of the data and of the alignment);
- **shared alignment**: run b's tilt series aligned with run a's alignment, so that (a − b) is
  the noise of the data only (the quantity the issue names).

The fraction maps are moved onto the truth grid (crop + the whole-voxel shift registering run a's
708.2 eV two-step μ volume to the true μ, as benchmarks/joint.py does); run b uses run a's shift,
so any frame difference between the runs stays in (a − b).

Usage::

    PYTHONPATH=src python benchmarks/joint_pipeline_noise.py --work /tmp/jpn            # seeds 0 3
    PYTHONPATH=src python benchmarks/joint_pipeline_noise.py --work /tmp/jpn --seeds 1
    PYTHONPATH=src python benchmarks/joint_pipeline_noise.py --work /tmp/jpn --seeds 3 --dose 0.25

Missing runs are simulated and run first (``WORK/s{seed}n{noise}[d{dose}]/``: ~3-6 min each on 2 shared
cores, mostly ptychography); the analysis takes ~1 min per sample seed.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from chemtomo import chem
from chemtomo.simulate import reference_spectra
from chemtomo.tomo import reconstruct

NOISE_SEEDS = (101, 102)


def run_dir(work: Path, seed: int, noise: int, dose: float = 1.0) -> Path:
    """``WORK/s{seed}n{noise}`` (``…d{dose}`` at a dose other than the demo's)."""
    return work / (f"s{seed}n{noise}" + ("" if dose == 1.0 else f"d{dose:g}"))


def ensure_run(work: Path, seed: int, noise: int, dose: float = 1.0) -> Path:
    """Simulate (sample ``seed``, photon noise ``noise``, ``dose`` × the demo's photons per frame)
    and run the pipeline on it unless that is done."""
    d = run_dir(work, seed, noise, dose)
    cli = [sys.executable, "-m", "chemtomo.cli", "--quiet"]
    if not (d / "data" / "manifest.csv").exists():
        if dose == 1.0:
            subprocess.run(cli + ["simulate", str(d / "data"), "--preset", "demo", "--seed", str(seed),
                                  "--noise-seed", str(noise)], check=True)
        else:   # the command line has no dose option: the same simulation with the preset's dose scaled
            from chemtomo.io.simulated import write_dataset
            from chemtomo.simulate import PRESETS, simulate_dataset

            write_dataset(d / "data", simulate_dataset("demo", seed=seed, noise_seed=noise,
                                                       dose_photons=PRESETS["demo"].dose_photons * dose))
    # resumes: a finished run is only checked
    subprocess.run(cli + ["run", str(d / "data" / "manifest.csv"), "--out", str(d / "run.zarr"), "--no-report"],
                   check=True)
    return d


class _Ctx:
    """What the pipeline's tilt-series readers need of a run context: the store."""

    def __init__(self, store):
        self.store = store


def load_run(d: Path):
    from chemtomo.io.store import RunStore
    from chemtomo.pipeline.tomo_stage import load_alignment, load_tilts

    ctx = _Ctx(RunStore(d / "run.zarr", create=False))
    tilts, angles, pixel = load_tilts(ctx)
    return tilts, angles, pixel, load_alignment(ctx)


def aligned(tilts, angles, al):
    """As :func:`chemtomo.pipeline.tomo_stage.aligned_tilts`, with a given alignment."""
    from chemtomo.align import apply

    keep = np.array([i not in al.excluded for i in range(len(angles))])
    return {e: np.ascontiguousarray(apply(t, al, e)[keep], dtype=np.float32) for e, t in tilts.items()}, angles[keep]


def two_step(stack, angles, refs, voxel_m, cfg):
    """The pipeline's two-step chemistry (recon stage + analysis_stage._two_step) on aligned series."""
    mus = np.stack([reconstruct(t, angles, cfg.tomo.algorithm, cfg.tomo.iterations, nonneg=cfg.tomo.nonneg)
                    for t in stack]) / voxel_m
    conc = chem.unmix(mus, refs, method="exact")
    density = np.nansum(conc, axis=0).astype(np.float32)
    mask = chem.sample_mask(density, threshold=cfg.chem.density_threshold or None)
    frac = chem.fraction(conc, mask=mask)
    soc, _ = chem.state_of_charge(conc, mask=chem.soc_region(mask))
    return frac, float(soc), mus[0]


def joint(stack, angles, refs, voxel_m, cfg):
    """The pipeline's joint chemistry (pipeline/joint_chem.run_joint) on aligned series."""
    c = cfg.chem
    res = chem.joint_reconstruct(stack, angles, refs, voxel_m=voxel_m, energies_ev=None,
                                 iterations=c.joint_iterations, tv="auto" if c.joint_tv < 0 else c.joint_tv,
                                 occupancy=c.joint_occupancy, density_threshold=c.density_threshold or None,
                                 thresholds=tuple(c.thresholds))
    return res.fraction, float(res.soc), None


def _crop_to(volume: np.ndarray, shape) -> np.ndarray:
    c = [(a - b) // 2 for a, b in zip(volume.shape, shape)]
    return volume[tuple(slice(o, o + n) for o, n in zip(c, shape))]


def _on_truth(v, shape, shift):
    v = _crop_to(np.nan_to_num(v, nan=-1.0), shape)
    v = ndimage.shift(v, shift, order=0, cval=-1.0)
    return np.where(v < 0, np.nan, v)


def analyse(work: Path, seed: int, noise_seeds, dose: float = 1.0) -> list[dict]:
    from skimage.registration import phase_cross_correlation

    from chemtomo.io.simulated import read_truth
    from chemtomo.pipeline import config_for_manifest

    da, db = (run_dir(work, seed, n, dose) for n in noise_seeds)
    cfg = config_for_manifest(da / "data" / "manifest.csv")      # what `chemtomo run MANIFEST` used
    truth = read_truth(da / "data")
    ta, angles, pixel, al_a = load_run(da)
    tb, angles_b, pixel_b, al_b = load_run(db)
    if not (np.array_equal(angles, angles_b) and math.isclose(pixel, pixel_b)):
        raise SystemExit(f"runs {da} and {db} differ in angles or pixel: not the same measurement")
    energies = sorted(ta)
    refs = reference_spectra(energies)[["LiFePO4", "FePO4"]].to_numpy()
    # alignment difference between the runs: mean (a common translation) and RMS about it, px
    both = np.array([i not in al_a.excluded and i not in al_b.excluded for i in range(len(angles))])
    ds = al_a.shifts_px[both] - al_b.shifts_px[both]
    mean = ds.mean(axis=0)
    shift_rms = float(np.sqrt(np.mean(np.sum((ds - mean) ** 2, axis=1))))
    off = max(float(np.hypot(*(np.asarray(al_a.energy_offsets_px[e]) - np.asarray(al_b.energy_offsets_px[e]))))
              for e in energies)
    align = {"shift_rms": shift_rms, "shift_mean": float(np.hypot(*mean)), "offset": off,
             "excluded": (len(al_a.excluded), len(al_b.excluded))}
    mu_true = truth.mu[energies[0]]
    on_true = truth.sample.occupancy > 0.5
    rows = []
    variants = {"own alignment": (al_a, al_b), "shared alignment": (al_a, al_a)}
    cache = {}
    reg = None
    for variant, (aa, ab) in variants.items():
        maps = {}
        for name in ("two-step", "joint"):
            for run, (t, al) in (("a", (ta, aa)), ("b", (tb, ab))):
                key = (run, name, id(al))
                if key not in cache:
                    series, ang = aligned(t, angles, al)
                    stack = np.stack([series[e] for e in energies])
                    t0 = time.perf_counter()
                    fn = two_step if name == "two-step" else joint
                    frac, soc, mu0 = fn(stack, ang, refs, pixel, cfg)
                    cache[key] = (frac, soc, mu0, time.perf_counter() - t0)
                frac, soc, mu0, dt = cache[key]
                if reg is None:   # run a's two-step μ at the first energy registers store grid → truth grid
                    shift, _, _ = phase_cross_correlation(mu_true.astype(np.float64),
                                                          _crop_to(mu0, mu_true.shape).astype(np.float64),
                                                          upsample_factor=10, normalization=None)
                    reg = np.round(shift)
                maps[name, run] = (_on_truth(frac, mu_true.shape, reg), soc, dt)
        # scored on the particle voxels where every map (both methods, both runs) is defined: the
        # joint mask is a little tighter (it drops some rims, where the two-step noise is largest)
        common = on_true.copy()
        for f, _, _ in maps.values():
            common &= np.isfinite(f)
        x = truth.sample.fraction
        out = {}
        for name in ("two-step", "joint"):
            (fa, soc_a, dta), (fb, soc_b, dtb) = maps[name, "a"], maps[name, "b"]
            ok = common
            out[name] = {
                "noise": float(np.sqrt(np.mean((fa[ok] - fb[ok]) ** 2) / 2.0)),
                "rms": float(np.sqrt(0.5 * (np.mean((fa[ok] - x[ok]) ** 2) + np.mean((fb[ok] - x[ok]) ** 2)))),
                # the deterministic error: E[((a+b)/2 − x)²] = bias² + σ²/2 with σ the excess noise
                "bias": float(np.sqrt(max(0.0, np.mean((0.5 * (fa[ok] + fb[ok]) - x[ok]) ** 2)
                                          - 0.25 * np.mean((fa[ok] - fb[ok]) ** 2)))),
                "soc": (soc_a, soc_b), "seconds": 0.5 * (dta + dtb),
                "cover": float((on_true & np.isfinite(fa) & np.isfinite(fb)).sum() / on_true.sum())}
        for r in out.values():
            r["soc_dev"] = max(abs(r["soc"][i] - out["two-step"]["soc"][i]) for i in (0, 1))
        rows.append({"seed": seed if dose == 1.0 else f"{seed}, dose × {dose:g}", "variant": variant, "align": align, "truth_soc": float(truth.sample.soc),
                     "methods": out, "registration": reg.tolist(), "scored": float(common.sum() / on_true.sum())})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder of the pipeline runs (made if missing)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 3],
                    help="sample seeds (0: developed on in session 3; 3: not used before)")
    ap.add_argument("--noise-seeds", type=int, nargs=2, default=list(NOISE_SEEDS))
    ap.add_argument("--dose", type=float, default=1.0,
                    help="photons per frame as a multiple of the demo preset's (runs in WORK/s{seed}n{noise}d{dose})")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores (shared, load {load:.1f}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; demo preset, sample seeds {args.seeds}, "
          f"noise seeds {args.noise_seeds}")
    for s in args.seeds:
        for n in args.noise_seeds:
            ensure_run(args.work, s, n, args.dose)
    header = ("| seed | alignment | shift diff RMS / mean; energy offset diff, px | method | excess noise | ratio | RMS error vs truth "
              "| ratio | systematic error | ratio | SOC run a / b (truth) | max abs(SOC − two-step) | cover (scored) | time s |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    pooled = {}
    for s in args.seeds:
        for row in analyse(args.work, s, args.noise_seeds, args.dose):
            m, a = row["methods"], row["align"]
            base = m["two-step"]
            for name, r in m.items():
                pooled.setdefault((row["variant"], name), []).append(r)
                print(f"| {row['seed']} | {row['variant']} | {a['shift_rms']:.3f} / {a['shift_mean']:.3f}; {a['offset']:.3f} | {name} | "
                      f"{r['noise']:.4f} | {r['noise'] / base['noise']:.2f} | {r['rms']:.4f} | "
                      f"{r['rms'] / base['rms']:.2f} | {r['bias']:.4f} | {r['bias'] / base['bias']:.2f} | {r['soc'][0]:.4f} / {r['soc'][1]:.4f} ({row['truth_soc']:.4f}) | "
                      f"{r['soc_dev']:.4f} | {r['cover']:.3f} ({row['scored']:.3f}) | {r['seconds']:.1f} |", flush=True)
    for variant in ("own alignment", "shared alignment"):
        base = pooled[(variant, "two-step")]
        for name in ("two-step", "joint"):
            r = pooled[(variant, name)]
            noise = math.sqrt(np.mean([x["noise"] ** 2 for x in r]))
            rms = math.sqrt(np.mean([x["rms"] ** 2 for x in r]))
            b_noise = math.sqrt(np.mean([x["noise"] ** 2 for x in base]))
            b_rms = math.sqrt(np.mean([x["rms"] ** 2 for x in base]))
            bias = math.sqrt(np.mean([x["bias"] ** 2 for x in r]))
            b_bias = math.sqrt(np.mean([x["bias"] ** 2 for x in base]))
            print(f"| pooled | {variant} | | {name} | {noise:.4f} | {noise / b_noise:.2f} | {rms:.4f} | "
                  f"{rms / b_rms:.2f} | {bias:.4f} | {bias / b_bias:.2f} | | {max(x['soc_dev'] for x in r):.4f} | | |")


if __name__ == "__main__":
    main()
