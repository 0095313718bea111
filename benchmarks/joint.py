"""Joint spectral tomography against the paper's two-step method, scored against simulator truth.

For every case, simulated aligned OD tilt series (``chemtomo.simulate``: the plates projected on a
2× finer grid with the shared geometry, so the reconstruction grid is not the simulation's) get
Gaussian noise of the demo's OD noise level, then:

- **two-step** (the paper): ART, 20 sweeps, per energy (``tomo.reconstruct``, the pipeline's
  defaults), then the per-voxel unmixing the pipeline does (exact 2×2; least squares over three
  energies) and the pipeline's SOC over all voxels;
- **two-step SART** (a control): SART with the joint solver's sweeps and relaxation per energy,
  then the same unmixing, to separate what the solver does from what the joint model does;
- **joint**: ``chem.joint_reconstruct`` with its defaults (spectrally preconditioned OS-SART on
  the component volumes, c ≥ 0, TV weight chosen from a pilot solve, regularised fraction). Its
  SOC (``JointResult.soc``) is the reconstruction-independent SOC from the baseline-corrected
  projection totals; "SOC error (volumes)" is that of its volumes over the sample mask grown by 3
  voxels (``soc_volumes``, the default before issue 24 part 4); for the two-step methods both
  columns are the pipeline's SOC over all voxels.

Scores: per-voxel FePO4-fraction RMS error on the plates (truth occupancy > 0.5; "interior" also
excludes voxels within one voxel of a LiFePO4/FePO4 boundary, where the resolution limits any
method), SOC error, 3-class agreement on the plates, particles found (segmentation of the density)
and the agreement of their activity (mean FePO4 fraction ≥ 15 %) with the matched true particle,
and the wall time of each method measured in this process (best of 2).

Cases: (a) demo preset, (b) one tenth of the dose (noise × √10), (c) 31 angles over ±60°,
(d) three energies (pre-edge 705 eV + 708.2 + 710.2 eV). Each over seeds 0, 1, 2.

Noise level: the demo pipeline's aligned OD tilt series (``chemtomo demo``, seed 0) have a robust
σ of 0.0030-0.0035 OD in air and ART-20 volumes with μ noise 1500 1/m; white noise of σ = 0.0035
OD on the truth projections gives ART-20 volumes with μ noise 1500-2000 1/m (measured while
writing this script), so σ = 0.0035 is the demo's level.
Measured later from two noise realisations of the same demo run (benchmarks/joint_pipeline_noise.py,
issue 24 session 4), the pipeline's per-pixel OD noise is 0.006-0.007 in air and 0.011-0.012
through the sample (neighbour differences read the correlated ptychographic noise low, 0.005):
white σ = 0.0035 is about half the demo pipeline's noise; case (b) is closer to it.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/joint.py            # ~3 min on 2 shared cores
    PYTHONPATH=src .venv/bin/python benchmarks/joint.py --quick    # seed 0 only
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy import ndimage

from chemtomo import chem, particles
from chemtomo.simulate import reference_spectra, simulate_dataset
from chemtomo.tomo import reconstruct
from chemtomo.tomo.joint import JOINT_RELAXATION

SIGMA_OD = 0.0035
JOINT_SWEEPS = {2: 10, 3: 15}   # joint sweeps by number of energies: at most the two-step's time

CASES = {
    "a": ("demo preset", {}, SIGMA_OD),
    "b": ("1/10 dose", {}, SIGMA_OD * np.sqrt(10.0)),
    "c": ("31 angles, ±60°", {"angles_deg": tuple(np.linspace(-60.0, 60.0, 31).tolist())}, SIGMA_OD),
    "d": ("3 energies (pre-edge + 2)", {"energies_ev": (705.0, 708.2, 710.2)}, SIGMA_OD),
}


def best_of(fn, repeat=2):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def interior(sample) -> np.ndarray:
    """Plate voxels (occupancy > 0.5) whose 3×3×3 neighbourhood (plate voxels only) holds one phase."""
    on = sample.occupancy > 0.5
    f = np.nan_to_num(sample.fraction, nan=-1.0)
    lo = ndimage.minimum_filter(np.where(on, f, 2.0), size=3)
    hi = ndimage.maximum_filter(np.where(on, f, -1.0), size=3)
    return on & (hi - lo < 0.01)


def score(frac, conc, soc, soc_alt, ds, core) -> dict:
    s = ds.sample
    on = s.occupancy > 0.5
    ok = on & np.isfinite(frac)
    err = frac[ok] - s.fraction[ok]
    ok_core = core & np.isfinite(frac)
    err_core = frac[ok_core] - s.fraction[ok_core]
    agree = np.mean(chem.classify(frac)[ok] == chem.classify(s.fraction)[ok])
    density = conc.sum(axis=0)
    labels = particles.segment(density, ds.voxel_m, mask=np.isfinite(frac))
    found = particles.measure(labels, frac, ds.voxel_m)
    truth_active = dict(zip(s.table["label"], s.table["fp_fraction"] >= 0.15))
    m = particles.match_labels(labels, s.labels)
    act = dict(zip(found["label"], found["active_15"]))
    same = sum(bool(act.get(f, False)) == bool(truth_active[t]) for f, t in zip(m.found, m.truth))
    return {"rms": float(np.sqrt(np.mean(err ** 2))), "rms_core": float(np.sqrt(np.mean(err_core ** 2))),
            "cover": float(ok.sum() / on.sum()), "soc_err": abs(soc - s.soc),
            "soc_err_alt": abs(soc_alt - s.soc), "classes": float(agree),
            "n_found": int(labels.max()), "n_true": int(s.labels.max()), "n_matched": int(m.found.size),
            "active_agree": int(same), "n_active_found": int(found["active_15"].sum()),
            "n_active_true": int(sum(truth_active.values()))}


def two_step(tilts, angles, refs, voxel_m, algorithm, iterations, relaxation=None):
    vols = np.stack([reconstruct(t, angles, algorithm, iterations, relaxation=relaxation) for t in tilts]) / voxel_m
    method = "exact" if len(tilts) == refs.shape[1] else "lstsq"
    conc = chem.unmix(vols, refs, method=method)
    mask = chem.sample_mask(np.nansum(conc, axis=0))
    frac = chem.fraction(conc, mask=mask)
    soc, _ = chem.state_of_charge(conc)
    return frac, conc, soc, soc


def joint(tilts, angles, refs, voxel_m, sweeps):
    res = chem.joint_reconstruct(tilts, angles, refs, voxel_m=voxel_m, iterations=sweeps)
    return res.fraction, res.concentrations, res.soc, res.soc_volumes


def run_case(key: str, seed: int) -> dict:
    _, overrides, sigma = CASES[key]
    ds = simulate_dataset("demo", seed=seed, **overrides)
    energies = [float(e) for e in ds.energies_ev]
    refs = reference_spectra(energies)[["LiFePO4", "FePO4"]].to_numpy()
    rng = np.random.default_rng([seed, 16])
    tilts = np.stack([ds.od_truth(e) + rng.normal(0.0, sigma, ds.od_truth(e).shape).astype(np.float32)
                      for e in energies])
    angles = ds.angles_deg
    sweeps = JOINT_SWEEPS[len(energies)]
    core = interior(ds.sample)
    out = {}
    for label, fn in (("two-step", lambda: two_step(tilts, angles, refs, ds.voxel_m, "art", 20)),
                      ("two-step SART", lambda: two_step(tilts, angles, refs, ds.voxel_m, "sart", sweeps,
                                                               relaxation=JOINT_RELAXATION)),
                      ("joint", lambda: joint(tilts, angles, refs, ds.voxel_m, sweeps))):
        t, (frac, conc, soc, soc_alt) = best_of(fn)
        out[label] = dict(score(frac, conc, soc, soc_alt, ds, core), seconds=t)
    return out


def _crop_to(volume: np.ndarray, shape) -> np.ndarray:
    c = [(a - b) // 2 for a, b in zip(volume.shape, shape)]
    return volume[tuple(slice(o, o + n) for o, n in zip(c, shape))]


def demo_store_case(store_path: str, data_path: str) -> dict:
    """Both methods on the aligned tilt series of a ``chemtomo demo`` run, scored against its truth.

    The store's grid is larger than the truth's and offset by the alignment's frame: the fraction
    maps are cropped to the truth's shape and moved by the whole-voxel shift that registers the
    store's 708.2 eV volume to the true μ volume (as tests/e2e/test_demo.py does).
    """
    from skimage.registration import phase_cross_correlation

    from chemtomo.io.simulated import read_truth
    from chemtomo.io.store import RunStore
    from chemtomo.pipeline.tomo_stage import aligned_tilts

    class _Ctx:  # aligned_tilts reads only the store
        pass

    ctx = _Ctx()
    ctx.store = RunStore(store_path, create=False)
    truth = read_truth(data_path)
    tilts, angles, pixel = aligned_tilts(ctx)
    energies = sorted(tilts)
    refs = reference_spectra(energies)[["LiFePO4", "FePO4"]].to_numpy()
    stack = np.stack([tilts[e] for e in energies])
    ref_vol = ctx.store.read(f"volumes/{energies[0]:g}")
    mu_true = truth.mu[energies[0]]
    shift, _, _ = phase_cross_correlation(mu_true.astype(np.float64), _crop_to(ref_vol, mu_true.shape).astype(np.float64),
                                          upsample_factor=10, normalization=None)

    class _DS:  # what score() needs of a dataset
        sample = truth.sample
        voxel_m = pixel

    def on_truth(v):
        v = _crop_to(np.nan_to_num(v, nan=-1.0), mu_true.shape)
        v = ndimage.shift(v, np.round(shift), order=0, cval=-1.0)
        return np.where(v < 0, np.nan, v)

    core = interior(truth.sample)
    out = {}
    for label, fn in (("two-step", lambda: two_step(stack, angles, refs, pixel, "art", 20)),
                      ("joint", lambda: joint(stack, angles, refs, pixel, JOINT_SWEEPS[len(energies)]))):
        t, (frac, conc, soc, soc_alt) = best_of(fn)
        conc_t = np.stack([np.nan_to_num(on_truth(np.where(c >= 0, c, 0.0)), nan=0.0) for c in conc])
        out[label] = dict(score(on_truth(frac), conc_t, soc, soc_alt, _DS, core), seconds=t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="seed 0 only")
    ap.add_argument("--cases", default="abcd")
    ap.add_argument("--demo-run", nargs=2, metavar=("RUN.zarr", "DATA"),
                    help="also score both methods on the aligned tilt series of a `chemtomo demo` run "
                         "(its run.zarr and data folder)")
    args = ap.parse_args()
    seeds = (0,) if args.quick else (0, 1, 2)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; σ_OD = {SIGMA_OD}, seeds {seeds}")
    # compile the kernels once, outside the timings
    warm = simulate_dataset("demo", seed=0, angles_deg=(-30.0, 0.0, 30.0))
    wt = np.stack([warm.od_truth(e) for e in warm.energies_ev])
    wr = reference_spectra(list(warm.energies_ev))[["LiFePO4", "FePO4"]].to_numpy()
    joint(wt, warm.angles_deg, wr, warm.voxel_m, 1)
    for alg in ("art", "sart"):
        reconstruct(wt[0], warm.angles_deg, alg, 1)
    header = ("| case | method | RMS plates | RMS interior | SOC error | SOC error (volumes) | 3-class agree "
              "| particles found/true "
              "| activity agrees (matched) | active found/true | time s | RMS ratio | time ratio |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    jobs = [(key, CASES[key][0], lambda key=key: [run_case(key, s) for s in seeds]) for key in args.cases]
    if args.demo_run:
        jobs.append(("a'", "demo pipeline's aligned series", lambda: [demo_store_case(*args.demo_run)]))
    for key, title, job in jobs:
        runs = job()
        agg = {}
        for method in runs[0]:
            r = [x[method] for x in runs]
            agg[method] = {
                "rms": np.sqrt(np.mean([x["rms"] ** 2 for x in r])),
                "rms_core": np.sqrt(np.mean([x["rms_core"] ** 2 for x in r])),
                "soc_err": np.mean([x["soc_err"] for x in r]),
                "soc_err_alt": np.mean([x["soc_err_alt"] for x in r]),
                "classes": np.mean([x["classes"] for x in r]),
                "found": sum(x["n_found"] for x in r), "true": sum(x["n_true"] for x in r),
                "agree": sum(x["active_agree"] for x in r), "matched": sum(x["n_matched"] for x in r),
                "act_f": sum(x["n_active_found"] for x in r), "act_t": sum(x["n_active_true"] for x in r),
                "seconds": np.sum([x["seconds"] for x in r]),
            }
        base = agg["two-step"]
        for method, a in agg.items():
            print(f"| ({key}) {title} | {method} | {a['rms']:.4f} | {a['rms_core']:.4f} | {a['soc_err']:.4f} | "
                  f"{a['soc_err_alt']:.4f} | "
                  f"{a['classes']:.3f} | {a['found']}/{a['true']} | {a['agree']}/{a['matched']} | "
                  f"{a['act_f']}/{a['act_t']} | {a['seconds']:.2f} | {a['rms'] / base['rms']:.2f} | "
                  f"{a['seconds'] / base['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
