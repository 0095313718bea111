"""Joint vs two-step at the paper preset's size (one seed; ~10 min on 2 shared cores).

The paper's grid (158 angles from −80° to +77°, 151 × 129 × 257 voxels, 80 plates), simulated
aligned OD tilt series with the demo's noise (σ = 0.0035 OD), scored as in :mod:`joint`; the
table under "Joint spectral tomography" in benchmarks/RESULTS.md.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/joint_paper.py
"""

from __future__ import annotations

import time

import joint as bench  # benchmarks/joint.py, run from the repository root or benchmarks/
import numpy as np

from chemtomo import chem
from chemtomo.simulate import reference_spectra, simulate_dataset
from chemtomo.tomo import reconstruct


def main() -> None:
    t0 = time.perf_counter()
    ds = simulate_dataset("paper", seed=0)
    energies = [float(e) for e in ds.energies_ev]
    refs = reference_spectra(energies)[["LiFePO4", "FePO4"]].to_numpy()
    rng = np.random.default_rng([0, 16])
    tilts = np.stack([ds.od_truth(e) + rng.normal(0, bench.SIGMA_OD, ds.od_truth(e).shape).astype(np.float32)
                      for e in energies])
    print("simulated", tilts.shape, f"{time.perf_counter() - t0:.1f} s", flush=True)
    core = bench.interior(ds.sample)
    nz = ds.sample.shape[1]

    def two_step():
        vols = np.stack([reconstruct(t, ds.angles_deg, "art", 20, nz=nz) for t in tilts]) / ds.voxel_m
        conc = chem.unmix(vols, refs)
        frac = chem.fraction(conc, mask=chem.sample_mask(np.nansum(conc, axis=0)))
        soc, _ = chem.state_of_charge(conc)
        return frac, conc, soc, soc

    def joint():
        r = chem.joint_reconstruct(tilts, ds.angles_deg, refs, voxel_m=ds.voxel_m, iterations=10, nz=nz)
        return r.fraction, r.concentrations, r.soc, r.soc_projections

    for label, fn in (("two-step", two_step), ("joint", joint)):
        t = time.perf_counter()
        frac, conc, soc, alt = fn()
        dt = time.perf_counter() - t
        s = bench.score(frac, conc, soc, alt, ds, core)
        print(label, f"{dt:.1f} s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()},
              flush=True)


if __name__ == "__main__":
    main()
