"""The split-half FRC's halves run in a thread beside the full scan, each on one core
(``reconstruct._two_cores_free``): the result must be the same bits as running them one after
the other on all cores (every kernel gives the same bits whatever its thread count, and each
reconstruction has its own seed), and the progress callback must still count up (issue 22)."""

import sys
import warnings

import numpy as np
import pytest

from chemtomo.ptycho import reconstruct

from .conftest import bits, make_scan

R = sys.modules["chemtomo.ptycho.reconstruct"]


@pytest.mark.skipif(not R._two_cores_free(), reason="needs two cores and a thread-safe numba threading layer")
def test_halves_beside_the_full_scan_give_the_samebits(monkeypatch):
    # every path on all cores, as for a scan with large batches (not ONE_CORE_BATCH_PIXELS's one core)
    monkeypatch.setattr(R, "ONE_CORE_BATCH_PIXELS", 0)
    truth = make_scan(grid=6, seed=3)
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        side_by_side = reconstruct(truth.scan, "rPIE:6,ePIE:4", progress=lambda done, total: calls.append(done))
        monkeypatch.setattr(R, "_two_cores_free", lambda: False)
        one_after_other = reconstruct(truth.scan, "rPIE:6,ePIE:4")
    assert np.array_equal(bits(side_by_side.transmission), bits(one_after_other.transmission))
    assert np.array_equal(bits(side_by_side.probe), bits(one_after_other.probe))
    assert side_by_side.frc.resolution_m == one_after_other.frc.resolution_m
    assert side_by_side.info["frc_shift_px"] == one_after_other.info["frc_shift_px"]
    assert calls == list(range(1, len(calls) + 1)) and len(calls) == 3 * 10


@pytest.mark.skipif(not R._two_cores_free(), reason="needs two cores and a thread-safe numba threading layer")
def test_a_core_handed_over_mid_run_gives_the_samebits(monkeypatch):
    # LSQML:40: the halves (80 iterations in their thread) outlast the full scan (40), so the halves'
    # thread takes the freed core in the middle of a run; the bits must not change
    monkeypatch.setattr(R, "ONE_CORE_BATCH_PIXELS", 0)
    truth = make_scan(grid=6, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        side_by_side = reconstruct(truth.scan, "LSQML:40")
        monkeypatch.setattr(R, "_two_cores_free", lambda: False)
        one_after_other = reconstruct(truth.scan, "LSQML:40")
    assert np.array_equal(bits(side_by_side.transmission), bits(one_after_other.transmission))
    assert side_by_side.frc.resolution_m == one_after_other.frc.resolution_m
    assert all(name in ("halves", "full scan") for name, _ in side_by_side.info["frc_core_handover"])
    assert one_after_other.info["frc_core_handover"] == []


def test_a_scan_with_small_batches_runs_on_one_core_with_the_same_bits(monkeypatch):
    # 36 frames of 32²: PIE batches of 4 frames, 4,096 px, far below ONE_CORE_BATCH_PIXELS; such a
    # scan runs on one core (on two cores it waits on their synchronisation: 49 frames of 64² took
    # 2.4 s against 0.9 s), and the freed core is not handed over. The bits are those of all cores.
    truth = make_scan(grid=6, seed=3)
    n, (h, w) = truth.scan.n_frames, truth.scan.frame_shape
    assert R._one_core_suffices(n, h, w) and not R._one_core_suffices(516, 128, 128)  # the star: two cores
    seen = []
    original = R._solve

    def solve(*args, **kwargs):
        import numba

        from chemtomo.core.fft import fft_workers
        seen.append((fft_workers(), numba.get_num_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(R, "_solve", solve)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = reconstruct(truth.scan, "LSQML:20", frc=False)
        monkeypatch.setattr(R, "ONE_CORE_BATCH_PIXELS", 0)
        all_cores = reconstruct(truth.scan, "LSQML:20", frc=False)
        if R._two_cores_free():
            monkeypatch.setattr(R, "ONE_CORE_BATCH_PIXELS", 2 ** 18)
            side_by_side = reconstruct(truth.scan, "LSQML:40")
            assert side_by_side.info["frc_core_handover"] == []
    assert seen[0] == (1, 1)
    assert np.array_equal(bits(small.transmission), bits(all_cores.transmission))
    assert np.array_equal(bits(small.probe), bits(all_cores.probe))


def test_the_core_handover_widens_the_waiting_thread_once_to_the_callers_threads():
    import numba

    from chemtomo.core.fft import fft_workers, one_core

    callers = (fft_workers(), numba.get_num_threads())  # made here: what a widened thread gets
    handover = R._CoreHandover()
    seen = []
    with one_core():
        hook = handover.hook("halves", lambda done, total: seen.append((done, fft_workers(), numba.get_num_threads())))
        hook(1, 9)
        handover.finished()
        hook(2, 9)
        hook(3, 9)
    assert seen == [(1, 1, 1), (2, *callers), (3, *callers)]
    assert handover.handed_over == [("halves", 2)]
    assert (fft_workers(), numba.get_num_threads()) == callers  # the one_core block restored them


def test_the_core_handover_keeps_a_callers_thread_limit():
    import numba

    from chemtomo.core.fft import one_core

    before = numba.get_num_threads()
    numba.set_num_threads(1)  # a caller that asked numba for one thread is not widened past it
    try:
        handover = R._CoreHandover()
        seen = []
        with one_core():
            hook = handover.hook("full scan", lambda done, total: seen.append(numba.get_num_threads()))
            handover.finished()
            hook(1, 9)
        assert seen == [1] and handover.handed_over == [("full scan", 1)]
    finally:
        numba.set_num_threads(before)
