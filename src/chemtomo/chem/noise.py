"""Noise of the optical-density volumes and its propagation into concentrations and fractions.

The noise σ of an OD volume is estimated from the data itself: from the spread of the empty
(air) voxels, or from two independent half-data reconstructions a and b, whose half-difference
(a − b)/2 has exactly the noise of their mean (a + b)/2 and none of the structure. Unmixing is
linear, ``C = A · OD`` with ``A`` the (pseudo-)inverse of the reference matrix, so with
independent noise at each energy ``Var C_k = Σ_e A_ke² σ_e²``; the fraction x = C_last / Σ C is
propagated to first order.
"""

from __future__ import annotations

import numpy as np

from chemtomo.core import InputError, to_numpy

from ._otsu import otsu_thresholds
from .unmix import _design

__all__ = ["estimate_noise", "uncertainty"]

_MAD_TO_SIGMA = 1.482602218505602  # σ = 1.4826 · median absolute deviation for Gaussian noise


def estimate_noise(volume, mask=None, *, other_half=None) -> float:
    """Standard deviation of the noise in an OD volume (or image), estimated from the data.

    Parameters
    ----------
    volume : float array
        An OD volume or image. With ``other_half``, one of two independent half-data
        reconstructions.
    mask : bool array, optional
        Voxels to use. Without ``other_half`` these should be empty (air) voxels; when not given,
        the voxels at or below Otsu's threshold of ``volume`` are taken as air, and the spread
        is measured below their median only (thinly filled voxels make the upper side heavier).
    other_half : float array, optional
        The other half-data reconstruction (same shape). The result is then the noise of the
        mean ``(volume + other_half) / 2``, measured as the standard deviation of
        ``(volume − other_half) / 2`` inside ``mask`` (everywhere when no mask).

    Returns
    -------
    sigma : float
        Noise standard deviation in the volume's units. The air estimate is robust
        (1.4826 × median absolute deviation) so that stray structure does not inflate it.

    Notes
    -----
    The air estimate assumes the noise is the same inside the sample as in the air, which holds
    for tomographic reconstructions (noise spreads over the whole slice) but not for 2D images of
    thick samples, where Poisson noise grows with OD.
    """
    v = np.asarray(volume, dtype=np.float32)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != v.shape:
            raise InputError(f"mask has shape {mask.shape} but volume has {v.shape}")
    if other_half is not None:
        b = np.asarray(other_half, dtype=np.float32)
        if b.shape != v.shape:
            raise InputError(f"other_half has shape {b.shape} but volume has {v.shape}; "
                             "expected two half reconstructions on the same grid")
        diff = (v - b) / 2
        values = diff[mask] if mask is not None else diff.reshape(-1)
        values = values[np.isfinite(values)]
        if values.size < 2:
            raise InputError("estimate_noise: fewer than 2 finite voxels to measure the half-difference on")
        return float(np.std(values.astype(np.float64)))
    auto = mask is None
    if auto:
        finite = v[np.isfinite(v)]
        if finite.size < 2:
            raise InputError("estimate_noise: volume has fewer than 2 finite voxels")
        mask = np.isfinite(v) & (v <= otsu_thresholds(finite.reshape(1, -1))[0])
    values = v[mask]
    values = values[np.isfinite(values)].astype(np.float64)
    if values.size < 2:
        raise InputError("estimate_noise: the air mask holds fewer than 2 finite voxels")
    # the medians reorder ``values`` in place (a median depends on the values, not their order):
    # no copy of a volume's worth of doubles for each
    centre = np.median(values, overwrite_input=True)
    if auto:
        # thinly filled voxels below the threshold add a one-sided (positive) tail to the air:
        # measure the spread on the lower side of the median only
        below = centre - values[values < centre]
        if below.size >= 2:
            return float(_MAD_TO_SIGMA * np.median(below, overwrite_input=True))
    values -= centre
    return float(_MAD_TO_SIGMA * np.median(np.abs(values, out=values), overwrite_input=True))


def uncertainty(ods_sigma, references, concentrations, *, pre_edge=None, voxel_m: float | None = None):
    """Per-voxel standard deviation of each concentration and of the FePO4 fraction.

    Parameters
    ----------
    ods_sigma : float, (n_energies,) or (n_energies, ...) float
        Noise σ of the OD at each energy (e.g. from :func:`estimate_noise`), one number for all
        energies, one per energy, or per voxel. Energies are taken as independent.
    references : (n_energies, n_phases) float
        The matrix given to :func:`unmix`.
    concentrations : (n_phases, ...) float
        The result of :func:`unmix` (needed for the fraction's linearisation).
    pre_edge, voxel_m
        As given to :func:`unmix`. A pre-edge *index* propagates that energy's noise too; a
        pre-edge *array* is taken as noiseless.

    Returns
    -------
    sigma_concentrations : (n_phases, ...) float32
    sigma_fraction : (...) float32
        First-order σ of x = C_last / Σ_k C_k; NaN where the density Σ_k C_k is not positive or a
        concentration is NaN.

    Notes
    -----
    For every unmixing method the linear (unconstrained) estimate ``C = A d OD`` is propagated,
    with ``A = (RᵀR)⁻¹Rᵀ`` and ``d`` the pre-edge difference map:
    ``σ²(C_k) = Σ_e (A d)_ke² σ_e²`` and, with ``h_e = ((A d)_last,e − x Σ_j (A d)_je) / Σ_j C_j``,
    ``σ²(x) = Σ_e h_e² σ_e²``. It is exact for "exact" and "lstsq"; for "nnls" it is the σ of
    voxels away from the non-negativity bound, and is conservative at it.
    """
    c = to_numpy(concentrations).astype(np.float32, copy=False)
    if c.ndim < 2:
        raise InputError(f"concentrations must have shape (n_phases, ...), got {c.shape}")
    sig = to_numpy(ods_sigma).astype(np.float64)
    n_e = np.asarray(references).shape[0] if np.ndim(references) == 2 else -1
    r, d, _ = _design(references, n_e, pre_edge, voxel_m)
    if r.shape[1] != c.shape[0]:
        raise InputError(f"references have {r.shape[1]} phases but concentrations have {c.shape[0]}")
    spatial = c.shape[1:]
    if sig.ndim == 0:
        sig = np.full(n_e, float(sig))
    if sig.shape[0] != n_e or sig.ndim not in (1, 1 + len(spatial)) or (sig.ndim > 1 and sig.shape[1:] != spatial):
        raise InputError(f"ods_sigma must be a number, ({n_e},) or ({n_e}, *{spatial}); got shape {sig.shape}")
    if not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise InputError("ods_sigma must be finite and non-negative")
    var = (sig ** 2).astype(np.float32)
    if sig.ndim == 1:
        var = var.reshape((n_e,) + (1,) * len(spatial))
    a = (np.linalg.pinv(r) @ d).astype(np.float32)        # (K, n_e): concentrations per measured OD
    expand = (slice(None),) + (None,) * len(spatial)
    var_c = np.sum(a[(...,) + (None,) * len(spatial)] ** 2 * var[None], axis=1)
    density = np.sum(c, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = c[-1] / density
        h = (a[-1][expand] - x[None] * a.sum(axis=0)[expand]) / density[None]
        var_x = np.sum(h ** 2 * var, axis=0)
    bad = ~(np.isfinite(density) & (density > 0))
    sigma_x = np.where(bad, np.nan, np.sqrt(var_x)).astype(np.float32)
    sigma_c = np.where(np.isnan(c), np.nan, np.sqrt(var_c)).astype(np.float32)
    return sigma_c, sigma_x
