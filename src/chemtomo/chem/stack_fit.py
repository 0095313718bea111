"""Per-pixel linear-combination fit of a 2D spectral image stack (STXM XAS, projected 3D map).

Each pixel's optical-density spectrum is fitted as a non-negative combination of the reference
spectra, ``OD_e ≈ Σ_k R[e, k] c_k`` with ``c_k ≥ 0`` (Beer–Lambert: ``c_k`` is the thickness of
phase k when ``R`` is its linear absorption coefficient). The fit quality per pixel is the
R-factor of Athena/IFEFFIT linear-combination fitting, ``R = Σ_e (OD_e − fit_e)² / Σ_e OD_e²``;
the paper counts a pixel as well fitted when R < 0.15. This one function serves ``chemtomo xas``
(measured STXM stacks) and the pipeline's 2D validation (:func:`chemtomo.chem.lcf_2d`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chemtomo.core import InputError

from .references import MAX_REFERENCE_GAP_EV, _columns, references_from_table
from .unmix import unmix

__all__ = ["fit_stack", "StackFit", "reference_table_energies"]


@dataclass(frozen=True)
class StackFit:
    """Result of :func:`fit_stack`.

    names       : phase (reference column) names, in the table's order
    maps        : (n_phases, ny, nx) float32, fitted amount of each phase per pixel, in the
                  inverse unit of the references (metres of material for μ in 1/m); NaN where
                  the pixel's spectrum is not finite or outside ``mask``
    r_factor    : (ny, nx) float32, Σ_e (OD − fit)² / Σ_e OD² per pixel; NaN where Σ OD² = 0 or
                  the pixel was not fitted
    references  : (n_energies, n_phases) float64, the reference matrix at the stack's energies
    energies_ev : (n_energies,) float64
    method      : "nnls" or "lstsq"
    """

    names: tuple[str, ...]
    maps: np.ndarray
    r_factor: np.ndarray
    references: np.ndarray
    energies_ev: np.ndarray
    method: str

    def map(self, name: str) -> np.ndarray:
        """The (ny, nx) map of the phase called ``name``."""
        if name not in self.names:
            raise InputError(f"no phase {name!r} in the fit; phases: {list(self.names)}")
        return self.maps[self.names.index(name)]


def reference_table_energies(reference_table):
    """(energies_ev, phase table) from a table holding an ``energy_eV`` column, or a pair.

    ``reference_table`` is a DataFrame or dict with an ``energy_eV`` column and one column per
    phase, or a pair ``(energies_ev, {phase: values})`` as :func:`chemtomo.io.read_references`
    returns it.
    """
    if isinstance(reference_table, tuple) and len(reference_table) == 2:
        return np.asarray(reference_table[0], dtype=np.float64), reference_table[1]
    keys = list(reference_table.keys()) if hasattr(reference_table, "keys") else list(reference_table.columns)
    ekey = next((k for k in keys if str(k).lower() == "energy_ev"), None)
    if ekey is None:
        raise InputError(f"reference_table needs an 'energy_eV' column (or be a pair (energies_ev, table)); "
                         f"found columns {[str(k) for k in keys]}")
    return np.asarray(reference_table[ekey], dtype=np.float64), reference_table


def fit_stack(od_stack, energies_ev, references, *, method: str = "nnls", mask=None,
              max_gap_ev: float | None = MAX_REFERENCE_GAP_EV) -> StackFit:
    """Fit every pixel of an optical-density stack with the reference spectra.

    Parameters
    ----------
    od_stack : (n_energies, ny, nx) float
        Optical density images of one field, aligned, at each energy. Non-finite pixels (e.g.
        outside the region every energy covers after alignment) are left unfitted (NaN).
    energies_ev : (n_energies,) float
        Their energies, eV; each within the references' energy range (never extrapolated).
    references : reference table
        DataFrame or dict with an ``energy_eV`` column and one column per phase, or a pair
        ``(energies_ev, {phase: values})`` (:func:`chemtomo.io.read_references`). At least two
        phases, one common scale (e.g. μ in 1/m, or OD per nm).
    method : {"nnls", "lstsq"}
        Non-negative least squares (default, as LCF software does) or plain least squares.
    mask : bool (ny, nx), optional
        Pixels to fit; the others are NaN in every output.
    max_gap_ev : float or None
        A stack energy that is not a reference row is interpolated only between rows at most this
        far apart (default 1 eV; ``chem.references_from_table``); None: no limit.

    Returns
    -------
    StackFit
        A map per phase (named as the reference columns) and the R-factor per pixel.

    Raises
    ------
    InputError
        Shapes that disagree, fewer energies than phases, an unknown method, energies outside the
        references' range, or reference spectra that cannot be told apart at these energies.

    Examples
    --------
    >>> refs = ([700.0, 710.0, 720.0], {"A": [1.0, 2.0, 1.0], "B": [1.0, 0.5, 1.0]})
    >>> od = np.array([1.0, 2.0, 1.0], np.float32)[:, None, None] * 0.3   # 0.3 of A
    >>> fit = fit_stack(od, [700.0, 710.0, 720.0], refs)
    >>> round(float(fit.map("A")[0, 0]), 4), round(float(fit.map("B")[0, 0]), 4), float(fit.r_factor[0, 0]) < 1e-10
    (0.3, 0.0, True)
    """
    s = np.asarray(od_stack, dtype=np.float32)
    e = np.atleast_1d(np.asarray(energies_ev, dtype=np.float64))
    if s.ndim != 3:
        raise InputError(f"od_stack must have shape (n_energies, ny, nx), got {s.shape}")
    if e.shape != (s.shape[0],):
        raise InputError(f"od_stack has {s.shape[0]} energies but energies_ev has shape {e.shape}")
    if method not in ("nnls", "lstsq"):
        raise InputError(f"method must be 'nnls' or 'lstsq', got {method!r}")
    table_e, table = reference_table_energies(references)
    names, _ = _columns(table)
    if len(names) < 2:
        raise InputError(f"the references need at least two phases, found {names}")
    if s.shape[0] < len(names):
        raise InputError(f"od_stack has {s.shape[0]} energies for {len(names)} reference phases; "
                         "expected at least one energy per phase")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != s.shape[1:]:
            raise InputError(f"mask has shape {mask.shape} but the images have {s.shape[1:]}")
    refs = references_from_table(table_e, table, e, max_gap_ev=max_gap_ev)
    # pixels not measured at every energy (NaN, e.g. outside the common field after energy
    # alignment) are expected here: leave them out quietly instead of letting unmix warn
    finite = np.all(np.isfinite(s), axis=0)
    conc = unmix(s, refs, method=method, mask=finite if mask is None else finite & mask)
    fit = np.einsum("ek,kyx->eyx", refs.astype(np.float32), conc)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum((s - fit).astype(np.float64) ** 2, axis=0) / np.sum(s.astype(np.float64) ** 2, axis=0)
    r = np.where(np.all(np.isfinite(conc), axis=0), r, np.nan).astype(np.float32)
    return StackFit(tuple(names), conc.astype(np.float32, copy=False), r, refs, e, method)
