"""RAAR: relaxed averaged alternating reflections, the paper's solver (Luke 2005; SHARP).

The iteration on the exit waves ψ (all frames at once)::

    ψ ← β [ψ + P_F(2 P_O ψ − ψ) − P_O ψ] + (1 − β) P_O ψ

with P_O ψ = P·O[patch] the overlap projection (current object and probe) and P_F the
Fourier-modulus projection. The iterate is kept in the detector plane, Ψ = F ψ, which is exact
(F is unitary and P_F acts there) and lets the error be measured on the model Φ = F P_O ψ at no
extra cost. One iteration:

    Φ  = F[P·O[patch]]                                  (forward FFT per frame and mode)
    Ψ ← β [Ψ + P_F(2Φ − Ψ) − Φ] + (1 − β) Φ            (one fused pass, background included)
    ψ  = F⁻¹ Ψ                                          (inverse FFT per frame and mode)
    O ← Σ P* ψ / Σ |P|²,  then  P ← Σ O* ψ / Σ |O|²      (least-squares overlap of the new ψ)
    b ← EM background step on the model Φ

One forward and one inverse FFT per frame and mode, plus three fused passes over the waves
(make Φ, RAAR step, accumulate the object), and a fourth when the probe is refined.

On one thread with one probe mode (the pipeline's per-scan tasks, the CLI's FRC threads), the
first four lines run on a few frames at a time (``WAVE_CHUNK_BYTES`` of waves, ``chunk_bounds``)
while they are in the core's cache, instead of each line streaming every frame's waves through
memory: the iterate Ψ is read and written once per iteration and the new ψ written once for the
probe's pass. Every term is formed and added in the same order as over all frames at once, so
the result is the same bits (tests/ptycho/test_raar_chunks.py). With the object sums' kernel for
the waves themselves (``_kernels.accumulate_1_waves``), an iteration on one core takes 0.87–0.91×
the time on 196 frames of 128², 0.91–0.94× on 441 of 64² (docs/results/ptychography_speed.md,
"Session 10").

References
----------
Luke, Inverse Problems 21, 37 (2005). Marchesini et al., J. Appl. Cryst. 49, 1245 (2016) (SHARP).
"""

from __future__ import annotations

import itertools

import numpy as np

from . import _kernels as K
from .engine import Run

__all__ = ["run_raar"]


#: Bytes of waves per chunk of frames on one thread (``chunk_bounds``): a few frames that stay
#: in a core's L2 cache (2 MiB here) between the passes over them. Measured on 196 frames of 128²
#: (1 MiB is 8 frames; before the waves' sums kernel): ×FFT floor 1.57 at 256 KiB, 1.50–1.54 at
#: 0.5–1 MiB, 1.48 at 2–4 MiB; 1.72 over all frames at once.
WAVE_CHUNK_BYTES = 2 << 20


def chunk_bounds(model) -> np.ndarray:
    """Bounds (n_chunks + 1,) of the consecutive chunks of frames that ``run_raar`` takes at a time:
    ``WAVE_CHUNK_BYTES`` of waves each on one thread with one probe mode, else all frames."""
    n = model.n_frames
    if model.n_modes > 1 or not K.one_thread():
        return np.array([0, n], np.int64)
    per = max(1, WAVE_CHUNK_BYTES // (model.h * model.w * np.dtype(np.complex64).itemsize))
    return np.unique(np.append(np.arange(0, n, per, dtype=np.int64), n))


def run_raar(run: Run, iterations: int, beta: float) -> None:
    """Run ``iterations`` RAAR iterations with relaxation ``beta`` (β = 1 is difference map)."""
    model = run.model
    frames = model.all_frames
    state = model.psi  # the detector-plane iterate Ψ
    bounds = chunk_bounds(model)
    first = True
    for _ in range(iterations):
        st = run.state
        buf = model.buf
        # positions only when asked for RAAR/DM too (PositionOptions.projection_solvers): the
        # waves are the relaxed reflection, not the data's projection, and the iterate Ψ keeps
        # each frame's wave from before it moved (steps from the projection did no better)
        refine = run.refine_positions and run.options.positions.projection_solvers
        steps = np.zeros((model.n_frames, 2), np.float64) if refine else None
        acc = model.raar_accumulators()
        obj_num = np.zeros(model.object_shape, np.complex64)
        obj_den = np.zeros(model.object_shape, np.float32)
        for a, b in itertools.pairwise(bounds.tolist()):
            waves = buf[a:b]
            model.exit_waves(waves, st.obj, run.probes, frames[a:b])
            waves = _in_place(model.fft_inplace(waves), buf, a, b)
            if first:  # start from the consistent iterate Ψ = Φ
                np.copyto(state[a:b], waves)
            model.raar_step(waves, state[a:b], st.background, beta, a, acc)
            waves = _in_place(model.ifft_inplace(waves), buf, a, b)
            if refine:
                model.position_steps(waves, st.obj, run.probes, frames[a:b], out=steps)
            model.accumulate(waves, st.obj, run.probes, frames[a:b], out=(obj_num, obj_den, None, None))
        first = False
        err, tot, ratio = model.raar_totals(acc)
        run.overlap_update(obj_num, obj_den, None, None)
        if run.refine_probe:
            # Probe from the new object (not the old one: updating both from the same ψ at once
            # would apply every common scale error twice and oscillate).
            _, _, probe_num, probe_den = model.accumulate(buf, run.state.obj, run.probes, frames,
                                                          do_object=False, do_probe=True)
            run.overlap_update(None, None, probe_num, probe_den)
            if model.n_modes > 1:  # the modes were re-orthogonalised: mix the iterate's modes alike
                state[...] = np.einsum("mn,jnyx->jmyx", run.mode_mixing, state, optimize=True)
        if not run.finish_sweep(ratio, model.n_frames, steps, err, tot):
            return


def _in_place(result: np.ndarray, buf: np.ndarray, a: int, b: int) -> np.ndarray:
    """``buf[a:b]`` holding an FFT's ``result`` (scipy.fft transforms a contiguous complex64 array
    in place when allowed to; copied back where it did not)."""
    if not np.shares_memory(result, buf):
        buf[a:b] = result
    return buf[a:b]
