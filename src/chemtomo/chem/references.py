"""Reference matrices: absorption of each pure phase at the measured energies.

The reference spectra (DESIGN.md: ``references.csv``, columns ``energy_eV,LiFePO4,FePO4``) hold
the linear absorption coefficient μ (1/m) of each pure phase at full density, LiFePO4 first and
FePO4 last. Unmixing needs them as a matrix ``R[e, k]`` = μ of phase k at the e-th measured
energy; this module interpolates the table onto those energies and checks that the matrix can be
inverted stably. Reading the CSV is io's job; here the table is already in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from chemtomo.core import InputError

__all__ = ["references_from_table", "references_from_spectra", "check_gaps", "MAX_REFERENCE_GAP_EV", "check_references", "condition_number", "MAX_CONDITION"]

log = logging.getLogger(__name__)

#: Largest accepted condition number (ratio of the largest to the smallest singular value) of a
#: reference matrix. Noise in the optical densities is amplified by up to this factor in the
#: concentrations, so beyond 1e3 a per-voxel solve returns noise, not chemistry.
MAX_CONDITION = 1.0e3

#: Widest spacing (eV) of two reference rows that a measured energy may be interpolated between.
#: Near the Fe L3 edge the white lines are about 1 eV wide: across a wider gap a straight line
#: misses the peak entirely (706 → 710.2 eV straddles the LiFePO4 maximum at 708.2 eV).
MAX_REFERENCE_GAP_EV = 1.0


def check_gaps(energies_ev, at_energies_ev, max_gap_ev: float = MAX_REFERENCE_GAP_EV, *,
               where: str = "reference spectra") -> None:
    """Refuse measured energies that fall between two reference rows more than ``max_gap_ev`` apart.

    An energy within 1e-6 eV of a row needs no interpolation and always passes. Raises an
    InputError naming the energy and the rows on either side.
    """
    e = np.asarray(energies_ev, dtype=np.float64)
    for a in np.atleast_1d(np.asarray(at_energies_ev, dtype=np.float64)):
        if np.any(np.abs(e - a) <= 1e-6):
            continue
        hi = int(np.searchsorted(e, a))
        if hi == 0 or hi == e.size:
            continue  # outside the table: the range check reports it
        lo_e, hi_e = float(e[hi - 1]), float(e[hi])
        if hi_e - lo_e > max_gap_ev + 1e-9:
            raise InputError(f"{where}: measured energy {a:g} eV lies between the reference rows at {lo_e:g} and "
                             f"{hi_e:g} eV, {hi_e - lo_e:g} eV apart, more than chem.max_reference_gap_ev = "
                             f"{max_gap_ev:g} eV; interpolating across that gap could miss an absorption peak: "
                             f"give a reference row within {max_gap_ev:g} eV on both sides of {a:g} eV")


def _columns(table) -> tuple[list[str], list[np.ndarray]]:
    """Phase names and columns of a dict or DataFrame, the ``energy_eV`` column left out."""
    if isinstance(table, Mapping):
        items = list(table.items())
    elif hasattr(table, "columns"):  # pandas.DataFrame, without importing pandas here
        items = [(str(c), table[c].to_numpy()) for c in table.columns]
    else:
        raise InputError(f"table must be a dict of phase name -> array or a DataFrame, got {type(table).__name__}")
    items = [(str(k), np.asarray(v, dtype=np.float64)) for k, v in items if str(k).lower() != "energy_ev"]
    if not items:
        raise InputError("table has no phase columns; expected e.g. {'LiFePO4': ..., 'FePO4': ...}")
    return [k for k, _ in items], [v for _, v in items]


def references_from_table(energies_ev: Sequence[float] | np.ndarray, table,
                          at_energies_ev: Sequence[float] | np.ndarray, *,
                          max_gap_ev: float | None = MAX_REFERENCE_GAP_EV, where: str = "reference spectra") -> np.ndarray:
    """Reference matrix at the measured energies, linearly interpolated from a spectra table.

    Parameters
    ----------
    energies_ev : (n_table,) float
        Energies of the table rows, eV, strictly increasing.
    table : dict[str, (n_table,) array] or pandas.DataFrame
        Absorption per phase (one common scale, e.g. μ in 1/m), phases in column order with
        LiFePO4 first and FePO4 last. A column named ``energy_eV`` is ignored.
    at_energies_ev : (n_energies,) float
        Energies at which the volumes were measured, eV. Each must lie within the table's range.
    max_gap_ev : float
        An energy between two table rows is interpolated only if they are at most this far apart
        (:func:`check_gaps`); ``inf`` or None turns the check off.
    where : str
        The table's source (a file name), for messages.

    Returns
    -------
    references : (n_energies, n_phases) float64
        ``references[e, k]`` = absorption of phase k at ``at_energies_ev[e]``. Kept in double
        precision: it is tiny and it is inverted.

    Raises
    ------
    InputError
        Non-increasing or non-finite table energies, a column of the wrong length, or a requested
        energy outside the table's range (extrapolating a spectrum across an edge is never safe), or
        an energy between two rows more than ``max_gap_ev`` apart.

    Examples
    --------
    >>> references_from_table([707.0, 709.0, 711.0],
    ...                       {"LiFePO4": [1.0, 1.2, 0.6], "FePO4": [0.4, 0.8, 1.4]}, [708.0],
    ...                       max_gap_ev=2.0)
    array([[1.1, 0.6]])
    """
    e = np.asarray(energies_ev, dtype=np.float64)
    at = np.atleast_1d(np.asarray(at_energies_ev, dtype=np.float64))
    if e.ndim != 1 or e.size < 2:
        raise InputError(f"energies_ev must be a 1D array of at least 2 table energies, got shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise InputError("energies_ev (table energies) must be finite and strictly increasing; "
                         f"found {e[:6].tolist()}{' ...' if e.size > 6 else ''}")
    if at.ndim != 1 or not np.all(np.isfinite(at)):
        raise InputError(f"at_energies_ev must be a 1D array of finite energies (eV), got {at.tolist()}")
    names, cols = _columns(table)
    for name, col in zip(names, cols):
        if col.shape != e.shape:
            raise InputError(f"table column {name!r} has shape {col.shape} but energies_ev has {e.shape}; "
                             "expected one value per table energy")
        if not np.all(np.isfinite(col)):
            raise InputError(f"table column {name!r} holds non-finite values")
    outside = at[(at < e[0]) | (at > e[-1])]
    if outside.size:
        raise InputError(f"at_energies_ev {outside.tolist()} eV lie outside the reference table's range "
                         f"[{e[0]:g}, {e[-1]:g}] eV; measure references there or drop those energies")
    if max_gap_ev is not None:  # None, like inf, turns the check off
        check_gaps(e, at, max_gap_ev, where=where)
    return np.stack([np.interp(at, e, col) for col in cols], axis=1)


def references_from_spectra(spectra: Mapping[str, tuple], at_energies_ev: Sequence[float] | np.ndarray, *,
                            max_gap_ev: float = MAX_REFERENCE_GAP_EV) -> np.ndarray:
    """Reference matrix from spectra that each sit on their own energy grid (one file per phase).

    Parameters
    ----------
    spectra : {phase: (energies_eV (n_k,), absorption (n_k,))}, phases in order (LiFePO4 first,
        FePO4 last), as ``chemtomo.io.read_reference_spectra`` returns them
    at_energies_ev : (n_energies,) measured energies, eV
    max_gap_ev : widest row spacing interpolated across (:func:`check_gaps`)

    Returns
    -------
    references : (n_energies, n_phases) float64, column k from phase k's own grid.
    """
    if not spectra:
        raise InputError("no reference spectra (expected at least two phases)")
    cols = [references_from_table(e, {name: mu}, at_energies_ev, max_gap_ev=max_gap_ev,
                                  where=f"reference spectrum of {name}")
            for name, (e, mu) in spectra.items()]
    return np.concatenate(cols, axis=1)


def condition_number(matrix) -> float:
    """Ratio of the largest to the smallest singular value; ``inf`` for a numerically singular
    matrix (smallest singular value at round-off level, ``max(shape) · eps`` of the largest)."""
    s = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    if s[-1] <= s[0] * max(np.shape(matrix)) * np.finfo(np.float64).eps:
        return float("inf")
    return float(s[0] / s[-1])


def check_references(references, n_energies: int | None = None, *,
                     max_condition: float = MAX_CONDITION) -> np.ndarray:
    """Validate a reference matrix and return it as float64 ``(n_energies, n_phases)``.

    Raises
    ------
    InputError
        Not 2D, non-finite, fewer energies than phases, a row count different from
        ``n_energies`` (the volumes' energies), or a condition number above ``max_condition``
        (singular matrices report an infinite condition number).
    """
    r = np.asarray(references, dtype=np.float64)
    if r.ndim != 2:
        raise InputError(f"references must be a 2D matrix (n_energies, n_phases), got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InputError("references hold non-finite values")
    if n_energies is not None and r.shape[0] != n_energies:
        raise InputError(f"references have {r.shape[0]} energies (rows) but the optical densities have "
                         f"{n_energies}; expected one reference row per measured energy")
    if r.shape[0] < r.shape[1]:
        raise InputError(f"references have {r.shape[0]} energies for {r.shape[1]} phases; "
                         "at least as many energies as phases are needed")
    cond = condition_number(r)
    if not cond <= max_condition:
        raise InputError(f"reference matrix is singular or ill-conditioned: condition number {cond:.3g} "
                         f"exceeds {max_condition:.3g}; the phases' spectra are (nearly) proportional "
                         "at these energies, choose energies where they differ")
    return r
