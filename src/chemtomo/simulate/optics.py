"""Optical constants of LiFePO4 and FePO4 across the Fe L3 edge, and OD tilt series of a sample.

The complex refractive index is ``n = 1 − δ + iβ`` (DESIGN.md) with

    δ = (r_e λ² / 2π) N Σ_atoms f1,      β = (r_e λ² / 2π) N Σ_atoms f2,

N the number of formula units per m³ (from the density), r_e the classical electron radius and
``f = f1 + i f2`` the forward scattering factor of each atom, in electrons. The linear absorption
coefficient is ``μ = 4πβ / λ`` (1/m), so that OD = ∫μ dz.

Each atom's f is the sum of two parts:

1. **Off-resonant (atomic) part**: the tabulated Chantler factors (``xraydb.f1_chantler``,
   ``xraydb.f2_chantler``; f1 = Z + f′) for Li, Fe, P and O. For Fe these already hold the
   L3/L2 absorption steps (706.8 / 719.9 eV) and the matching anomalous dip of f1; the Fe³⁺ step
   of FePO4 is moved up by the chemical shift ``FE3_SHIFT_EV``.
2. **Resonant white lines** of Fe (2p → 3d): a few Voigt lines per phase (``WHITE_LINES``), for
   LiFePO4 (Fe²⁺) the strongest at 708.2 eV, for FePO4 (Fe³⁺) at 710.2 eV, with the weaker
   multiplet features of the measured spectra. A line of peak height A (electrons), Lorentzian
   half width γ and Gaussian width σ is

       z = (E − E0 + iγ) / (σ√2),

   with w the Faddeeva function (``scipy.special.wofz``): f2 = A Re w / Re w(iγ/(σ√2)) is the
   Voigt profile and f1 = A Im w / Re w(iγ/(σ√2)) its Hilbert transform. ``f1 − i f2 = −i A w``
   is the boundary value of a function analytic in the upper half plane (time dependence
   e^{−iωt}), so the pair satisfies the Kramers–Kronig relations exactly and δ is consistent with
   β. (For σ → 0 this is the Lorentzian pair f2 = Aγ²/(x² + γ²), f1 = Aγx/(x² + γ²), x = E − E0:
   f1 falls below a line and rises above it.)

Magnitudes: the white-line heights are chosen from the typical ratio of Fe L3 white line to L3
edge step for ferrous/ferric compounds (≈ 4–5 times the tabulated step), which gives for LiFePO4
at 708.2 eV μ ≈ 8 /µm (OD ≈ 0.16 per 20 nm plate; the off-resonant O/P/Fe absorption alone is
≈ 2.2 /µm, OD ≈ 0.044 per 20 nm) and for FePO4 at 710.2 eV μ ≈ 7 /µm.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import xraydb
from scipy.special import wofz

from ..core.errors import InputError
from ..core.units import energy_to_wavelength

__all__ = [
    "DENSITY_G_CM3",
    "E1_EV",
    "E2_EV",
    "FE3_SHIFT_EV",
    "PHASES",
    "WHITE_LINES",
    "absorption_coefficient",
    "od_tilt_series",
    "phase_volume_projections",
    "reference_spectra",
    "refractive_index",
]

#: Phases simulated, LiFePO4 first and FePO4 last (DESIGN.md reference order).
PHASES = ("LiFePO4", "FePO4")
#: Paper's energies: E1 (Fe²⁺ maximum) and E2 (Fe³⁺ maximum), eV.
E1_EV, E2_EV = 708.2, 710.2
#: Mass densities, g/cm³.
DENSITY_G_CM3 = {"LiFePO4": 3.6, "FePO4": 2.9}
#: Atoms per formula unit.
_FORMULA = {"LiFePO4": {"Li": 1, "Fe": 1, "P": 1, "O": 4}, "FePO4": {"Fe": 1, "P": 1, "O": 4}}
#: Chemical shift of the Fe³⁺ absorption step relative to the tabulated (metallic) Fe step, eV.
FE3_SHIFT_EV = 1.5
#: Resonant Fe 2p→3d lines per phase: (centre eV, peak height electrons/Fe, Lorentz HWHM eV,
#: Gaussian sigma eV). Fe²⁺: L3 main 708.2 with a shoulder near 710; Fe³⁺: L3 pre-peak near
#: 708.4 and main 710.2; both with their L2 lines near 721–723 eV (outside the scanned range, kept
#: for the Kramers–Kronig tail). The main lines sit 0.04 eV below 708.2 / 710.2 so that the whole
#: spectrum, whose absorption step is still rising there, peaks at 708.2 / 710.2 eV (± 0.01).
WHITE_LINES = {
    "LiFePO4": ((708.16, 42.0, 0.35, 0.30), (709.9, 13.0, 0.45, 0.35), (711.4, 6.0, 0.6, 0.4),
                (721.0, 14.0, 0.6, 0.4)),
    "FePO4": ((708.45, 12.0, 0.4, 0.3), (710.16, 42.0, 0.35, 0.30), (711.6, 8.0, 0.6, 0.4),
              (722.7, 14.0, 0.7, 0.4)),
}
_ATOMIC_MASS = {"Li": 6.94, "Fe": 55.845, "P": 30.973762, "O": 15.999}
_R_E_M = 2.8179403262e-15  # classical electron radius, m
_AVOGADRO = 6.02214076e23


def _check_phase(phase: str) -> str:
    aliases = {"lfp": "LiFePO4", "lifepo4": "LiFePO4", "fp": "FePO4", "fepo4": "FePO4"}
    key = aliases.get(str(phase).lower())
    if key is None:
        raise InputError(f"phase must be one of {PHASES} (or 'LFP'/'FP'), got {phase!r}")
    return key


def _check_energies(energy_ev, name: str = "energy_ev") -> np.ndarray:
    e = np.asarray(energy_ev, dtype=np.float64)
    if e.size == 0 or not np.all(np.isfinite(e)) or np.any(e < 100.0) or np.any(e > 2000.0):
        raise InputError(f"{name} must be finite photon energies in 100–2000 eV, got {energy_ev!r}")
    return e


def _formula_units_per_m3(phase: str) -> float:
    molar_mass = sum(n * _ATOMIC_MASS[el] for el, n in _FORMULA[phase].items())  # g/mol
    return DENSITY_G_CM3[phase] / molar_mass * _AVOGADRO * 1e6


def _white_lines(phase: str, e: np.ndarray) -> np.ndarray:
    """Complex resonant scattering factor f1 + i f2 (electrons per formula unit)."""
    f = np.zeros(e.shape, np.complex128)
    for centre, height, gamma, sigma in WHITE_LINES[phase]:
        s = sigma * math.sqrt(2.0)
        w = wofz((e - centre + 1j * gamma) / s) / wofz(1j * gamma / s).real
        f += height * (w.imag + 1j * w.real)  # f1 = Im w (dispersion), f2 = Re w (Voigt)
    return f


def _scattering_factor(phase: str, e: np.ndarray) -> np.ndarray:
    """Total complex forward scattering factor per formula unit, electrons."""
    f = np.zeros(e.shape, np.complex128)
    for el, n in _FORMULA[phase].items():
        ee = e - FE3_SHIFT_EV if (el == "Fe" and phase == "FePO4") else e
        z = xraydb.atomic_number(el)
        f1 = z + np.asarray(xraydb.f1_chantler(el, ee.ravel()), np.float64).reshape(e.shape)
        f2 = np.asarray(xraydb.f2_chantler(el, ee.ravel()), np.float64).reshape(e.shape)
        f += n * (f1 + 1j * f2)
    return f + _white_lines(phase, e)


def refractive_index(phase: str, energy_ev):
    """δ and β of a pure phase at full density, n = 1 − δ + iβ.

    Parameters
    ----------
    phase : "LiFePO4" or "FePO4" (aliases "LFP", "FP")
    energy_ev : float or array of float
        Photon energies, eV (100–2000).

    Returns
    -------
    delta, beta : float64 arrays shaped like ``energy_ev`` (floats for a scalar input)

    Notes
    -----
    See the module docstring for the model (Chantler atomic factors + Kramers–Kronig-consistent
    Voigt white lines).

    Examples
    --------
    >>> d, b = refractive_index("LiFePO4", 708.2)
    >>> 1e-4 < b < 3e-3 and 0 < d < 3e-3
    True
    """
    phase = _check_phase(phase)
    e = _check_energies(energy_ev)
    lam = energy_to_wavelength(1.0) / e  # λ in metres for each energy
    f = _scattering_factor(phase, e)
    pre = _R_E_M * lam ** 2 / (2.0 * math.pi) * _formula_units_per_m3(phase)
    delta, beta = pre * f.real, pre * f.imag
    if np.ndim(energy_ev) == 0:
        return float(delta), float(beta)
    return delta, beta


def absorption_coefficient(phase: str, energy_ev):
    """Linear absorption coefficient μ = 4πβ/λ of a pure phase, 1/m (same shape as ``energy_ev``).

    Examples
    --------
    >>> mu1 = absorption_coefficient("LiFePO4", 708.2)   # 1/m
    >>> 5e6 < mu1 < 1.2e7
    True
    """
    _, beta = refractive_index(phase, energy_ev)
    e = _check_energies(energy_ev)
    mu = 4.0 * math.pi * np.asarray(beta) * e / energy_to_wavelength(1.0)
    return float(mu) if np.ndim(energy_ev) == 0 else mu


def reference_spectra(energies_ev) -> pd.DataFrame:
    """Reference spectra of the pure phases: μ (1/m) at each energy.

    Returns
    -------
    pandas.DataFrame with columns ``energy_eV``, ``LiFePO4``, ``FePO4`` (the format of
    ``references.csv``, DESIGN.md), one row per energy in the given order.
    """
    e = _check_energies(energies_ev, "energies_ev").ravel()
    return pd.DataFrame({"energy_eV": e,
                         "LiFePO4": absorption_coefficient("LiFePO4", e),
                         "FePO4": absorption_coefficient("FePO4", e)})


def phase_volume_projections(sample, angles_deg, *, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Projected volume of each phase, ∫ V_LFP dz and ∫ V_FP dz, in voxel lengths.

    The truth volume is a piecewise-constant object; it is projected on a grid ``supersample``
    times finer (each voxel repeated) and the detector binned back, so that the data do not come
    from the very discretisation the reconstructors invert (no "inverse crime").

    Returns
    -------
    lfp, fp : (n_angles, ny, nx) float32 each; multiply by ``voxel_m`` and μ for OD.
    """
    from ..tomo import project

    lfp, fp = sample.phase_volumes()
    out = []
    for v in (lfp, fp):
        if supersample > 1:
            v = np.repeat(np.repeat(np.repeat(v, supersample, 0), supersample, 1), supersample, 2)
        p = project(v, angles_deg) / supersample  # line integral in coarse voxel lengths
        if supersample > 1:
            na, ny2, nx2 = p.shape
            p = p.reshape(na, ny2 // supersample, supersample, nx2 // supersample, supersample).mean(axis=(2, 4))
        out.append(np.ascontiguousarray(p, np.float32))
    return out[0], out[1]


def od_tilt_series(sample, energies_ev, angles_deg, *, noise_sigma: float = 0.0,
                   seed: int | np.random.Generator = 0,
                   progress: Callable[[int, int], None] | None = None) -> dict[float, np.ndarray]:
    """Optical-density tilt series of a sample at several energies (perfectly aligned).

    OD(E) = ∫ μ dz = μ_LFP(E) ∫V_LFP dz + μ_FP(E) ∫V_FP dz, with V the phase volume fractions
    per voxel (:meth:`Sample.phase_volumes`) and the projections from
    :func:`phase_volume_projections` (the shared geometry of ``chemtomo.tomo.project``, on a 2×
    finer grid).

    Parameters
    ----------
    sample : Sample
    energies_ev : sequence of float
        Photon energies, eV.
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    noise_sigma : float
        Standard deviation of additive Gaussian noise on the OD (dimensionless).
    seed : int or numpy.random.Generator
    progress : callable(done, total), optional

    Returns
    -------
    dict {energy_eV (float): (n_angles, ny, nx) float32 OD}

    Examples
    --------
    >>> from chemtomo.simulate import plate_sample
    >>> s = plate_sample((16, 16, 32), 6.7e-9, n_particles=1, soc=0.0, seed=0)
    >>> ods = od_tilt_series(s, [708.2], [0.0, 30.0])
    >>> ods[708.2].shape
    (2, 16, 32)
    """
    e = _check_energies(energies_ev, "energies_ev").ravel()
    if not (math.isfinite(noise_sigma) and noise_sigma >= 0):
        raise InputError(f"od_tilt_series: noise_sigma must be a finite number >= 0, got {noise_sigma!r}")
    if len(np.unique(e)) != e.size:
        raise InputError(f"od_tilt_series: energies_ev must not repeat, got {e.tolist()}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lfp, fp = phase_volume_projections(sample, angles_deg)
    refs = reference_spectra(e)
    out = {}
    for i, energy in enumerate(e):
        od = (refs.LiFePO4.iloc[i] * sample.voxel_m) * lfp + (refs.FePO4.iloc[i] * sample.voxel_m) * fp
        if noise_sigma > 0:
            od = od + rng.normal(0.0, noise_sigma, od.shape)
        out[float(energy)] = od.astype(np.float32)
        if progress is not None:
            progress(i + 1, e.size)
    return out
