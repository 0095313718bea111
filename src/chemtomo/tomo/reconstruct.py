"""One entry point for every reconstruction algorithm, chosen by name (DESIGN.md)."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .art import art
from .cgls import cgls
from .fbp import fbp
from .problem import COMMON
from .sart import sart
from .sirt import sirt
from .tv import tv

__all__ = ["ALGORITHMS", "reconstruct"]

ALGORITHMS = {"art": art, "sart": sart, "sirt": sirt, "cgls": cgls, "fbp": fbp, "tv": tv}
"""Algorithm name → function. Each takes (tilt, angles_deg, iterations=…, **options)."""

_OPTIONS = {
    "art": ("relaxation", "order", "seed"),
    "sart": ("relaxation", "subsets", "order", "seed"),
    "sirt": ("relaxation",),
    "cgls": (),
    "fbp": ("filter",),
    "tv": ("weight",),
}


def reconstruct(tilt, angles_deg, algorithm: str = "art", iterations: int = 20, *,
                nonneg: bool = True, relaxation: float | None = None, **options) -> np.ndarray:
    """Reconstruct a volume from a parallel-beam tilt series with the named algorithm.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals (e.g. optical density per voxel length); rotation axis along y.
        NaN marks missing rays: weight zero in iterative algorithms, refused by FBP.
    angles_deg : (n_angles,) float
        Tilt angles in degrees, in acquisition order (finite, no duplicates).
    algorithm : {"art", "sart", "sirt", "cgls", "fbp", "tv"}
        See :data:`ALGORITHMS` and each module.
    iterations : int
        Full sweeps over all angles (ART, SART) or full updates (SIRT, CGLS, TV); not used by FBP.
    nonneg : bool
        Clip at zero after each update (OD cannot be negative); FBP clips its result.
    relaxation : float, optional
        Relaxation λ for ART, SART and SIRT (algorithm default when None).
    **options
        Shared: x0, support, cor_offset_px, nz, callback, progress, tol, memory_limit_bytes
        (:mod:`chemtomo.tomo.problem`). Per algorithm: art (order, seed), sart (subsets, order,
        seed), fbp (filter), tv (weight). Unknown options are an error.

    Returns
    -------
    volume : (ny, nz, nx) float32

    Examples
    --------
    >>> from chemtomo.tomo import project
    >>> vol = np.zeros((2, 24, 24), np.float32); vol[:, 8:16, 6:18] = 1.0
    >>> angles = np.arange(-80, 78, 2.0)
    >>> rec = reconstruct(project(vol, angles), angles, "art", 20)
    >>> bool(np.linalg.norm(rec - vol) / np.linalg.norm(vol) < 0.3)
    True
    """
    if not isinstance(algorithm, str) or algorithm.lower() not in ALGORITHMS:
        raise InputError(f"reconstruct: unknown algorithm {algorithm!r}; valid: "
                         f"{', '.join(ALGORITHMS)}")
    name = algorithm.lower()
    valid = set(COMMON) | set(_OPTIONS[name])
    unknown = sorted(set(options) - valid)
    if unknown:
        raise InputError(f"reconstruct: unknown option(s) {', '.join(unknown)} for algorithm "
                         f"{name!r}; valid: {', '.join(sorted(valid - {'nonneg'}))}")
    if relaxation is not None:
        if "relaxation" not in _OPTIONS[name]:
            raise InputError(f"reconstruct: algorithm {name!r} has no relaxation; it applies to "
                             "art, sart and sirt")
        options["relaxation"] = relaxation
    if name == "fbp":
        return fbp(tilt, angles_deg, nonneg=nonneg, **options)
    return ALGORITHMS[name](tilt, angles_deg, iterations=iterations, nonneg=nonneg, **options)
