"""The FFTW backend of ``core.fft.stack_fft2`` (pyFFTW, the optional extra ``chemtomo[fftw]``).

What the solvers rely on: FFTW's values equal pocketfft's to float32 rounding, and a frame's
transform gives the same bits whatever the thread count, the stack it sits in and the memory
alignment of its array (so that a run's results do not depend on how many cores it was given,
on ``_CoreHandover``'s timing, or on where NumPy put an array).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft

import chemtomo.core.fft as F

pyfftw = pytest.importorskip("pyfftw", reason="pyFFTW not installed: the FFTW backend is optional")

pytestmark = pytest.mark.skipif(F.BACKEND == "scipy", reason="CHEMTOMO_FFT_BACKEND=scipy")


def _stack(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` whose data start 8 bytes past a 64-byte boundary (complex64-aligned, not
    SIMD-aligned)."""
    raw = np.empty(a.nbytes + 72, np.uint8)
    start = (-raw.ctypes.data) % 64 + 8
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("shape", [(9, 128, 128), (3, 2, 64, 64), (33, 32, 32), (16, 16), (5, 64, 128)])
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("norm", ["backward", "ortho"])
def test_fftw_gives_pockets_values_to_float32_rounding(shape, inverse, norm):
    a = _stack(shape)
    assert F.backend(a.shape) == "fftw"
    want = (sfft.ifft2 if inverse else sfft.fft2)(a.astype(np.complex128), axes=(-2, -1), norm=norm)
    got = F.stack_fft2(a.copy(), inverse=inverse, norm=norm)
    assert got.dtype == np.complex64 and got.shape == a.shape
    # float32 FFTs of N points carry ~eps·log2(N) relative error (eps = 6e-8, log2 N ≤ 14): 2e-6
    # bounds it with a margin of 2–3×; a wrong normalisation or axis would be off by O(1)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 2e-6, err


def test_a_frames_transform_is_the_same_bits_on_any_core_count_stack_and_alignment():
    a = _stack((37, 128, 128), seed=1)
    ref = F.stack_fft2(a.copy(), overwrite_x=True, workers=1)
    for workers in (2, 3):
        assert np.array_equal(F.stack_fft2(a.copy(), overwrite_x=True, workers=workers), ref)
    # a frame alone, or in a shorter stack (another chunk shape, FFT_CHUNK_ELEMENTS), gives the same
    # bits: what operators.shift_probes_into relies on when it shifts the probe to some bins only
    assert np.array_equal(F.stack_fft2(a[5:6].copy()), ref[5:6])
    assert np.array_equal(F.stack_fft2(a[3:14].copy(), workers=2), ref[3:14])
    # an array off FFTW's SIMD alignment is transformed through an aligned copy: the same bits,
    # in place where asked
    mis = _misaligned(a)
    assert mis.ctypes.data % F._fftw().alignment != 0
    out = F.stack_fft2(mis, overwrite_x=True, workers=2)
    assert out.ctypes.data == mis.ctypes.data and np.array_equal(out, ref)
    # the input is left alone without overwrite_x
    b = a.copy()
    F.stack_fft2(b, inverse=True)
    assert np.array_equal(b, a)


def test_the_backend_rule():
    assert F.backend((10, 256, 256)) == "scipy"  # FFTW's estimated plans lose at 256² (FFTW_SIDES)
    assert F.backend((10, 96, 96)) == "scipy"
    assert F.backend((10, 128, 128), np.complex128) == "scipy"
    assert F.backend((128,)) == "scipy"
    assert F.backend((4, 64, 64)) == "fftw"
    # other stacks keep pocketfft's own values, to the bit
    a = _stack((3, 96, 96))
    assert np.array_equal(F.stack_fft2(a.copy()), sfft.fft2(a))


def test_the_general_helpers_keep_pocketfft():
    # core.fft.fft2 / ifft2 (the simulator's frames, the registration) give scipy.fft's own values
    # with or without pyFFTW: simulated data, the truth every test and benchmark compares against,
    # do not depend on the install
    a = _stack((6, 64, 64), seed=2)
    assert np.array_equal(F.fft2(a), sfft.fft2(a, norm="ortho"))
    assert np.array_equal(F.ifft2(a), sfft.ifft2(a, norm="ortho"))
    assert np.array_equal(F.stack_fft2(a.copy(), library="scipy"), sfft.fft2(a))
    assert not np.array_equal(F.stack_fft2(a.copy()), sfft.fft2(a))  # FFTW's rounding is its own


def test_the_backend_can_be_chosen(monkeypatch):
    monkeypatch.setattr(F, "_FFTW", None)
    monkeypatch.setattr(F, "_FFTW_MISSING", False)
    monkeypatch.setattr(F, "BACKEND", "scipy")
    a = _stack((4, 64, 64))
    assert F.backend(a.shape) == "scipy"
    assert np.array_equal(F.stack_fft2(a.copy(), norm="ortho"), sfft.fft2(a, norm="ortho"))
    monkeypatch.setattr(F, "_FFTW_MISSING", False)
    monkeypatch.setattr(F, "BACKEND", "fast")
    with pytest.raises(ValueError, match="CHEMTOMO_FFT_BACKEND must be 'auto', 'fftw' or 'scipy', got 'fast'"):
        F.backend(a.shape)


def test_a_missing_or_broken_pyfftw_falls_back_to_pocketfft(monkeypatch):
    def broken():
        raise OSError("libfftw3f.so: cannot open shared object file")

    monkeypatch.setattr(F, "_import_pyfftw", broken)
    monkeypatch.setattr(F, "_FFTW", None)
    monkeypatch.setattr(F, "_FFTW_MISSING", False)
    a = _stack((3, 64, 64))
    assert F.backend(a.shape) == "scipy"
    assert np.array_equal(F.stack_fft2(a.copy()), sfft.fft2(a))
    monkeypatch.setattr(F, "_FFTW_MISSING", False)
    monkeypatch.setattr(F, "BACKEND", "fftw")  # asked for by name: an error that says what to install
    with pytest.raises(ImportError, match=r"CHEMTOMO_FFT_BACKEND=fftw needs pyFFTW \(pip install 'chemtomo\[fftw\]'\)"):
        F.backend(a.shape)


def test_empty_aligned():
    a = F.empty_aligned((3, 5, 16, 16))
    assert a.shape == (3, 5, 16, 16) and a.dtype == np.complex64 and a.flags.c_contiguous
    assert a.ctypes.data % 64 == 0 and a[1, 2].ctypes.data % 32 == 0
    assert F.empty_aligned((0, 8)).shape == (0, 8)
