"""Forward projection and its exact adjoint for the tilt geometry of :mod:`.geometry`."""

from __future__ import annotations

import numpy as np

from ..core.backend import to_numpy
from ..core.errors import InputError
from .geometry import TiltGeometry

__all__ = ["project", "backproject"]


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
    >>> float(project(vol, [0.0, 45.0]).sum())
    8.0
    """
    vol = np.asarray(to_numpy(volume), dtype=np.float32)
    if vol.ndim != 3:
        raise InputError(f"project: volume must be (ny, nz, nx), got shape {vol.shape}")
    ny, nz, nx = vol.shape
    geom = TiltGeometry.create(angles_deg, nz, nx, nu, cor_offset_px)
    a = geom.matrix()
    out = a @ vol.reshape(ny, nz * nx).T  # (n_angles·nu, ny)
    return np.ascontiguousarray(out.reshape(geom.n_angles, geom.nu, ny).transpose(0, 2, 1), dtype=np.float32)


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
    at = geom.matrix_t()
    out = at @ t.transpose(0, 2, 1).reshape(n_angles * nu, ny)  # (nz·nx, ny)
    return np.ascontiguousarray(out.T.reshape(ny, nz, nx), dtype=np.float32)
