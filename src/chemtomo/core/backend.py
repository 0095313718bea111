"""Array backend: NumPy always, CuPy when asked for and importable.

Algorithms call ``xp = get_array_module(x)`` once at the top and then use only ``xp.`` calls, so
the same code runs on the CPU and the GPU.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["get_array_module", "get_backend", "to_numpy", "asarray", "Array", "cupy_available"]

log = logging.getLogger(__name__)

Array = Any  # numpy.ndarray or cupy.ndarray


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        cp = importlib.import_module("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDA driver errors: no usable GPU
        return False


def get_backend(device: str = "cpu"):
    """The array module for ``device``: ``"cpu"`` gives NumPy, ``"gpu"`` CuPy.

    Raises
    ------
    InputError
        When ``"gpu"`` is asked for and CuPy or a GPU is not available, or ``device`` is unknown.
    """
    if device == "cpu":
        return np
    if device == "gpu":
        if not cupy_available():
            raise InputError("device 'gpu' was requested but CuPy is not installed or sees no GPU; "
                             "install the 'gpu' extra (pip install chemtomo[gpu]) or use device 'cpu'")
        return importlib.import_module("cupy")
    raise InputError(f"device must be 'cpu' or 'gpu', got {device!r}")


def get_array_module(*arrays: Array):
    """NumPy or CuPy, whichever module owns the given arrays (NumPy for plain Python values)."""
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            return importlib.import_module("cupy")
    return np


def to_numpy(a: Array) -> np.ndarray:
    """A NumPy copy (or view) of a NumPy or CuPy array."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def asarray(a: Array, xp=np, dtype=None) -> Array:
    """``a`` as an array of module ``xp`` (moving between host and device when needed)."""
    if xp is np:
        return np.asarray(to_numpy(a), dtype=dtype)
    return xp.asarray(a, dtype=dtype)
