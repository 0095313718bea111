"""Split-half Fourier shell correlation of a tomographic reconstruction.

One tilt series gives one volume; an FSC needs two independent ones. The standard way out
(the paper's 11 nm at 708.2 eV) is to split the projections into two halves, reconstruct each
on its own and correlate the two volumes. Here the halves are the alternate angles in *sorted*
angle order (even and odd positions), so both span the full tilt range with twice the angular
step, whatever the acquisition order; each half keeps its own acquisition order (which matters
to row-action methods such as ART).

Because each half holds half the projections, its noise power is doubled, and its angular
sampling halved: the split-half FSC is a conservative estimate for the full reconstruction
(the paper: "the actual resolution should be somewhat higher as the FSC reduces the
signal-to-noise ratio of the data by a factor of two"). The ½-bit threshold for half data sets
is the matching criterion.

This module imports :mod:`chemtomo.tomo` (for ``tomo.reconstruct``, when the algorithm is
given by name); it is the only place where ``resolution`` depends on another algorithm package.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core.backend import to_numpy
from ..core.containers import Curve
from ..core.errors import InputError
from .frc import fsc

__all__ = ["split_half_fsc", "split_angles"]


def split_angles(angles_deg) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the two halves: alternate angles in sorted order, each in acquisition order.

    Parameters
    ----------
    angles_deg : (n_angles,) float
        Tilt angles, degrees, acquisition order.

    Returns
    -------
    even, odd : int arrays of indices into ``angles_deg``, sizes ceil(n/2) and floor(n/2)

    Examples
    --------
    >>> even, odd = split_angles([0.0, 30.0, -30.0, 60.0, -60.0])
    >>> even.tolist(), odd.tolist()
    ([0, 3, 4], [1, 2])
    """
    order = np.argsort(np.asarray(angles_deg, dtype=np.float64), kind="stable")
    return np.sort(order[0::2]), np.sort(order[1::2])


def _check(tilt: np.ndarray, angles: np.ndarray, reconstruct, options) -> None:
    if tilt.ndim != 3:
        raise InputError(f"split_half_fsc: tilt must be (n_angles, ny, nx), got shape {tilt.shape}")
    if angles.shape != (tilt.shape[0],):
        raise InputError(f"split_half_fsc: {tilt.shape[0]} projections but angles_deg has shape {angles.shape}; "
                         "expected one angle per projection")
    if not np.all(np.isfinite(angles)):
        raise InputError("split_half_fsc: angles_deg must be finite, got NaN or infinite values")
    if tilt.shape[0] < 4:
        raise InputError(f"split_half_fsc: need at least 4 projections (2 per half), got {tilt.shape[0]}")
    if not (isinstance(reconstruct, str) or callable(reconstruct)):
        raise InputError(f"split_half_fsc: reconstruct must be an algorithm name for chemtomo.tomo.reconstruct "
                         f"or a callable (tilt, angles_deg, **options) -> volume, got {reconstruct!r}")
    if options is not None and not isinstance(options, Mapping):
        raise InputError(f"split_half_fsc: options must be a mapping of keyword arguments, got {options!r}")


def split_half_fsc(tilt, angles_deg, voxel_m, *, reconstruct: str | Callable[..., Any] = "art",
                   options: Mapping[str, Any] | None = None, threshold: str = "half-bit",
                   apodize=True) -> tuple[Curve, np.ndarray, np.ndarray]:
    """Reconstruct the even and odd angles of a tilt series independently and correlate them.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float32
        Aligned tilt series (e.g. optical density), rotation axis along y; n_angles ≥ 4.
    angles_deg : (n_angles,) float
        Tilt angles, degrees, acquisition order.
    voxel_m : float
        Voxel size of the reconstruction, metres (the projection pixel size).
    reconstruct : str or callable
        An algorithm name for ``chemtomo.tomo.reconstruct`` ("art", "sart", "sirt", "cgls",
        "fbp", "tv"), called as ``tomo.reconstruct(half, angles, algorithm=name, **options)``;
        or any callable ``reconstruct(half, angles, **options) -> (ny, nz, nx) volume``.
    options : mapping, optional
        Keyword arguments for the reconstruction, the same for both halves, e.g.
        ``{"iterations": 20, "nonneg": True}`` (the paper's ART set-up).
    threshold, apodize
        As for :func:`chemtomo.resolution.fsc`.

    Returns
    -------
    curve : Curve
        FSC between the two half reconstructions; ``curve.resolution_m`` the half-period
        resolution at the ½-bit crossing (NaN if never crossed).
    volume_even, volume_odd : (ny, nz, nx) float32 NumPy arrays
        The two half reconstructions (angles at even and at odd positions in sorted order).

    Raises
    ------
    InputError
        Tilt series not 3D, angles of another length or not finite, fewer than 4 projections,
        ``reconstruct`` neither a name nor a callable, ``options`` not a mapping, the two half
        volumes not 3D of one shape; and every error of :func:`fsc` and of the reconstruction.

    Examples
    --------
    A ball seen from 60 angles over 180°, reconstructed by plain back-projection of each half
    (any reconstructor works; ``reconstruct="sirt"`` would use ``chemtomo.tomo``):

    >>> from chemtomo.tomo import project, backproject
    >>> y, z, x = np.mgrid[:8, :32, :32] - np.array([3.5, 15.5, 15.5])[:, None, None, None]
    >>> ball = (z**2 + x**2 < 100).astype(np.float32)
    >>> angles = np.linspace(-90, 90, 60, endpoint=False)
    >>> tilt = project(ball, angles)
    >>> curve, va, vb = split_half_fsc(tilt, angles, 6.7e-9, reconstruct=backproject)
    >>> va.shape, bool(curve.correlation[0] > 0.9)
    ((8, 32, 32), True)
    """
    t = np.asarray(to_numpy(tilt))
    angles = np.asarray(angles_deg, dtype=np.float64)
    _check(t, angles, reconstruct, options)
    if not (isinstance(voxel_m, (int, float, np.integer, np.floating)) and math.isfinite(voxel_m) and voxel_m > 0):
        raise InputError(f"split_half_fsc: voxel_m must be a positive number of metres, got {voxel_m!r}")
    kwargs = dict(options or {})
    if isinstance(reconstruct, str):
        from ..tomo import reconstruct as tomo_reconstruct

        def run(half, half_angles):
            return tomo_reconstruct(half, half_angles, algorithm=reconstruct, **kwargs)
    else:
        def run(half, half_angles):
            return reconstruct(half, half_angles, **kwargs)

    volumes = []
    for idx in split_angles(angles):
        volumes.append(np.asarray(to_numpy(run(t[idx], angles[idx])), dtype=np.float32))
    va, vb = volumes
    if va.ndim != 3 or va.shape != vb.shape:
        raise InputError(f"split_half_fsc: the reconstruction returned volumes of shapes {va.shape} and "
                         f"{vb.shape}; expected two (ny, nz, nx) volumes of one shape")
    return fsc(va, vb, voxel_m, threshold=threshold, apodize=apodize), va, vb
