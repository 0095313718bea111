"""FFT helpers with the detector's convention: zero frequency at the array centre.

scipy.fft on the CPU, with all cores for large stacks and one for small ones
(:func:`fft_workers`); cupy.fft on the GPU. Transforms act on the
last two axes and are orthonormal, so that Parseval holds: sum |ψ|² = sum |Ψ|².
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np
import scipy.fft as sfft

from .backend import get_array_module

__all__ = ["WORKERS", "fft2", "fft2c", "fft_workers", "ifft2", "ifft2c", "one_core", "stack_fft2", "use_threads"]

#: Threads for scipy.fft; all cores by default, ``CHEMTOMO_FFT_WORKERS`` overrides.
WORKERS = int(os.environ.get("CHEMTOMO_FFT_WORKERS", os.cpu_count() or 1))

_local = threading.local()


#: Elements a scipy.fft worker must have to itself before a transform is split over several.
#: Waking the pool's threads costs about as much as transforming this many complex64 elements,
#: so below it a second worker slows the call down: on the 2-core sandbox one 128² frame took
#: 2.7× as long with two workers, a PIE batch's eight frames of 64² 1.7× (the probe's shift
#: bins, batches of small frames and single probes are such calls), while 16 frames of 128²
#: took 0.67× and 32 of them 0.56× (``benchmarks/ptycho_speed.py --part fft-workers``; the
#: rule picked the faster count for all 21 stacks there). pocketfft splits a stack's 1D
#: transforms between its workers, each computed the same way: the count changes the time,
#: not the values (checked to the bit on that machine).
MIN_WORKER_ELEMENTS = 1 << 16


def fft_workers(size: int | None = None) -> int:
    """Threads for scipy.fft in the calling thread: ``WORKERS``, or 1 inside :func:`one_core`;
    for a transform of ``size`` elements, no more than gives each ``MIN_WORKER_ELEMENTS``."""
    workers = getattr(_local, "workers", WORKERS)
    if size is None:
        return workers
    return max(1, min(workers, int(size) // MIN_WORKER_ELEMENTS))


@contextmanager
def one_core():
    """Run the block on one core of the calling thread: scipy.fft with one worker and the numba
    kernels with one thread (both settings are thread-local, other threads keep theirs).

    For tasks that run many at a time, one per Dask thread: the ptychography stage reconstructs
    hundreds of small scans, and splitting each over the cores costs more in synchronisation than
    it gains. On the paper preset's 64² scans (2 cores) two single-core scans at once take 1.05 s
    per scan against 2.44 s for one scan at a time on both cores, and 1.85 s for two at once that
    each ask for both cores.
    """
    import numba

    before_fft = getattr(_local, "workers", None)
    before_numba = numba.get_num_threads()
    _local.workers = 1
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before_numba)
        if before_fft is None:
            del _local.workers
        else:
            _local.workers = before_fft


def use_threads(fft: int, numba_threads: int) -> None:
    """Let the calling thread use ``fft`` scipy.fft workers and ``numba_threads`` numba threads
    from now on, inside a :func:`one_core` block too (whose end restores what it found): for a
    thread that is handed the core of another that has finished."""
    import numba

    _local.workers = int(fft)
    numba.set_num_threads(int(numba_threads))


def _pocketfft_c2c():
    """scipy.fft's own complex transform (``scipy.fft._pocketfft.pypocketfft.c2c``), to call
    without scipy.fft's per-call dispatch and argument handling, or None where it is missing or
    gives other values than scipy.fft on a small stack (a SciPy that changed it: then scipy.fft
    is called as usual). Private to SciPy, so it is checked here, once, before it is trusted."""
    try:
        from scipy.fft._pocketfft.pypocketfft import c2c

        a = (np.arange(96, dtype=np.float32).reshape(2, 6, 8) * np.complex64(1 - 0.5j)).astype(np.complex64)
        checks = ((True, 1, sfft.fft2(a, norm="ortho", workers=1)), (False, 1, sfft.ifft2(a, norm="ortho", workers=1)),
                  (True, 0, sfft.fft2(a, workers=1)), (False, 2, sfft.ifft2(a, workers=1)))
        for forward, inorm, want in checks:
            got = c2c(a.copy(), (-2, -1), forward, inorm, None, 1)
            if got.dtype != want.dtype or not np.array_equal(got, want):
                return None
        return c2c
    except Exception:  # noqa: BLE001 - any failure means: use the public API
        return None


_C2C = _pocketfft_c2c()
_INORM = {("backward", True): 0, ("backward", False): 2, ("ortho", True): 1, ("ortho", False): 1}


def stack_fft2(a: np.ndarray, *, inverse: bool = False, norm: str = "backward", overwrite_x: bool = False,
               workers: int | None = None) -> np.ndarray:
    """``scipy.fft.fft2`` / ``ifft2`` over the last two axes of a NumPy array (``norm``
    "backward" or "ortho"), with ``workers`` (None: :func:`fft_workers` of its size).

    The same transform and the same values as scipy.fft, without its per-call argument handling
    for C-contiguous complex64 arrays, which the ptychography solvers transform thousands of
    times per scan: about 8 µs of 20–60 µs per call on small stacks, 7 % of a demo-sized scan's
    reconstruction on one core (docs/results/ptychography_speed.md, session 27). Other arrays,
    or a SciPy whose transform did not pass the check at import, go through scipy.fft.

    Examples
    --------
    >>> a = np.ones((2, 4, 4), np.complex64)
    >>> float(stack_fft2(a, norm="ortho")[0, 0, 0].real), float(stack_fft2(a, inverse=True)[1, 0, 0].real)
    (4.0, 1.0)
    """
    if workers is None:
        workers = fft_workers(a.size)
    inorm = _INORM.get((norm, not inverse))
    if _C2C is not None and inorm is not None and a.dtype == np.complex64 and a.flags.c_contiguous and a.ndim >= 2:
        return _C2C(a, (-2, -1), not inverse, inorm, a if overwrite_x else None, workers)
    f = sfft.ifft2 if inverse else sfft.fft2
    return f(a, axes=(-2, -1), norm=norm, workers=workers, overwrite_x=overwrite_x)


def fft2(a, *, norm: str = "ortho"):
    """2D FFT over the last two axes, zero frequency at index 0 (no shifts)."""
    xp = get_array_module(a)
    if xp is np:
        return stack_fft2(a, norm=norm)
    return xp.fft.fft2(a, axes=(-2, -1), norm=norm)


def ifft2(a, *, norm: str = "ortho"):
    """Inverse of :func:`fft2`."""
    xp = get_array_module(a)
    if xp is np:
        return stack_fft2(a, inverse=True, norm=norm)
    return xp.fft.ifft2(a, axes=(-2, -1), norm=norm)


def fft2c(a, *, norm: str = "ortho"):
    """Centred 2D FFT: real-space and frequency origins both at the array centre."""
    xp = get_array_module(a)
    return xp.fft.fftshift(fft2(xp.fft.ifftshift(a, axes=(-2, -1)), norm=norm), axes=(-2, -1))


def ifft2c(a, *, norm: str = "ortho"):
    """Inverse of :func:`fft2c`."""
    xp = get_array_module(a)
    return xp.fft.fftshift(ifft2(xp.fft.ifftshift(a, axes=(-2, -1)), norm=norm), axes=(-2, -1))
