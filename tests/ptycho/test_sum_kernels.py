"""The overlap-sum kernel that replaces ``_kernels.accumulate_1`` on one thread gives its bits
(issue 22, part 3: faster, same results): ``accumulate_1_fused``, the object and probe sums in
one frame-major sweep. Bitwise equality is the right test: each sum
element gets the same float32 operations in the same frame order, so any difference is a real
change of what RAAR, DM, ePIE/rPIE/mPIE, ML and LSQML compute on one core."""

import numba
import numpy as np
import pytest

from chemtomo.ptycho import _kernels as K
from chemtomo.ptycho.operators import float_view


def problem(seed, n_frames=23, h=16, w=12, n_bins=4):
    rng = np.random.default_rng(seed)

    def cplx(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    obj = cplx(40, 37)
    probes = cplx(n_bins, h, w)
    buf = cplx(n_frames, h, w)
    cy = rng.integers(0, obj.shape[0] - h + 1, n_frames).astype(np.int64)
    cx = rng.integers(0, obj.shape[1] - w + 1, n_frames).astype(np.int64)
    kb = rng.integers(0, n_bins, n_frames).astype(np.int64)
    # a batch: the first 17 waves belong to these frames, in a random order (PIE's)
    frames = rng.permutation(n_frames)[:17].astype(np.int64)
    # the sums start from earlier batches' values (PIE keeps them) or zero
    start = [cplx(*obj.shape), rng.random(obj.shape).astype(np.float32),
             cplx(n_bins, h, w), rng.random((n_bins, h, w)).astype(np.float32)]
    return obj, probes, buf, cy, cx, kb, frames, start


def run(kernel, obj, probes, buf, cy, cx, kb, frames, start, c_phi, do_object=True, do_probe=True):
    sums = [a.copy() for a in start]
    views = (float_view(sums[0]), sums[1], float_view(sums[2]), sums[3])
    args = (float_view(buf), float_view(obj), float_view(probes), cy, cx, kb, frames)
    top = np.zeros(1, np.float32)
    kernel(*args, c_phi, *views, do_object, do_probe, top)
    run.den_max = top[0]
    return [np.ascontiguousarray(a).view(np.uint32) for a in sums]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("c_phi", [0.0, -1.0])
@pytest.mark.parametrize("do_object, do_probe", [(True, True), (True, False), (False, True)])
def test_frame_major_one_thread_sweep_is_bitwise_the_row_owned_kernel(seed, c_phi, do_object, do_probe):
    data = problem(seed)
    want = run(K.accumulate_1, *data, c_phi, do_object, do_probe)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert K.one_thread()
        got = run(K.accumulate_1_fused, *data, c_phi, do_object, do_probe)
    finally:
        numba.set_num_threads(previous)
    for g, w_ in zip(got, want):
        assert np.array_equal(g, w_)


def run_waves(kernel, obj, probes, buf, cy, cx, kb, frames, start, do_object=True, do_probe=True):
    sums = [a.copy() for a in start]
    views = (float_view(sums[0]), sums[1], float_view(sums[2]), sums[3])
    kernel(float_view(buf), float_view(obj), float_view(probes), cy, cx, kb, frames, *views, do_object, do_probe)
    return sums


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("do_object, do_probe", [(True, True), (True, False), (False, True)])
def test_the_sums_of_the_waves_are_the_same_bits_on_one_thread_and_on_two(seed, do_object, do_probe):
    # RAAR and DM (c_phi = 0) take kernels that do not form the zero term 0·P·O: the frame-major
    # sweep (one thread) and the row-owned kernel (threads) must give the same bits, as the
    # general pair does, so that RAAR's result does not depend on the thread count
    data = problem(seed)
    want = run_waves(K.accumulate_1_waves_rows, *data, do_object, do_probe)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        got = run_waves(K.accumulate_1_waves, *data, do_object, do_probe)
    finally:
        numba.set_num_threads(previous)
    for g, w_ in zip(got, want):
        assert np.array_equal(g.view(np.uint32), w_.view(np.uint32))
    # and they are the general kernels' sums with c_phi = 0, to float32 rounding: without the zero
    # term the compiler contracts the products into multiply-adds in another order, which moves
    # some sums by an ulp or two (of the terms' magnitude: ~30 terms of size ~2 per element)
    general = run(K.accumulate_1, *data, 0.0, do_object, do_probe)
    for g, w_ in zip(got, general):
        w_ = w_.view(g.dtype)
        np.testing.assert_allclose(g, w_, rtol=0, atol=1e-5 * max(1.0, float(np.abs(w_).max())))


def test_the_check_sees_a_changed_sum():
    # the comparison can fail: the sums of the waves (c_phi = 0) are not those of the
    # corrections (c_phi = -1)
    data = problem(0)
    want = run(K.accumulate_1, *data, -1.0)
    got = run(K.accumulate_1_fused, *data, 0.0)
    assert not np.array_equal(got[0], want[0]) and not np.array_equal(got[2], want[2])


def test_the_sweep_finds_the_illumination_maximum_of_a_batch():
    # PIE's sums start at zero for every batch: the largest value the sweep writes into Σ|P|²
    # is its maximum, the same float as the spans kernel's (PIE's step then skips that pass)
    obj, probes, buf, cy, cx, kb, frames, start = problem(2)
    zero = [np.zeros_like(a) for a in start]
    sums = run(K.accumulate_1_fused, obj, probes, buf, cy, cx, kb, frames, zero, -1.0)
    den = sums[1].view(np.float32)
    assert run.den_max == den.max() > 0
    lo, hi = np.zeros(den.shape[0], np.int64), np.zeros(den.shape[0], np.int64)
    row_max = np.zeros(den.shape[0], np.float32)
    K.pie_row_spans(den, cy, cx, frames, probes.shape[1], probes.shape[2], lo, hi, row_max, True)
    assert row_max.max() == run.den_max


def test_the_row_owned_kernel_finds_the_same_maximum_on_two_threads():
    # On two threads PIE and LSQML take the row-owned kernel, which takes each row's maximum over
    # the span its frames cover once they are added: for a batch's sums (zero at its start) the
    # same float as the one-thread sweep's and as Σ|P|²'s maximum, so the step skips the spans'
    # pass there too; a NaN written into the sums gives NaN (the caller then measures it)
    obj, probes, buf, cy, cx, kb, frames, start = problem(2)
    zero = [np.zeros_like(a) for a in start]
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        sums = run(K.accumulate_1, obj, probes, buf, cy, cx, kb, frames, zero, -1.0)
        rows = run.den_max
        run(K.accumulate_1_fused, obj, probes, buf, cy, cx, kb, frames, zero, -1.0)
        assert rows == run.den_max == sums[1].view(np.float32).max() > 0
        run(K.accumulate_1, obj, probes, buf, cy, cx, kb, frames, zero, -1.0, do_object=False)
        assert run.den_max == 0  # no object sums asked for: nothing found (the caller measures)
        probes[kb[frames[0]], 3, 5] = np.nan
        run(K.accumulate_1, obj, probes, buf, cy, cx, kb, frames, zero, -1.0)
        assert np.isnan(run.den_max)
    finally:
        numba.set_num_threads(previous)


def test_the_maximum_is_the_largest_value_written_whatever_the_sums_held():
    # the sweep takes the maximum on the sums' bit patterns as integers (vectorised); for the
    # non-negative Σ|P|² that is the float maximum of every value it wrote: here the touched
    # pixels' final values, over sums that held earlier batches' values
    obj, probes, buf, cy, cx, kb, frames, start = problem(3)
    touched = np.zeros(start[1].shape, bool)
    h, w = probes.shape[1], probes.shape[2]
    for j in frames:
        touched[cy[j]:cy[j] + h, cx[j]:cx[j] + w] = True
    start[1][tuple(np.argwhere(~touched)[0])] = 1e6  # a pixel no frame writes: not counted
    sums = run(K.accumulate_1_fused, obj, probes, buf, cy, cx, kb, frames, start, -1.0)
    den = sums[1].view(np.float32)
    assert run.den_max == den[touched].max() < den.max() == 1e6


def test_a_nan_in_the_sums_leaves_the_maximum_to_the_caller():
    # a NaN's bits exceed every finite float's: the sweep reports NaN ("not found on the way"),
    # and PIE's spans then measure the maximum with float comparisons, which skip the NaN
    obj, probes, buf, cy, cx, kb, frames, start = problem(4)
    probes[kb[frames[0]], 3, 5] = np.nan
    zero = [np.zeros_like(a) for a in start]
    sums = run(K.accumulate_1_fused, obj, probes, buf, cy, cx, kb, frames, zero, -1.0)
    assert np.isnan(run.den_max)
    den = sums[1].view(np.float32)
    lo, hi = np.zeros(den.shape[0], np.int64), np.zeros(den.shape[0], np.int64)
    row_max = np.zeros(den.shape[0], np.float32)
    K.pie_row_spans(den, cy, cx, frames, probes.shape[1], probes.shape[2], lo, hi, row_max, True)
    assert row_max.max() == np.nanmax(den) > 0


@pytest.mark.parametrize("n_modes", [1, 2])
def test_probe_step_kernels_are_bitwise_numpy(n_modes):
    # PIE's probe step: gather (and zero) the batch's per-bin sums, then sum the ramp products
    # over the bins; the reference is the NumPy it replaced (fancy-indexed copy, in-place complex
    # product per bin, reduction over the bins, zeroing). The products use NumPy's own rounding
    # (one fused multiply-add per part): a plain a·b − c·d differs in about a quarter of them.
    rng = np.random.default_rng(5)
    n_bins, h, w = 16, 8, 12
    num = (rng.standard_normal((n_bins, n_modes, h, w)) + 1j * rng.standard_normal((n_bins, n_modes, h, w)))
    num = num.astype(np.complex64)
    den = rng.random((n_bins, h, w)).astype(np.float32)
    ramps = np.exp(2j * np.pi * rng.random((n_bins, h, w))).astype(np.complex64)
    bins = np.array([0, 3, 4, 9, 15], np.int64)

    want_work, want_den = num[bins], den[bins].sum(axis=0)
    spectrum = want_work.copy()
    for i, k in enumerate(bins):
        spectrum[i] *= ramps[k]
    want_sum = spectrum.sum(axis=0)

    n2, d2 = num.copy(), den.copy()
    work = np.empty((len(bins), n_modes, h, w), np.complex64)
    den_sum = np.empty((h, w), np.float32)
    K.gather_bins(float_view(n2).reshape(n_bins, -1), bins, float_view(work).reshape(len(bins), -1),
                  d2.reshape(n_bins, -1), den_sum.reshape(-1))
    assert np.array_equal(work.view(np.uint32), want_work.view(np.uint32))
    assert np.array_equal(den_sum.view(np.uint32), want_den.view(np.uint32))
    assert not n2[bins].any() and not d2[bins].any()
    others = np.setdiff1d(np.arange(n_bins), bins)
    assert np.array_equal(n2[others], num[others]) and np.array_equal(d2[others], den[others])

    got = np.empty((n_modes, h, w), np.complex64)
    K.unshift_products_sum(float_view(work).reshape(len(bins), n_modes, -1), float_view(ramps).reshape(n_bins, -1),
                           bins, float_view(got).reshape(n_modes, -1))
    assert np.array_equal(got.view(np.uint32), want_sum.view(np.uint32))
