"""RAAR and DM on one thread take a few frames at a time (``raar.chunk_bounds``, issue 22 part 3:
the passes over a chunk's waves while they are in cache). Every term is formed and added in the
order of one pass over all frames, so the result must be the same bits as the whole-array loop
(the one two threads run), with chunk bounds that cut through the kernels' fixed chunks of
frames (``_kernels.thread_chunks``); bitwise equality is the right test, since any difference is
a change of what RAAR computes."""

import sys
import warnings

import numba
import numpy as np
import pytest

from chemtomo.ptycho import PositionOptions, PtychoOptions, reconstruct
from chemtomo.ptycho import _kernels as K
from chemtomo.ptycho.operators import FarFieldModel

from .conftest import bits, make_scan

RAAR = sys.modules["chemtomo.ptycho.raar"]


@pytest.fixture
def one_thread():
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@pytest.mark.parametrize("algorithm, options", [
    ("RAAR:6", None),
    ("DM:4", None),
    # positions refined by RAAR too: the steps of each chunk's frames land in their rows
    ("RAAR:5", PtychoOptions(positions=PositionOptions(projection_solvers=True, start=1, every=1))),
])
def test_chunks_of_frames_give_the_bits_of_one_pass_over_all(monkeypatch, one_thread, algorithm, options):
    truth = make_scan(grid=6, seed=3)  # 36 frames; the kernels' sums run in 16 fixed chunks of 2–3
    frame_bytes = truth.scan.frames[0].size * 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(RAAR, "WAVE_CHUNK_BYTES", 5 * frame_bytes)  # 5 frames: bounds cut the sums' chunks
        chunked = reconstruct(truth.scan, algorithm, frc=False, options=options)
        monkeypatch.setattr(RAAR, "chunk_bounds", lambda model: np.array([0, model.n_frames], np.int64))
        whole = reconstruct(truth.scan, algorithm, frc=False, options=options)
    assert np.array_equal(bits(chunked.transmission), bits(whole.transmission))
    assert np.array_equal(bits(chunked.probe), bits(whole.probe))
    assert np.array_equal(bits(chunked.background), bits(whole.background))
    assert np.array_equal(chunked.errors, whole.errors)
    assert np.array_equal(chunked.info["positions_m"], whole.info["positions_m"])
    if options is not None:  # the refinement ran, so the comparison covers the steps
        assert not np.array_equal(chunked.info["positions_m"], chunked.info["initial_positions_m"])


def test_chunk_bounds_take_a_few_frames_on_one_thread_only(monkeypatch, one_thread):
    model = FarFieldModel(None, np.ones((128, 128), bool), (300, 300), amplitude=np.ones((40, 128, 128), np.float32))
    bounds = RAAR.chunk_bounds(model)  # 2 MiB of 128² waves: 16 frames
    assert bounds.tolist() == [0, 16, 32, 40]
    two_modes = FarFieldModel(None, np.ones((128, 128), bool), (300, 300), n_modes=2,
                              amplitude=np.ones((40, 128, 128), np.float32))
    assert RAAR.chunk_bounds(two_modes).tolist() == [0, 40]
    monkeypatch.setattr(K, "one_thread", lambda: False)
    assert RAAR.chunk_bounds(model).tolist() == [0, 40]


def test_the_range_step_adds_to_the_sums_in_the_order_of_the_whole_step():
    rng = np.random.default_rng(0)
    n, h, w = 23, 8, 6
    amplitude = rng.random((n, h, w)).astype(np.float32) * 5
    model = FarFieldModel(None, rng.random((h, w)) > 0.1, (30, 30), amplitude=amplitude)
    far = (rng.standard_normal((n, 1, h, w)) + 1j * rng.standard_normal((n, 1, h, w))).astype(np.complex64)
    psi = (rng.standard_normal((n, 1, h, w)) + 1j * rng.standard_normal((n, 1, h, w))).astype(np.complex64)
    background = rng.random((h, w)).astype(np.float32)
    buf, state = far.copy(), psi.copy()
    whole = model.raar_accumulators()
    model.raar_step(buf, state, background, 0.75, 0, whole)
    err, tot, ratio = model.raar_totals(whole)
    acc = model.raar_accumulators()
    buf2, state2 = far.copy(), psi.copy()
    for a, b in ((0, 4), (4, 5), (5, 17), (17, 23)):
        model.raar_step(buf2[a:b], state2[a:b], background, 0.75, a, acc)
    err2, tot2, ratio2 = model.raar_totals(acc)
    assert (err2, tot2) == (err, tot) and err > 0
    assert np.array_equal(bits(ratio2), bits(ratio))
    assert np.array_equal(bits(buf2), bits(buf)) and np.array_equal(bits(state2), bits(state))
