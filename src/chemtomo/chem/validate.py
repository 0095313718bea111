"""Validation of the 3D chemical map against 2D X-ray absorption spectroscopy (XAS).

The paper checks its tomographic map by projecting the 3D FePO4 fraction along z and comparing
it with a map from an independent 2D spectral image stack (many energies across the Fe L3
edge), fitted pixel by pixel as a linear combination of the reference spectra. The fit quality
is the R-factor, ``R = Σ_e (data_e − fit_e)² / Σ_e data_e²`` per pixel (the definition of
Athena/IFEFFIT's linear-combination fitting); the paper finds R < 0.15 in 94.64 % of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chemtomo.core import InputError

from .stack_fit import fit_stack
from .statistics import _check_thresholds, classify
from .unmix import fraction as _fraction
from .unmix import sample_mask

__all__ = ["lcf_2d", "project_fraction", "compare_2d", "validate_2d", "Validation2D", "R_FACTOR_GOOD"]

#: R-factor below which a pixel's fit is counted as good (the paper's criterion).
R_FACTOR_GOOD = 0.15


def lcf_2d(stack, energies_ev, reference_table, *, method: str = "nnls", mask=None):
    """Per-pixel linear-combination fit of a 2D spectral image stack with reference spectra.

    Parameters
    ----------
    stack : (n_energies, ny, nx) float
        Optical density images of the same field at each energy (aligned).
    energies_ev : (n_energies,) float
        Their energies, eV; all inside the reference table's range.
    reference_table : DataFrame or dict with an ``energy_eV`` column and one column per phase
        (LiFePO4 first, FePO4 last), e.g. ``references.csv`` as read by io; or a pair
        ``(energies_ev, {phase: values})``. Absorption in 1/m.
    method : {"nnls", "lstsq"}
        Non-negative fit (default, as LCF software does) or plain least squares.
    mask : bool (ny, nx), optional
        Pixels holding sample. Default: Otsu's threshold on the fitted total thickness.

    Returns
    -------
    fraction_map : (ny, nx) float32
        FePO4 fraction x_FP, NaN outside the mask.
    concentrations : (n_phases, ny, nx) float32
        Fitted thickness of each phase, metres (OD = Σ_k μ_k t_k).
    r_factor : (ny, nx) float32
        Σ_e (data − fit)² / Σ_e data² per pixel; NaN where Σ data² = 0 or data are non-finite.

    Notes
    -----
    The fit is :func:`chemtomo.chem.fit_stack`, the same one ``chemtomo xas`` runs on measured
    STXM stacks; this function adds the sample mask and the FePO4 fraction.
    """
    s = np.asarray(stack, dtype=np.float32)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if s.ndim == 3 and mask.shape != s.shape[1:]:
            raise InputError(f"mask has shape {mask.shape} but the images have {s.shape[1:]}")
    fit = fit_stack(s, energies_ev, reference_table, method=method)
    conc, r = fit.maps, fit.r_factor
    if mask is None:
        mask = sample_mask(conc.sum(axis=0))
    return _fraction(conc, mask=mask), conc, r


def project_fraction(fraction, density, axis: int = 1) -> np.ndarray:
    """Density-weighted projection of a 3D fraction map: Σ ρ x / Σ ρ along ``axis``.

    Parameters
    ----------
    fraction : (ny, nz, nx) float, NaN outside the sample
    density : (ny, nz, nx) float, Σ_k C_k
    axis : int
        Axis to project along; 1 is z, the beam direction at 0° (DESIGN.md), matching a 2D map
        taken at 0° tilt.

    Returns
    -------
    projected : float32, the volume's shape without ``axis``
        The FePO4 share of the material along each ray (what a 2D transmission map measures);
        NaN where the ray meets no sample voxel.
    """
    x = np.asarray(fraction, dtype=np.float64)
    rho = np.asarray(density, dtype=np.float64)
    if x.shape != rho.shape:
        raise InputError(f"fraction has shape {x.shape} but density has {rho.shape}")
    if not -x.ndim <= axis < x.ndim:
        raise InputError(f"axis {axis} is out of range for a {x.ndim}D map")
    use = np.isfinite(x) & np.isfinite(rho) & (rho > 0)
    w = np.where(use, rho, 0.0)
    num = np.sum(w * np.where(use, x, 0.0), axis=axis)
    den = np.sum(w, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / den, np.nan)
    return out.astype(np.float32)


def compare_2d(map_a, map_b, mask=None, *, r_factor=None, thresholds=(0.3, 0.7)) -> dict[str, float]:
    """Difference statistics between two 2D fraction maps (e.g. projected 3D vs 2D XAS).

    Parameters
    ----------
    map_a, map_b : (ny, nx) float, NaN outside the sample
    mask : bool (ny, nx), optional
        Pixels to compare; always restricted to pixels finite in both maps.
    r_factor : (ny, nx) float, optional
        The LCF R-factor map; adds the share of compared pixels with R < 0.15.
    thresholds : (lfp_rich_max, fp_rich_min)
        Class limits for the class agreement.

    Returns
    -------
    dict with
        ``n_pixels``; ``mean_difference`` (mean of a − b); ``rms_difference``;
        ``mean_abs_difference``; ``correlation`` (Pearson, NaN when either map is constant);
        ``mean_a``, ``mean_b``; ``class_agreement`` (share of pixels in the same class);
        ``share_r_below_0.15`` (only with ``r_factor``).
    """
    a = np.asarray(map_a, dtype=np.float64)
    b = np.asarray(map_b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"map_a has shape {a.shape} but map_b has {b.shape}")
    _check_thresholds(thresholds)
    use = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != a.shape:
            raise InputError(f"mask has shape {mask.shape} but the maps have {a.shape}")
        use &= mask
    n = int(use.sum())
    if n == 0:
        raise InputError("compare_2d: no pixel is finite in both maps (and inside the mask)")
    da, db = a[use], b[use]
    diff = da - db
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = float(np.corrcoef(da, db)[0, 1]) if n > 1 and da.std() > 0 and db.std() > 0 else float("nan")
    out = {
        "n_pixels": float(n),
        "mean_difference": float(diff.mean()),
        "rms_difference": float(np.sqrt(np.mean(diff ** 2))),
        "mean_abs_difference": float(np.mean(np.abs(diff))),
        "correlation": corr,
        "mean_a": float(da.mean()),
        "mean_b": float(db.mean()),
        "class_agreement": float(np.mean(classify(da, thresholds) == classify(db, thresholds))),
    }
    if r_factor is not None:
        r = np.asarray(r_factor, dtype=np.float64)
        if r.shape != a.shape:
            raise InputError(f"r_factor has shape {r.shape} but the maps have {a.shape}")
        rv = r[use]
        out[f"share_r_below_{R_FACTOR_GOOD:g}"] = float(np.mean(np.isfinite(rv) & (rv < R_FACTOR_GOOD)))
    return out


@dataclass(frozen=True)
class Validation2D:
    """Result of :func:`validate_2d`.

    fraction_2d  : (ny, nx) float32, FePO4 fraction from the 2D XAS fit, NaN outside its mask
    projected_3d : (ny, nx) float32, the 3D fraction projected along z (density-weighted)
    r_factor     : (ny, nx) float32, LCF R-factor per pixel
    statistics   : :func:`compare_2d` of projected_3d against fraction_2d, plus ``soc_2d`` and
                   ``soc_3d`` (thickness- and density-weighted mean fractions over the compared
                   pixels) and ``share_r_below_0.15_all`` (over all pixels of the 2D mask)
    """

    fraction_2d: np.ndarray
    projected_3d: np.ndarray
    r_factor: np.ndarray
    statistics: dict[str, float]


def validate_2d(stack, energies_ev, reference_table, fraction, density, *,
                thresholds=(0.3, 0.7)) -> Validation2D:
    """The paper's validation in one call: LCF of the 2D XAS stack vs the projected 3D map.

    Parameters
    ----------
    stack, energies_ev, reference_table
        As for :func:`lcf_2d`; the stack is taken at 0° tilt on the volume's (y, x) grid.
    fraction, density : (ny, nz, nx) float
        The 3D chemical map (NaN outside the sample) and its density Σ_k C_k.
    thresholds : (lfp_rich_max, fp_rich_min), class limits for the class agreement.

    Returns
    -------
    Validation2D
    """
    frac_2d, conc, r = lcf_2d(stack, energies_ev, reference_table)
    proj = project_fraction(fraction, density, axis=1)
    if proj.shape != frac_2d.shape:
        raise InputError(f"the 3D map projects to {proj.shape} but the 2D XAS images are {frac_2d.shape}; "
                         "expected the volume's (ny, nx) grid")
    stats = compare_2d(proj, frac_2d, r_factor=r, thresholds=thresholds)
    use = np.isfinite(proj) & np.isfinite(frac_2d)
    thick = conc.sum(axis=0)
    rho = np.nansum(np.where(np.isfinite(fraction), density, 0.0), axis=1)
    stats["soc_2d"] = float(np.sum(thick[use] * frac_2d[use]) / np.sum(thick[use]))
    stats["soc_3d"] = float(np.sum(rho[use] * proj[use]) / np.sum(rho[use]))
    in_2d = np.isfinite(frac_2d)
    stats[f"share_r_below_{R_FACTOR_GOOD:g}_all"] = float(np.mean(r[in_2d] < R_FACTOR_GOOD))
    return Validation2D(frac_2d, proj, r, stats)
