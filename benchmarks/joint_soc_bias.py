"""Where the joint method's state-of-charge bias comes from (issue 24, part 2: diagnosis only).

On the cases of ``benchmarks/joint.py`` where the joint method's SOC error is largest (b: 1/10
dose, c: 31 angles over ±60°), ``chem.joint_reconstruct`` (10 sweeps) with and without c ≥ 0,
and its SOC three ways: over the grown sample mask (``JointResult.soc``, what the pipeline
reports), over the whole volume, and from the projection totals (``JointResult.soc_projections``).
Prints signed errors against the simulator's truth.

Run: ``PYTHONPATH=src python benchmarks/joint_soc_bias.py [--seeds 0 1]`` (~1 min on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import joint as B  # noqa: E402  (benchmarks/joint.py: the same cases and noise)

from chemtomo import chem  # noqa: E402
from chemtomo.simulate import reference_spectra, simulate_dataset  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--cases", nargs="+", default=["b", "c"])
    args = ap.parse_args(argv)
    print("| case | seed | c ≥ 0 | SOC − truth, mask region | whole volume | projection totals |")
    print("|---|---|---|---|---|---|")
    for key in args.cases:
        title, overrides, sigma = B.CASES[key]
        for seed in args.seeds:
            ds = simulate_dataset("demo", seed=seed, **overrides)
            energies = [float(e) for e in ds.energies_ev]
            refs = reference_spectra(energies)[["LiFePO4", "FePO4"]].to_numpy()
            rng = np.random.default_rng([seed, 16])   # the noise draw of benchmarks/joint.py
            tilts = np.stack([ds.od_truth(e) + rng.normal(0.0, sigma, ds.od_truth(e).shape).astype(np.float32)
                              for e in energies])
            for nonneg in (True, False):
                res = chem.joint_reconstruct(tilts, ds.angles_deg, refs, voxel_m=ds.voxel_m,
                                             iterations=B.JOINT_SWEEPS[len(energies)], nonneg=nonneg)
                c = res.concentrations
                whole = float(c[-1].sum() / c.sum())
                t = ds.sample.soc
                print(f"| ({key}) {title} | {seed} | {nonneg} | {res.soc - t:+.4f} | {whole - t:+.4f} | "
                      f"{res.soc_projections - t:+.4f} |", flush=True)


if __name__ == "__main__":
    main()
