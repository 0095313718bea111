"""Chemical-map benchmark: throughput of each chem step, one process, on a paper-like volume.

1. ``unmix`` (exact 2x2, N-energy least squares, NNLS) on two OD volumes of 64 x 256 x 256
   voxels (4.2 M), then ``uncertainty``, ``fraction``, ``fit_bimodal`` on the sample voxels.
2. NNLS: the vectorised active-set enumeration against scipy.optimize.nnls called per voxel
   (the obvious alternative), on 20,000 voxels of a 5-energy, 3-phase problem; both answers
   are compared.
3. ``optical_density`` on a stack of 79 complex 256 x 256 projections.

Usage::

    .venv/bin/python benchmarks/chem.py          # ~30 s on 2 shared cores
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
from scipy.optimize import nnls as scipy_nnls

from chemtomo.chem import fit_bimodal, fraction, optical_density, sample_mask, uncertainty, unmix
from chemtomo.simulate import reference_spectra

VOXEL_M = 6.7e-9


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def volume_steps() -> None:
    rng = np.random.default_rng(0)
    shape = (64, 256, 256)
    occ = (rng.random(shape) < 0.3).astype(np.float32)
    x = (rng.random(shape) < 0.2).astype(np.float32)
    c = np.stack([occ * (1 - x), occ * x])
    e6 = [708.0, 708.2, 708.5, 710.0, 710.2, 710.5]
    r2 = reference_spectra([708.2, 710.2])[["LiFePO4", "FePO4"]].to_numpy()
    r6 = reference_spectra(e6)[["LiFePO4", "FePO4"]].to_numpy()
    ods2 = (np.einsum("ek,k...->e...", (r2 * VOXEL_M).astype(np.float32), c)
            + rng.normal(0, 0.003, (2,) + shape).astype(np.float32))
    ods6 = (np.einsum("ek,k...->e...", (r6 * VOXEL_M).astype(np.float32), c)
            + rng.normal(0, 0.003, (6,) + shape).astype(np.float32))
    n = int(np.prod(shape))
    print(f"volume {shape} = {n / 1e6:.1f} M voxels, float32")
    for label, fn in [
        ("unmix exact (2 energies)", lambda: unmix(ods2, r2, voxel_m=VOXEL_M)),
        ("unmix lstsq (6 energies)", lambda: unmix(ods6, r6, method="lstsq", voxel_m=VOXEL_M)),
        ("unmix nnls (2 energies)", lambda: unmix(ods2, r2, method="nnls", voxel_m=VOXEL_M)),
    ]:
        t, conc = best_of(fn)
        print(f"  {label:28s} {t:7.3f} s   {n / t / 1e6:6.1f} M voxels/s")
    conc = unmix(ods2, r2, voxel_m=VOXEL_M)
    t, _ = best_of(lambda: uncertainty(0.003, r2, conc, voxel_m=VOXEL_M))
    print(f"  {'uncertainty':28s} {t:7.3f} s   {n / t / 1e6:6.1f} M voxels/s")
    mask = sample_mask(conc.sum(0))
    t, f = best_of(lambda: fraction(conc, mask=mask))
    print(f"  {'sample_mask + fraction':28s} {t:7.3f} s   {n / t / 1e6:6.1f} M voxels/s")
    values = f[np.isfinite(f)]
    t, fit = best_of(lambda: fit_bimodal(values, seed=0), repeat=1)
    print(f"  {'fit_bimodal':28s} {t:7.3f} s   on {values.size / 1e6:.2f} M values, centres "
          f"{np.round(fit.centres, 3).tolist()}, widths {np.round(fit.rms_widths, 3).tolist()}")


def nnls_vs_scipy() -> None:
    rng = np.random.default_rng(1)
    e = [707.5, 708.2, 709.0, 710.2, 711.0]
    r = np.column_stack([reference_spectra(e)[["LiFePO4", "FePO4"]].to_numpy(), np.full(5, 3e6)])
    m = 20000
    c_true = rng.uniform(0, 0.3, (3, m))
    ods = ((r * VOXEL_M) @ c_true + rng.normal(0, 0.01, (5, m))).astype(np.float32)
    t_vec, c_vec = best_of(lambda: unmix(ods, r, method="nnls", voxel_m=VOXEL_M))
    a = (r * VOXEL_M)
    t_ref, c_ref = best_of(lambda: np.stack([scipy_nnls(a, ods[:, i].astype(np.float64))[0] for i in range(m)], 1),
                           repeat=1)
    res = lambda c: np.sum((ods.astype(np.float64) - a @ c) ** 2, axis=0)
    excess = np.max(res(c_vec.astype(np.float64)) - res(c_ref))
    print(f"NNLS, {m} voxels, 5 energies x 3 phases: vectorised {t_vec:.4f} s, scipy per voxel {t_ref:.3f} s "
          f"({t_ref / t_vec:.0f}x), max |difference| {np.max(np.abs(c_vec - c_ref)):.1e} "
          f"(near-ties, largest residual excess {excess:.1e}), "
          f"{np.mean(np.any(c_ref == 0, axis=0)) * 100:.0f} % of voxels on the bound")


def od_stack() -> None:
    rng = np.random.default_rng(2)
    n, ny, nx = 79, 256, 256
    yy, xx = np.mgrid[:ny, :nx]
    disc = (yy - 128) ** 2 + (xx - 120) ** 2 < 60 ** 2
    t = (0.8 * np.exp(-0.15 * disc) * np.exp(1j * (0.02 * xx - 0.1 * disc))).astype(np.complex64)
    stack = np.repeat(t[None], n, 0) + (0.004 * (rng.normal(size=(n, ny, nx))
                                                 + 1j * rng.normal(size=(n, ny, nx)))).astype(np.complex64)
    tm, od = best_of(lambda: optical_density(stack), repeat=1)
    print(f"optical_density, {n} x {ny} x {nx} complex64: {tm:.2f} s ({n / tm:.0f} images/s), "
          f"disc OD {np.nanmean(od[:, disc]):.4f} (true 0.3000)")


if __name__ == "__main__":
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), numpy {np.__version__}")
    volume_steps()
    nnls_vs_scipy()
    od_stack()
