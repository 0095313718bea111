"""Fe K-edge XANES of LiFePO4 and FePO4: linear absorption μ(E) in 1/m, for full-field TXM.

Hard X-ray XANES imaging of LiFePO4 electrodes works at the Fe K-edge (≈ 7.1 keV), where the
absorption edge of Fe²⁺ (LiFePO4) lies a few eV below that of Fe³⁺ (FePO4). The model is the
usual decomposition of a K-edge spectrum (e.g. the normalisation of Athena; Ravel & Newville,
J. Synchrotron Rad. 12, 537 (2005)):

    μ(E) = μ_pre(E) + Δμ(E) · n(E),

1. **Atomic background** from the tabulated cross-sections of each compound at its density
   (``xraydb.material_mu``, Elam et al. tables, all interactions): ``μ_pre`` is the smooth
   absorption below the Fe K-edge (7112 eV) continued above it, ``μ_post`` the smooth absorption
   above it continued below, each a power law in E fitted to the tables 40–250 eV from the edge.
   ``Δμ = μ_post − μ_pre`` is the Fe K-edge step of the compound (≈ 4.5e4 /m for LiFePO4, the
   attenuation length above the edge is ≈ 16 µm).
2. **Normalised XANES** ``n(E)`` (0 below the edge, → 1 far above), the sum of

   - an arctangent edge step ``1/2 + arctan((E − E0)/w)/π`` at the edge energy E0,
   - a white line (Gaussian, height ``wl_height``, standard deviation ``wl_sigma_ev`` at
     ``wl_ev`` a few eV above E0), multiplied by a smooth onset so it does not leak below E0,
   - a weak 1s → 3d pre-edge peak (Gaussian) near 7112–7114 eV,
   - a small damped post-edge oscillation (the first EXAFS-like wiggle, single Fe–O shell).

Phase parameters (:data:`KEDGE_PARAMETERS`) are typical literature values: the Fe²⁺ edge of
LiFePO4 near 7123 eV and the Fe³⁺ edge of FePO4 about 4 eV higher near 7127 eV, with the white
line of LiFePO4 near 7127 eV and the broader, weaker one of FePO4 near 7132 eV (Deb et al.,
J. Synchrotron Rad. 11, 497 (2004); Wang, Chen-Wiegart & Wang, Nat. Commun. 5, 4570 (2014),
TXM XANES of LiFePO4 at the Fe K-edge); the pre-edge centroids of Fe²⁺ (≈ 7112.1 eV) and Fe³⁺
(≈ 7113.5 eV) follow Wilke et al., Am. Mineral. 86, 714 (2001). Heights are chosen so that the
normalised maxima are ≈ 1.35 (LiFePO4) and ≈ 1.25 (FePO4), as in measured spectra.

Densities: olivine LiFePO4 3.60 g/cm³ and heterosite FePO4 3.68 g/cm³ (from the orthorhombic
cells, 291.4 and 272.4 Å³ with four formula units; the delithiated cell is 6.5 % smaller, so Fe
is denser in FePO4). These are the phases of a charged olivine electrode; the Fe L-edge model
(:mod:`.optics`) keeps its own densities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import xraydb

from ..core.errors import InputError

__all__ = [
    "FE_K_EDGE_EV",
    "KEDGE_DENSITY_G_CM3",
    "KEDGE_PARAMETERS",
    "KEDGE_RANGE_EV",
    "KEdgeParameters",
    "kedge_absorption",
    "kedge_reference_spectra",
    "normalised_xanes",
]

#: Tabulated Fe K-edge (metallic iron), eV.
FE_K_EDGE_EV = 7112.0
#: Energies where the model holds (the power-law backgrounds are fitted within ±250 eV), eV.
KEDGE_RANGE_EV = (6950.0, 7400.0)
#: Mass densities of the olivine phases, g/cm³ (see the module docstring).
KEDGE_DENSITY_G_CM3 = {"LiFePO4": 3.60, "FePO4": 3.68}
_FORMULA = {"LiFePO4": "LiFePO4", "FePO4": "FePO4"}


@dataclass(frozen=True)
class KEdgeParameters:
    """Shape of the normalised Fe K-edge XANES of one phase (energies in eV).

    edge_ev        : E0, centre of the arctangent step (where it reaches 1/2)
    step_width_ev  : w, half width of the arctangent step (core hole ≈ 1.3 eV + resolution)
    wl_ev          : white-line centre
    wl_height      : white-line height in units of the edge step
    wl_sigma_ev    : white-line Gaussian standard deviation
    pre_ev         : pre-edge peak centre (1s → 3d)
    pre_height     : pre-edge peak height in units of the edge step
    pre_sigma_ev   : pre-edge Gaussian standard deviation
    osc_amplitude  : amplitude of the post-edge oscillation, units of the edge step
    osc_period_ev  : its period near the edge, eV (grows as k² would make it)
    """

    edge_ev: float
    step_width_ev: float
    wl_ev: float
    wl_height: float
    wl_sigma_ev: float
    pre_ev: float
    pre_height: float
    pre_sigma_ev: float
    osc_amplitude: float = 0.04
    osc_period_ev: float = 30.0


#: LiFePO4 (Fe²⁺) and FePO4 (Fe³⁺), LiFePO4 first (DESIGN.md reference order).
KEDGE_PARAMETERS = {
    "LiFePO4": KEdgeParameters(edge_ev=7123.0, step_width_ev=1.6, wl_ev=7127.0, wl_height=0.52, wl_sigma_ev=2.6,
                               pre_ev=7112.1, pre_height=0.035, pre_sigma_ev=1.0),
    "FePO4": KEdgeParameters(edge_ev=7127.0, step_width_ev=1.8, wl_ev=7132.0, wl_height=0.40, wl_sigma_ev=3.2,
                             pre_ev=7113.5, pre_height=0.06, pre_sigma_ev=1.1),
}


def _check_phase(phase: str) -> str:
    aliases = {"lfp": "LiFePO4", "lifepo4": "LiFePO4", "fp": "FePO4", "fepo4": "FePO4"}
    key = aliases.get(str(phase).lower())
    if key is None:
        raise InputError(f"phase must be one of {tuple(KEDGE_PARAMETERS)} (or 'LFP'/'FP'), got {phase!r}")
    return key


def _check_energies(energy_ev, name: str = "energy_ev") -> np.ndarray:
    e = np.asarray(energy_ev, dtype=np.float64)
    lo, hi = KEDGE_RANGE_EV
    if e.size == 0 or not np.all(np.isfinite(e)) or np.any(e < lo) or np.any(e > hi):
        raise InputError(f"{name} must be finite photon energies in {lo:g}–{hi:g} eV (the Fe K-edge model's "
                         f"range), got {energy_ev!r}")
    return e


@cache
def _power_laws(phase: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(log a, p) of μ = a E^p below and above the Fe K-edge, fitted to the tables, μ in 1/m."""
    density = KEDGE_DENSITY_G_CM3[phase]
    below = np.linspace(FE_K_EDGE_EV - 250.0, FE_K_EDGE_EV - 40.0, 22)
    above = np.linspace(FE_K_EDGE_EV + 40.0, FE_K_EDGE_EV + 250.0, 22)
    fits = []
    for e in (below, above):
        mu = np.asarray(xraydb.material_mu(_FORMULA[phase], e, density=density), np.float64) * 100.0  # 1/cm -> 1/m
        p, log_a = np.polyfit(np.log(e), np.log(mu), 1)
        fits.append((float(log_a), float(p)))
    return fits[0], fits[1]


def normalised_xanes(energy_ev, parameters: KEdgeParameters) -> np.ndarray:
    """Normalised XANES n(E): 0 well below the edge, 1 far above (float64, shape of ``energy_ev``).

    The sum of an arctangent step at ``edge_ev``, a Gaussian white line (switched on by the step,
    so it adds nothing below the edge), a Gaussian pre-edge peak and a damped post-edge
    oscillation (module docstring). Pure: arrays in, array out.

    Examples
    --------
    >>> p = KEDGE_PARAMETERS["LiFePO4"]
    >>> n = normalised_xanes(np.array([7050.0, 7127.0, 7400.0]), p)
    >>> bool(n[0] < 0.02 and n[1] > 1.2 and abs(n[2] - 1.0) < 0.05)
    True
    """
    e = np.asarray(energy_ev, dtype=np.float64)
    p = parameters
    step = 0.5 + np.arctan((e - p.edge_ev) / p.step_width_ev) / math.pi
    white = p.wl_height * np.exp(-0.5 * ((e - p.wl_ev) / p.wl_sigma_ev) ** 2) * step
    pre = p.pre_height * np.exp(-0.5 * ((e - p.pre_ev) / p.pre_sigma_ev) ** 2)
    # the oscillation starts past the white line, its phase runs as k ∝ sqrt(E − E0)
    above = np.clip(e - p.wl_ev, 0.0, None)
    onset = 1.0 - np.exp(-above / 4.0)
    wiggle = -p.osc_amplitude * onset * np.sin(2.0 * math.pi * np.sqrt(above / p.osc_period_ev))
    return step + white + pre + wiggle * np.exp(-above / 150.0)


def kedge_absorption(phase: str, energy_ev) -> np.ndarray | float:
    """Linear absorption coefficient μ (1/m) of a pure phase at full density across the Fe K-edge.

    Parameters
    ----------
    phase : "LiFePO4" or "FePO4" (aliases "LFP", "FP")
    energy_ev : float or array of float
        Photon energies within :data:`KEDGE_RANGE_EV`, eV.

    Returns
    -------
    μ : float64 array shaped like ``energy_ev`` (a float for a scalar input), 1/m.

    Notes
    -----
    ``μ = μ_pre + (μ_post − μ_pre) n(E)`` with the tabulated backgrounds and the normalised XANES
    :func:`normalised_xanes` (module docstring). Far from the edge it equals the tables.

    Examples
    --------
    >>> mu = kedge_absorption("LiFePO4", [7090.0, 7180.0])     # 1/m: ~17,000 and ~60,000
    >>> bool(1.5e4 < mu[0] < 2e4 and 5.5e4 < mu[1] < 6.5e4)
    True
    """
    phase = _check_phase(phase)
    e = _check_energies(energy_ev)
    (la_pre, p_pre), (la_post, p_post) = _power_laws(phase)
    mu_pre = np.exp(la_pre + p_pre * np.log(e))
    mu_post = np.exp(la_post + p_post * np.log(e))
    mu = mu_pre + (mu_post - mu_pre) * normalised_xanes(e, KEDGE_PARAMETERS[phase])
    return float(mu) if np.ndim(energy_ev) == 0 else mu


def kedge_reference_spectra(energies_ev) -> pd.DataFrame:
    """Fe K-edge reference spectra of the pure phases: μ (1/m) at each energy.

    Returns
    -------
    pandas.DataFrame with columns ``energy_eV``, ``LiFePO4``, ``FePO4`` (the ``references.csv``
    format of DESIGN.md: one common scale, LiFePO4 first), one row per energy in the given order.

    Examples
    --------
    >>> refs = kedge_reference_spectra([7090.0, 7125.0])
    >>> list(refs.columns)
    ['energy_eV', 'LiFePO4', 'FePO4']
    """
    e = _check_energies(energies_ev, "energies_ev").ravel()
    return pd.DataFrame({"energy_eV": e,
                         "LiFePO4": kedge_absorption("LiFePO4", e),
                         "FePO4": kedge_absorption("FePO4", e)})
