"""Forward projection and its exact adjoint for the tilt geometry of :mod:`.geometry`.

Both apply the footprint system matrix of :mod:`.geometry` through :class:`.operator.RayOperator`
(compiled kernels, all slices at once, both cores); the weights of one geometry are kept for the
next call (two geometries at most), so repeated projections, as in alignment, pay for them once.
Memory is bounded: the weights (3 per pixel per angle, 8 bytes each) are cached up to 2 GiB and
rebuilt per chunk of angles above that, and a volume that will not fit raises an InputError that
says how much it needs and how many slices to process at a time.
"""

from __future__ import annotations

import numpy as np

from ..core.backend import to_numpy
from ..core.errors import InputError
from .geometry import TiltGeometry
from .operator import (
    DEFAULT_MAX_BLOCK_BYTES,
    block_bytes,
    check_memory,
    memory_limit_bytes,
    operator_for,
    stack_to_tilt,
    stack_to_volume,
    tilt_to_stack,
    volume_to_stack,
)

__all__ = ["backproject", "project"]


def _check_fits(geom: TiltGeometry, ny: int, owner: str) -> None:
    """Volume and tilt series are each held twice (caller's layout and the kernels'), plus weights."""
    weights = min(block_bytes(geom.n_angles, geom.nz, geom.nx), DEFAULT_MAX_BLOCK_BYTES)
    per_slice = 8 * (geom.nz * geom.nx + geom.n_angles * geom.nu)
    limit = memory_limit_bytes()
    fits = max(1, (limit - weights) // per_slice)
    check_memory(weights + ny * per_slice, f"{owner}: {ny} slices of {geom.nz}×{geom.nx} at "
                 f"{geom.n_angles} angles", f"slices are independent: process at most {fits} at a "
                 "time and stack the results along y", limit)


def project(volume, angles_deg, *, cor_offset_px: float = 0.0, nu: int | None = None) -> np.ndarray:
    """Parallel-beam projections of a volume at the given tilt angles.

    Parameters
    ----------
    volume : (ny, nz, nx) float32
        Values per voxel (e.g. OD per voxel length); y is the rotation axis.
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    cor_offset_px : float
        Detector position of the rotation axis relative to the detector centre, pixels.
    nu : int, optional
        Detector width in pixels (default nx).

    Returns
    -------
    tilt : (n_angles, ny, nu) float32
        Line integrals in voxel-length units: a slab of value v and thickness t voxels seen
        face-on projects to v·t.

    Examples
    --------
    >>> vol = np.zeros((4, 16, 16), np.float32); vol[:, 8, 8] = 1
    >>> round(float(project(vol, [0.0, 45.0]).sum()), 4)
    8.0
    """
    vol = np.asarray(to_numpy(volume), dtype=np.float32)
    if vol.ndim != 3:
        raise InputError(f"project: volume must be (ny, nz, nx), got shape {vol.shape}")
    ny, nz, nx = vol.shape
    geom = TiltGeometry.create(angles_deg, nz, nx, nu, cor_offset_px)
    _check_fits(geom, ny, "project")
    return stack_to_tilt(operator_for(geom).forward(volume_to_stack(vol)))


def backproject(tilt, angles_deg, nz: int | None = None, *, nx: int | None = None,
                cor_offset_px: float = 0.0) -> np.ndarray:
    """Exact adjoint of :func:`project`: smear each projection back along its rays.

    Parameters
    ----------
    tilt : (n_angles, ny, nu) float32
    angles_deg : (n_angles,) float
    nz : int, optional
        Slice depth (default nu).
    nx : int, optional
        Slice width (default nu).

    Returns
    -------
    volume : (ny, nz, nx) float32 with ⟨project(v), t⟩ = ⟨v, backproject(t)⟩.
    """
    t = np.asarray(to_numpy(tilt), dtype=np.float32)
    if t.ndim != 3:
        raise InputError(f"backproject: tilt must be (n_angles, ny, nu), got shape {t.shape}")
    n_angles, ny, nu = t.shape
    nz = nu if nz is None else nz
    nx = nu if nx is None else nx
    geom = TiltGeometry.create(angles_deg, nz, nx, nu, cor_offset_px)
    if geom.n_angles != n_angles:
        raise InputError(f"backproject: {n_angles} projections but {geom.n_angles} angles; "
                         "expected one angle per projection")
    _check_fits(geom, ny, "backproject")
    return stack_to_volume(operator_for(geom).backward(tilt_to_stack(t)), nz, nx)
