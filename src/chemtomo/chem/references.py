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

__all__ = ["references_from_table", "check_references", "condition_number", "reference_gaps", "MAX_CONDITION",
           "MAX_REFERENCE_GAP_EV"]

log = logging.getLogger(__name__)

#: Largest accepted condition number (ratio of the largest to the smallest singular value) of a
#: reference matrix. Noise in the optical densities is amplified by up to this factor in the
#: concentrations, so beyond 1e3 a per-voxel solve returns noise, not chemistry.
MAX_CONDITION = 1.0e3

#: Widest span (eV) between two reference rows that a measured energy may be interpolated across.
#: The Fe L3 peaks of LiFePO4 (708.2 eV) and FePO4 (710.2 eV) are about 1 eV wide: rows 2 eV
#: apart on either side of a peak would replace it by a straight line and give a wrong chemical map.
MAX_REFERENCE_GAP_EV = 1.0

#: A measured energy within this of a table row is taken as that row (no interpolation), eV.
ROW_TOLERANCE_EV = 1e-3


def reference_gaps(energies_ev, at_energies_ev, max_gap_ev: float = MAX_REFERENCE_GAP_EV) -> list[tuple[float, float, float]]:
    """The measured energies that would be interpolated across too wide a gap of the table.

    Parameters
    ----------
    energies_ev : (n_table,) float, strictly increasing
        Energies of the reference table's rows, eV.
    at_energies_ev : (n_energies,) float
        Measured energies, eV, within the table's range.
    max_gap_ev : float
        Largest span between the two rows around an energy that linear interpolation may bridge.

    Returns
    -------
    list of (energy, row below, row above), eV, for every energy that is not a row (within
    1 meV) and whose neighbouring rows are more than ``max_gap_ev`` apart; empty when all is well.

    Examples
    --------
    >>> reference_gaps([706.0, 710.2, 711.0], [708.2, 710.2, 710.6])
    [(708.2, 706.0, 710.2)]
    """
    e = np.asarray(energies_ev, dtype=np.float64)
    out = []
    for a in np.atleast_1d(np.asarray(at_energies_ev, dtype=np.float64)):
        if np.min(np.abs(e - a)) <= ROW_TOLERANCE_EV:
            continue
        i = int(np.searchsorted(e, a))
        if 0 < i < e.size and e[i] - e[i - 1] > max_gap_ev + 1e-9:
            out.append((float(a), float(e[i - 1]), float(e[i])))
    return out


def gap_message(gaps: list[tuple[float, float, float]], max_gap_ev: float) -> str:
    """One sentence naming every energy that lacks a reference row, with the rows around it."""
    listed = "; ".join(f"{a:g} eV lies between rows {lo:g} and {hi:g} eV ({hi - lo:.3g} eV apart)"
                       for a, lo, hi in gaps[:8]) + (" ..." if len(gaps) > 8 else "")
    return (f"the reference table has no row at {len(gaps)} measured energ{'y' if len(gaps) == 1 else 'ies'}: {listed}; "
            f"interpolating across more than chem.max_reference_gap_ev = {max_gap_ev:g} eV could replace an absorption "
            "peak by a straight line. Add rows at the measured energies, or raise chem.max_reference_gap_ev")


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
                          max_gap_ev: float | None = MAX_REFERENCE_GAP_EV) -> np.ndarray:
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
    max_gap_ev : float or None
        An energy that is not a table row is interpolated only between rows at most this far
        apart (default 1 eV, ``MAX_REFERENCE_GAP_EV``); None: no limit.

    Returns
    -------
    references : (n_energies, n_phases) float64
        ``references[e, k]`` = absorption of phase k at ``at_energies_ev[e]``. Kept in double
        precision: it is tiny and it is inverted.

    Raises
    ------
    InputError
        Non-increasing or non-finite table energies, a column of the wrong length, a requested
        energy outside the table's range (extrapolating a spectrum across an edge is never safe),
        or one between rows more than ``max_gap_ev`` apart.

    Examples
    --------
    >>> references_from_table([707.0, 707.5, 708.5],
    ...                       {"LiFePO4": [1.0, 1.2, 0.6], "FePO4": [0.4, 0.8, 1.4]}, [708.0])
    array([[0.9, 1.1]])
    >>> references_from_table([706.0, 710.2], {"LiFePO4": [1.0, 0.6], "FePO4": [0.4, 1.4]}, [708.2])
    Traceback (most recent call last):
    ...
    chemtomo.core.errors.InputError: the reference table has no row at 1 measured energy: 708.2 eV lies between rows 706 and 710.2 eV (4.2 eV apart); ...
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
    if max_gap_ev is not None:
        gaps = reference_gaps(e, at, max_gap_ev)
        if gaps:
            raise InputError(gap_message(gaps, max_gap_ev))
    return np.stack([np.interp(at, e, col) for col in cols], axis=1)


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
