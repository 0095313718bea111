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

References
----------
Luke, Inverse Problems 21, 37 (2005). Marchesini et al., J. Appl. Cryst. 49, 1245 (2016) (SHARP).
"""

from __future__ import annotations

import numpy as np

from .engine import Run

__all__ = ["run_raar"]


def run_raar(run: Run, iterations: int, beta: float) -> None:
    """Run ``iterations`` RAAR iterations with relaxation ``beta`` (β = 1 is difference map)."""
    model = run.model
    frames = model.all_frames
    state = model.psi  # the detector-plane iterate Ψ
    first = True
    for _ in range(iterations):
        st = run.state
        buf = model.buf
        model.exit_waves(buf, st.obj, run.probes, frames)
        buf = model.fft_inplace(buf)
        if first:  # start from the consistent iterate Ψ = Φ
            np.copyto(state, buf)
            first = False
        err, tot, ratio = model.raar_step(buf, state, st.background, beta)
        buf = model.ifft_inplace(buf)
        # positions only when asked for RAAR/DM too (PositionOptions.projection_solvers): ``buf``
        # is the relaxed reflection, not the data's projection, and the iterate Ψ keeps each
        # frame's wave from before it moved (steps from the projection did no better)
        refine = run.refine_positions and run.options.positions.projection_solvers
        steps = model.position_steps(buf, st.obj, run.probes, frames) if refine else None
        obj_num, obj_den, _, _ = model.accumulate(buf, st.obj, run.probes, frames)
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
