"""FFT helpers with the detector's convention: zero frequency at the array centre.

scipy.fft with all cores (``workers=-1``) on the CPU; cupy.fft on the GPU. Transforms act on the
last two axes and are orthonormal, so that Parseval holds: sum |ψ|² = sum |Ψ|².
"""

from __future__ import annotations

import os

import numpy as np
import scipy.fft as sfft

from .backend import get_array_module

__all__ = ["fft2c", "ifft2c", "fft2", "ifft2", "WORKERS"]

#: Threads for scipy.fft; all cores by default, ``CHEMTOMO_FFT_WORKERS`` overrides.
WORKERS = int(os.environ.get("CHEMTOMO_FFT_WORKERS", os.cpu_count() or 1))


def fft2(a, *, norm: str = "ortho"):
    """2D FFT over the last two axes, zero frequency at index 0 (no shifts)."""
    xp = get_array_module(a)
    if xp is np:
        return sfft.fft2(a, axes=(-2, -1), norm=norm, workers=WORKERS, overwrite_x=False)
    return xp.fft.fft2(a, axes=(-2, -1), norm=norm)


def ifft2(a, *, norm: str = "ortho"):
    """Inverse of :func:`fft2`."""
    xp = get_array_module(a)
    if xp is np:
        return sfft.ifft2(a, axes=(-2, -1), norm=norm, workers=WORKERS, overwrite_x=False)
    return xp.fft.ifft2(a, axes=(-2, -1), norm=norm)


def fft2c(a, *, norm: str = "ortho"):
    """Centred 2D FFT: real-space and frequency origins both at the array centre."""
    xp = get_array_module(a)
    return xp.fft.fftshift(fft2(xp.fft.ifftshift(a, axes=(-2, -1)), norm=norm), axes=(-2, -1))


def ifft2c(a, *, norm: str = "ortho"):
    """Inverse of :func:`fft2c`."""
    xp = get_array_module(a)
    return xp.fft.fftshift(ifft2(xp.fft.ifftshift(a, axes=(-2, -1)), norm=norm), axes=(-2, -1))
