"""Per-projection misalignment of a virtual tilt series, in DESIGN.md's ``Alignment`` convention.

The content at index position ``p = (y, x)`` of the *aligned* projection sits in the *raw*
(measured) one at

    q(p) = c + s·R(φ)·(p − c) + t + o_E,        R(φ) = [[cos φ, −sin φ], [sin φ, cos φ]],

with ``c = ((ny − 1)/2, (nx − 1)/2)`` the array centre, ``s`` the scale, ``φ`` the rotation,
``t = (dy, dx)`` the projection's shift and ``o_E`` the offset of energy E, all on (y, x) index
vectors in pixels of the truth grid. The simulator *pushes* content: the raw image at ``r`` is
the aligned one at ``q⁻¹(r) = c + (1/s) R(−φ)(r − c − t − o_E)``, so that ``align.apply`` with the
true parameters undoes it exactly (up to interpolation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.errors import InputError

__all__ = ["AlignmentTruth", "aligned_coordinates", "draw_misalignment", "misalign"]


@dataclass(frozen=True)
class AlignmentTruth:
    """The true misalignment of a simulated tilt series (DESIGN.md convention, truth-grid pixels).

    shifts_px         : (n_angles, 2) float64 (dy, dx)
    rotation_deg      : (n_angles,) float64
    scale             : (n_angles,) float64
    energy_offsets_px : (n_energies, 2) float64 (dy, dx), the first energy's is (0, 0)
    energies_ev       : (n_energies,) float64, the energies the offsets belong to
    """

    shifts_px: np.ndarray
    rotation_deg: np.ndarray
    scale: np.ndarray
    energy_offsets_px: np.ndarray
    energies_ev: np.ndarray

    def offsets(self) -> dict[float, tuple[float, float]]:
        """Energy offsets as DESIGN.md's ``{energy_eV: (dy, dx)}``."""
        return {float(e): (float(o[0]), float(o[1])) for e, o in zip(self.energies_ev, self.energy_offsets_px)}

    def offset_of(self, energy_ev: float) -> np.ndarray:
        i = int(np.argmin(np.abs(self.energies_ev - energy_ev)))
        if abs(self.energies_ev[i] - energy_ev) > 1e-6:
            raise InputError(f"AlignmentTruth: no energy offset for {energy_ev} eV; "
                             f"energies are {self.energies_ev.tolist()}")
        return self.energy_offsets_px[i]


def draw_misalignment(n_angles: int, energies_ev, *, shift_sigma_px: float = 3.0, shift_max_px: float = 10.0,
                      rotation_sigma_deg: float = 0.3, rotation_max_deg: float = 1.0,
                      scale_sigma: float = 0.003, scale_max: float = 0.01, energy_offset_max_px: float = 3.0,
                      seed: int | np.random.Generator = 0) -> AlignmentTruth:
    """Random misalignment: normal shifts, rotations and scale errors, clipped, and energy offsets.

    Shifts ~ N(0, shift_sigma_px) per axis clipped to ±shift_max_px; rotation ~ N(0,
    rotation_sigma_deg) clipped to ±rotation_max_deg; scale = 1 + N(0, scale_sigma) clipped to
    1 ± scale_max; energy offsets uniform in ±energy_offset_max_px per axis, the first energy's
    (the reference) zero. All zero sigmas give the identity.
    """
    values = {"shift_sigma_px": shift_sigma_px, "shift_max_px": shift_max_px, "rotation_sigma_deg": rotation_sigma_deg,
                  "rotation_max_deg": rotation_max_deg, "scale_sigma": scale_sigma, "scale_max": scale_max,
                  "energy_offset_max_px": energy_offset_max_px}
    for name, v in values.items():
        if not (math.isfinite(v) and v >= 0):
            raise InputError(f"misalignment: {name} must be a finite number >= 0, got {v!r}")
    if scale_max >= 0.5:
        raise InputError(f"misalignment: scale_max must be < 0.5 (a relative scale error), got {scale_max!r}")
    if int(n_angles) != n_angles or n_angles < 1:
        raise InputError(f"misalignment: n_angles must be a positive integer, got {n_angles!r}")
    e = np.asarray(energies_ev, np.float64).ravel()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    shifts = np.clip(rng.normal(0.0, 1.0, (n_angles, 2)) * shift_sigma_px, -shift_max_px, shift_max_px)
    rot = np.clip(rng.normal(0.0, 1.0, n_angles) * rotation_sigma_deg, -rotation_max_deg, rotation_max_deg)
    scale = 1.0 + np.clip(rng.normal(0.0, 1.0, n_angles) * scale_sigma, -scale_max, scale_max)
    offsets = rng.uniform(-1.0, 1.0, (e.size, 2)) * energy_offset_max_px
    offsets[0] = 0.0
    return AlignmentTruth(shifts, rot, scale, offsets, e)


def aligned_coordinates(raw_yx: np.ndarray, shape: tuple[int, int], shift_px, rotation_deg: float,
                        scale: float) -> np.ndarray:
    """Where raw-grid points come from in the aligned image: ``q⁻¹(r)``.

    Parameters
    ----------
    raw_yx : (2, ...) float64
        Raw-grid (y, x) coordinates in truth-grid pixels (any shape after the first axis).
    shape : (ny, nx)
        Truth-grid shape, defining the centre ``c = ((ny − 1)/2, (nx − 1)/2)``.
    shift_px : (2,) total shift (dy, dx) including the energy's offset
    rotation_deg, scale : the projection's rotation and scale

    Returns
    -------
    (2, ...) float64 aligned-grid coordinates.
    """
    c = np.array([(shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0]).reshape((2,) + (1,) * (raw_yx.ndim - 1))
    t = np.asarray(shift_px, np.float64).reshape(c.shape)
    d = raw_yx - c - t
    phi = math.radians(rotation_deg)
    cos, sin = math.cos(phi) / scale, math.sin(phi) / scale
    # R(−φ)/s applied to d
    return c + np.stack([cos * d[0] + sin * d[1], -sin * d[0] + cos * d[1]])


def misalign(images, alignment: AlignmentTruth, energy_ev: float, *, order: int = 3) -> np.ndarray:
    """Raw (misaligned) stack from an aligned one on the same grid: ``raw(r) = aligned(q⁻¹(r))``.

    Parameters
    ----------
    images : (n_angles, ny, nx) float
        Aligned projections (e.g. OD).
    alignment : AlignmentTruth
    energy_ev : float
        Energy whose offset is added to every shift.
    order : int
        Spline order of the interpolation (3: cubic); outside the image counts as 0.

    Returns
    -------
    (n_angles, ny, nx) float32
    """
    imgs = np.asarray(images, np.float32)
    if imgs.ndim != 3 or imgs.shape[0] != alignment.shifts_px.shape[0]:
        raise InputError(f"misalign: images must be (n_angles={alignment.shifts_px.shape[0]}, ny, nx), "
                         f"got shape {imgs.shape}")
    ny, nx = imgs.shape[1:]
    raw = np.stack(np.meshgrid(np.arange(ny, dtype=np.float64), np.arange(nx, dtype=np.float64), indexing="ij"))
    off = alignment.offset_of(energy_ev)
    out = np.empty_like(imgs)
    for i in range(imgs.shape[0]):
        q = aligned_coordinates(raw, (ny, nx), alignment.shifts_px[i] + off, float(alignment.rotation_deg[i]),
                                float(alignment.scale[i]))
        out[i] = ndimage.map_coordinates(imgs[i], q, order=order, mode="constant", cval=0.0)
    return out
