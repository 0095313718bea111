"""Polar angle of a voxel in the OD(E1)–OD(E2) correlation plot, and the composition it encodes.

Each voxel is a point (OD(E1), OD(E2)). Pure LiFePO4 voxels lie on the ray along the first
reference column (R[0, 0], R[1, 0]), pure FePO4 ones along the second; a mixture lies between
them at a polar angle that depends only on the composition, not on how much material the voxel
holds (the density scales the point along its ray). Inverting the 2×2 reference matrix for the
unit vector at that angle gives the same fraction as the linear solve of :func:`unmix`.
"""

from __future__ import annotations

import numpy as np

from chemtomo.core import InputError

from .references import check_references

__all__ = ["polar_angle", "polar_to_fraction", "reference_angles"]


def polar_angle(od_e1, od_e2) -> np.ndarray:
    """Polar angle (degrees) of each voxel's point (OD(E1), OD(E2)).

    Parameters
    ----------
    od_e1, od_e2 : float arrays of one shape
        Optical densities at E1 (x axis of the correlation plot) and E2 (y axis).

    Returns
    -------
    angle_deg : float32, same shape
        ``atan2(OD(E2), OD(E1))`` in degrees, in (−180, 180]; physical voxels (both ODs ≥ 0)
        lie in [0, 90]. NaN where either OD is non-finite.
    """
    a = np.asarray(od_e1, dtype=np.float32)
    b = np.asarray(od_e2, dtype=np.float32)
    if a.shape != b.shape:
        raise InputError(f"od_e1 has shape {a.shape} but od_e2 has {b.shape}; expected the same grid")
    return np.degrees(np.arctan2(b, a)).astype(np.float32)


def reference_angles(references) -> np.ndarray:
    """Polar angles (degrees) of the pure phases' directions, one per reference column."""
    r = check_references(references, 2)
    return np.degrees(np.arctan2(r[1], r[0]))


def polar_to_fraction(angle_deg, references) -> np.ndarray:
    """FePO4 fraction encoded by a polar angle, for a 2-energy, 2-phase reference matrix.

    Parameters
    ----------
    angle_deg : float array
        Polar angles from :func:`polar_angle`, degrees.
    references : (2, 2) float
        ``[[R_E1,LFP, R_E1,FP], [R_E2,LFP, R_E2,FP]]``, as given to :func:`unmix`.

    Returns
    -------
    fraction : float32, shape of ``angle_deg``
        x_FP in [0, 1] (clipped, as :func:`fraction` does); NaN for non-finite angles and for
        directions whose implied density is not positive (points in the opposite half-plane).

    Notes
    -----
    With u = (cos θ, sin θ) and ``C = R⁻¹ u``, ``x = C_FP / (C_LFP + C_FP)``; since ``R⁻¹`` is
    linear and x is scale-free this is exactly the fraction :func:`unmix` gives for any voxel
    at that angle. Written out, with ``R⁻¹ = [[a, b], [c, d]]``:
    ``x = (c cos θ + d sin θ) / ((a + c) cos θ + (b + d) sin θ)``.
    """
    r = check_references(references)
    if r.shape != (2, 2):
        raise InputError(f"polar_to_fraction needs a (2, 2) reference matrix (two energies, two phases), got {r.shape}")
    inv = np.linalg.inv(r)
    t = np.radians(np.asarray(angle_deg, dtype=np.float64))
    u, v = np.cos(t), np.sin(t)
    c_fp = inv[1, 0] * u + inv[1, 1] * v
    density = (inv[0, 0] + inv[1, 0]) * u + (inv[0, 1] + inv[1, 1]) * v
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.clip(c_fp / density, 0.0, 1.0)
    return np.where(np.isfinite(t) & (density > 0), x, np.nan).astype(np.float32)
