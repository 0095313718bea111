"""The PIE batch update on the batch's patches only (``pie._BatchSums``: sums kept between
batches, the object step on the rows' spans, the probe step from the bins the batch used, the
fused mPIE momentum) gives the same bits as the whole-object NumPy update it replaced: the speed
change must not change what ePIE, rPIE and mPIE compute (issue 22, part 3).

The reference below is the previous ``run_pie`` verbatim (fresh zeroed sums for every batch,
``_step`` on the whole object, NumPy momentum). Bitwise equality is the right test: both do the
same float32 operations in the same order, so any difference is a real change of the algorithm.
"""

import warnings

import numpy as np
import pytest

from chemtomo.ptycho import (
    PIEOptions,
    ProbeOptions,
    PtychoOptions,
    algorithms,
    reconstruct,
)
from chemtomo.ptycho._kernels import thread_chunks
from chemtomo.ptycho.pie import _step, pie_batches

from .conftest import bits, make_scan


def reference_run_pie(run, iterations, *, alpha_object, alpha_probe, batch_size, momentum=0.0, friction=0.7,
                      group_bins=True):
    model = run.model
    n = model.n_frames
    n_batches = max(1, int(np.ceil(n / batch_size)))
    work = np.empty((int(np.ceil(n / n_batches)), model.n_modes, model.h, model.w), np.complex64)
    velocity = None
    if momentum > 0:
        velocity = [np.zeros_like(run.state.obj), np.zeros_like(run.state.probe)]
        previous = [run.state.obj.copy(), run.state.probe.copy()]
    reference_run_pie.calls += 1
    for _ in range(iterations):
        order = run.rng.permutation(n).astype(np.int64)
        err = tot = 0.0
        ratio_sum = np.zeros((model.h, model.w), np.float64)
        do_probe = run.refine_probe
        steps = np.zeros((n, 2)) if run.refine_positions else None
        # the same schedule as run_pie (pie_batches: grouped by shift bin); what is compared is the update
        for batch in (pie_batches(order, model.kb, n_batches, run.rng) if group_bins
                      else np.array_split(order, n_batches)):
            st = run.state
            buf = work[: len(batch)]
            model.exit_waves(buf, st.obj, run.probes, batch)
            buf = model.fft_inplace(buf)
            e, t, ratio = model.modulus_project(buf, batch, st.background, thread_chunks(batch))
            err, tot = err + e, tot + t
            ratio_sum += ratio
            buf = model.ifft_inplace(buf)
            if steps is not None:
                steps += model.position_steps(buf, st.obj, run.probes, batch)
            obj_num, obj_den, probe_num, probe_den = model.accumulate(buf, st.obj, run.probes, batch,
                                                                      c_phi=-1.0, do_probe=do_probe)
            st.obj = st.obj + _step(obj_num, obj_den, alpha_object)
            if do_probe:
                delta = model.unshift_sum(probe_num)
                run.set_probe(st.probe + _step(delta, probe_den.sum(axis=0)[None], alpha_probe))
            if velocity is not None:
                velocity[0] *= np.float32(friction)
                velocity[0] += st.obj - previous[0]
                st.obj = st.obj + np.float32(momentum) * velocity[0]
                previous[0] = st.obj.copy()
                if do_probe and st.probe.shape[0] == 1:
                    velocity[1] *= np.float32(friction)
                    velocity[1] += st.probe - previous[1]
                    run.set_probe(st.probe + np.float32(momentum) * velocity[1])
                previous[1] = st.probe.copy()
        if run.refine_background:
            run.background_update(ratio_sum, n)
        if steps is not None:
            run.move_positions(steps)
        if not run.end_iteration(err, tot):
            return


reference_run_pie.calls = 0


@pytest.mark.parametrize("chain", ["ePIE:4", "rPIE:4", "mPIE:4", "rPIE:2,ePIE:2"])
@pytest.mark.parametrize("n_modes", [1, 2])
def test_pie_batch_update_is_bitwise_the_whole_object_update(monkeypatch, chain, n_modes):
    truth = make_scan(jitter_px=0.3, background_counts=0.5, seed=4)  # sub-pixel positions: several shift bins
    options = PtychoOptions(pie=PIEOptions(batch_size=7), probe=ProbeOptions(n_modes=n_modes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = reconstruct(truth.scan, chain, frc=False, options=options)
        calls = reference_run_pie.calls
        monkeypatch.setattr(algorithms, "run_pie", reference_run_pie)
        old = reconstruct(truth.scan, chain, frc=False, options=options)
    assert reference_run_pie.calls > calls  # the reference really ran
    assert new.info["iterations"] == old.info["iterations"] == 4
    assert np.array_equal(bits(new.transmission), bits(old.transmission))
    assert np.array_equal(bits(new.probe), bits(old.probe))
    assert np.array_equal(np.asarray(new.errors), np.asarray(old.errors))
