"""FFT helpers with the detector's convention: zero frequency at the array centre.

scipy.fft on the CPU, with all cores for large stacks and one for small ones
(:func:`fft_workers`); cupy.fft on the GPU. Transforms act on the
last two axes and are orthonormal, so that Parseval holds: sum |ψ|² = sum |Ψ|².

Stacks of complex64 frames whose sides are in ``FFTW_SIDES`` (16–128 px, the ptychography
solvers' frames) go to FFTW instead where pyFFTW is installed (``pip install chemtomo[fftw]``;
``CHEMTOMO_FFT_BACKEND`` chooses): 1.9–3.7× faster than scipy's pocketfft there on one core
(``benchmarks/ptycho_speed.py --part fft-backends``). FFTW itself is GPL-licensed, so it is an
optional extra of this BSD-licensed package, not a requirement.
"""

from __future__ import annotations

import math
import os
import threading
from contextlib import contextmanager

import numpy as np
import scipy.fft as sfft

from .backend import get_array_module

__all__ = ["BACKEND", "FFTW_SIDES", "WORKERS", "backend", "empty_aligned", "fft2", "fft2c", "fft_workers", "ifft2",
           "ifft2c", "one_core", "stack_fft2", "use_threads"]

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


#: Which library transforms stacks of complex64 frames: "auto" (default: FFTW where pyFFTW is
#: installed and the frames' sides are in ``FFTW_SIDES``, else scipy.fft), "fftw" (the same, and an
#: error where pyFFTW is missing) or "scipy"; ``CHEMTOMO_FFT_BACKEND`` overrides.
BACKEND = os.environ.get("CHEMTOMO_FFT_BACKEND", "auto").strip().lower()

#: Frame sides (px) at which FFTW, planned without measurements (``FFTW_ESTIMATE``: the same plan,
#: hence the same values, on every run), beat scipy's pocketfft on one core of the 2-core sandbox:
#: per 128² frame 35 against 67–76 µs, per 64² 7 against 15–19 µs, per 32² 1.9 against 7 µs. At
#: 96² and 192² FFTW was slower (70 against 46 µs, 183 against 161 µs), at 256² and 512² five
#: to nine times slower (its estimated plan for a stack of large frames is a poor one), so
#: those stay with pocketfft (``benchmarks/ptycho_speed.py --part fft-backends``).
FFTW_SIDES = frozenset({16, 32, 64, 128})

#: Complex elements per FFTW call (whole frames; 8 frames of 128², 32 of 64²): a stack is cut into
#: chunks of this many frames whatever the thread count, so a frame's transform is the same plan,
#: hence the same bits, on one core or several; ``fft_workers`` threads share the chunks.
FFTW_CHUNK_ELEMENTS = 1 << 17


def _checked_backend(name: str) -> str:
    from .errors import InputError

    if name not in ("auto", "fftw", "scipy"):
        raise InputError(f"CHEMTOMO_FFT_BACKEND must be 'auto', 'fftw' or 'scipy', got {name!r}")
    return name


class _Fftw:
    """FFTW through pyFFTW for C-contiguous complex64 stacks: in place, one thread per plan,
    ``FFTW_ESTIMATE`` plans (no timing in the planner: the same plan on every run), each made
    once per (chunk shape, direction) and thread and reused on every chunk. A chunk not aligned
    for FFTW's SIMD loads is transformed in an aligned scratch copy with the same plan (the same
    bits; the ptychography work buffers are made aligned, ``empty_aligned``, so this is rare)."""

    def __init__(self, pyfftw) -> None:
        self.pyfftw = pyfftw
        self.alignment = int(pyfftw.simd_alignment)  # 16-64 bytes: empty_aligned's 64 covers it
        self.local = threading.local()
        self.plan_lock = threading.Lock()  # FFTW's planner is not thread-safe
        self.pool = None
        self.pool_lock = threading.Lock()

    def _plan(self, shape: tuple[int, int, int], forward: bool):
        """(plan, its own buffer) for chunks of ``shape`` in this thread."""
        plans = getattr(self.local, "plans", None)
        if plans is None:
            plans = self.local.plans = {}
        key = (shape, forward)
        if key not in plans:
            with self.plan_lock:
                # planned on an untouched buffer (FFTW_ESTIMATE reads and writes nothing): no memory
                buf = empty_aligned(shape)
                plan = self.pyfftw.FFTW(buf, buf, axes=(1, 2), direction="FFTW_FORWARD" if forward else "FFTW_BACKWARD",
                                        flags=("FFTW_ESTIMATE",), threads=1)
            plans[key] = (plan, buf)
        return plans[key]

    def _scratch(self, shape: tuple[int, int, int]) -> np.ndarray:
        have = getattr(self.local, "scratch", None)
        if have is None or have.shape != shape:
            have = self.local.scratch = empty_aligned(shape)
        return have

    def _run(self, stack: np.ndarray, starts: list[int], chunk: int, forward: bool, scale: float | None) -> None:
        """Transform ``stack[i:i + chunk]`` for every i in ``starts``, in place."""
        for i in starts:
            part = stack[i:i + chunk]
            plan, own = self._plan(part.shape, forward)
            aligned = part.ctypes.data % self.alignment == 0
            work = part if aligned else self._scratch(part.shape)
            if not aligned:
                work[...] = part
            plan.update_arrays(work, work)
            plan.execute()
            plan.update_arrays(own, own)  # let go of the caller's array
            if scale is not None:  # on the float view: half the multiplies of complex × real (19 against 26 µs
                # on 8 frames of 128²); the same values for finite waves (x·s − y·0 is x·s but for the sign of 0)
                np.multiply(work.view(np.float32), np.float32(scale), out=work.view(np.float32))
            if not aligned:
                part[...] = work

    def transform(self, a: np.ndarray, forward: bool, scale: float | None, workers: int) -> None:
        """``a`` (C-contiguous complex64, ..., h, w) transformed in place over its last two axes."""
        h, w = a.shape[-2:]
        stack = a.reshape(-1, h, w)
        chunk = max(1, FFTW_CHUNK_ELEMENTS // (h * w))
        starts = list(range(0, len(stack), chunk))
        workers = max(1, min(int(workers), WORKERS, len(starts)))
        if workers == 1:
            self._run(stack, starts, chunk, forward, scale)
            return
        with self.pool_lock:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self.pool = ThreadPoolExecutor(WORKERS - 1, thread_name_prefix="chemtomo-fftw")
        share = [starts[k::workers] for k in range(workers)]  # interleaved: equal shares of a ragged end
        pending = [self.pool.submit(self._run, stack, mine, chunk, forward, scale) for mine in share[1:]]
        self._run(stack, share[0], chunk, forward, scale)
        for f in pending:
            f.result()


_FFTW: _Fftw | None = None
_FFTW_LOCK = threading.Lock()
_FFTW_MISSING = False


def _import_pyfftw():
    """``import pyfftw``, without the Dask interface that pyFFTW's ``interfaces`` package loads
    where Dask is installed and not yet imported (Dask takes longer to import than a small scan
    takes to reconstruct; tests/cli/test_startup.py): during the import ``dask`` is marked missing
    in ``sys.modules``. Where Dask is already loaded (a pipeline run), nothing is held back."""
    import sys

    hold_back = "dask" not in sys.modules
    if hold_back:
        sys.modules["dask"] = None  # "import dask" raises ImportError; pyFFTW then skips its Dask interface
    try:
        import pyfftw
    finally:
        if hold_back and "dask" in sys.modules and sys.modules["dask"] is None:
            del sys.modules["dask"]
    return pyfftw


def _fftw() -> _Fftw | None:
    """The FFTW backend, imported on first use (pyFFTW takes ~10 ms to import after SciPy), or
    None where ``BACKEND`` is "scipy" or pyFFTW is not installed ("fftw": an error instead)."""
    global _FFTW, _FFTW_MISSING
    if _FFTW is not None or _FFTW_MISSING:
        return _FFTW
    with _FFTW_LOCK:
        if _FFTW is None and not _FFTW_MISSING:
            if _checked_backend(BACKEND) == "scipy":
                _FFTW_MISSING = True
                return None
            try:
                pyfftw = _import_pyfftw()
            except (ImportError, OSError) as err:  # not installed, or its FFTW library fails to load
                if BACKEND == "fftw":
                    raise ImportError(f"CHEMTOMO_FFT_BACKEND=fftw needs pyFFTW (pip install 'chemtomo[fftw]'): "
                                      f"{err}") from None
                _FFTW_MISSING = True
                return None
            _FFTW = _Fftw(pyfftw)
    return _FFTW


def backend(shape: tuple[int, ...], dtype=np.complex64) -> str:
    """Which library :func:`stack_fft2` uses for a C-contiguous array of ``shape`` and ``dtype``:
    "fftw" or "scipy" (``BACKEND``, ``FFTW_SIDES``)."""
    if (np.dtype(dtype) == np.complex64 and len(shape) >= 2 and shape[-2] in FFTW_SIDES and shape[-1] in FFTW_SIDES
            and _fftw() is not None):
        return "fftw"
    return "scipy"


def empty_aligned(shape, dtype=np.complex64) -> np.ndarray:
    """``np.empty`` aligned for SIMD loads (64 bytes): FFTW transforms such an array, and every
    whole-frame slice of it, in place without a copy."""
    dtype = np.dtype(dtype)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    n = math.prod(shape) * dtype.itemsize  # math.prod and the array interface: 2.8 against 6.9 µs a call
    raw = np.empty(n + 64, np.uint8)  # (the solvers ask tens of thousands of times per scan)
    start = -raw.__array_interface__["data"][0] % 64
    return raw[start:start + n].view(dtype).reshape(shape)


def stack_fft2(a: np.ndarray, *, inverse: bool = False, norm: str = "backward", overwrite_x: bool = False,
               workers: int | None = None, library: str | None = None) -> np.ndarray:
    """``scipy.fft.fft2`` / ``ifft2`` over the last two axes of a NumPy array (``norm``
    "backward" or "ortho"), with ``workers`` (None: :func:`fft_workers` of its size).

    C-contiguous complex64 stacks, which the ptychography solvers transform thousands of times per
    scan, skip scipy.fft's per-call argument handling (about 8 µs of 20–60 µs per call on small
    stacks, 7 % of a demo-sized scan's reconstruction on one core; docs/results/ptychography_speed.md,
    session 27): pocketfft's transform is called directly, with scipy.fft's values, or, for frames
    whose sides are in ``FFTW_SIDES`` where pyFFTW is installed (``backend``), FFTW's (equal to
    pocketfft's to float32 rounding; the same bits for any ``workers``). The result is ``a`` itself
    with ``overwrite_x`` where the transform is in place (FFTW; pocketfft on a contiguous array).
    Other arrays, or a SciPy whose transform did not pass the check at import, go through scipy.fft.
    ``library="scipy"`` keeps pocketfft whatever ``backend`` says: :func:`fft2` and the other
    general helpers do, so that what does not iterate (the simulator's frames above all: its data
    are the truth the tests and benchmarks compare against) has the same values on every install.

    Examples
    --------
    >>> a = np.ones((2, 4, 4), np.complex64)
    >>> float(stack_fft2(a, norm="ortho")[0, 0, 0].real), float(stack_fft2(a, inverse=True)[1, 0, 0].real)
    (4.0, 1.0)
    """
    if workers is None:
        workers = fft_workers(a.size)
    inorm = _INORM.get((norm, not inverse))
    if (library != "scipy" and inorm is not None and a.ndim >= 2 and a.dtype == np.complex64
            and a.flags.c_contiguous and backend(a.shape) == "fftw"):
        n = a.shape[-2] * a.shape[-1]
        scale = None if inorm == 0 else (1.0 / np.sqrt(n) if inorm == 1 else 1.0 / n)
        out = a if overwrite_x else _aligned_copy(a)
        _FFTW.transform(out, not inverse, scale, workers)
        return out
    if _C2C is not None and inorm is not None and a.dtype == np.complex64 and a.flags.c_contiguous and a.ndim >= 2:
        return _C2C(a, (-2, -1), not inverse, inorm, a if overwrite_x else None, workers)
    f = sfft.ifft2 if inverse else sfft.fft2
    return f(a, axes=(-2, -1), norm=norm, workers=workers, overwrite_x=overwrite_x)


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    out = empty_aligned(a.shape, a.dtype)
    out[...] = a
    return out


def fft2(a, *, norm: str = "ortho"):
    """2D FFT over the last two axes, zero frequency at index 0 (no shifts); pocketfft on the CPU
    (``stack_fft2``'s ``library="scipy"``: the same values with or without pyFFTW)."""
    xp = get_array_module(a)
    if xp is np:
        return stack_fft2(a, norm=norm, library="scipy")
    return xp.fft.fft2(a, axes=(-2, -1), norm=norm)


def ifft2(a, *, norm: str = "ortho"):
    """Inverse of :func:`fft2`."""
    xp = get_array_module(a)
    if xp is np:
        return stack_fft2(a, inverse=True, norm=norm, library="scipy")
    return xp.fft.ifft2(a, axes=(-2, -1), norm=norm)


def fft2c(a, *, norm: str = "ortho"):
    """Centred 2D FFT: real-space and frequency origins both at the array centre."""
    xp = get_array_module(a)
    return xp.fft.fftshift(fft2(xp.fft.ifftshift(a, axes=(-2, -1)), norm=norm), axes=(-2, -1))


def ifft2c(a, *, norm: str = "ortho"):
    """Inverse of :func:`fft2c`."""
    xp = get_array_module(a)
    return xp.fft.fftshift(ifft2(xp.fft.ifftshift(a, axes=(-2, -1)), norm=norm), axes=(-2, -1))
