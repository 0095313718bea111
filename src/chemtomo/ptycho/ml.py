"""Poisson maximum-likelihood refinement by preconditioned conjugate gradients.

Minimises the Poisson negative log-likelihood of the counts,
``L = Σ_j Σ_q (s_jq + b_q) − I_jq log(s_jq + b_q)``, ``s_jq = Σ_m |F[P_m O_j]|²``, over the
object, the probe (when refined) and the background (when retrieved). Each iteration:

1. the gradient ``∂L/∂Ψ* = (1 − I / (s + b)) Ψ`` is propagated back to the object
   (``Σ_j P* F⁻¹[·]``), the probe (``Σ_j O_j* F⁻¹[·]``) and the background (``Σ_j (1 − I/(s + b))``);
2. each is preconditioned by its illumination (``1 / Σ|P|²``, ``1 / Σ|O|²``, ``1 / n_frames``)
   and combined with the previous direction (Polak–Ribière);
3. the step length α is found by Fisher-scoring iterations on the exact L(α): along the direction
   (ΔO, ΔP) the far field is exactly ``Ψ + α F[P ΔO + ΔP O] + α² F[ΔP ΔO]``, so the line search
   costs two extra FFTs per frame and no further model evaluation.

References
----------
Thibault & Guizar-Sicairos, New J. Phys. 14, 063004 (2012).
Odstrčil, Menzel & Guizar-Sicairos, Opt. Express 26, 3108 (2018).
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.fft import empty_aligned
from . import _kernels as K
from .engine import Run
from .operators import float_view

__all__ = ["run_ml"]


def _line_terms(model, psi0, a1, a2, background, d_bg, use_a2: bool, alpha: float) -> tuple[float, float, float]:
    """(dL/dα, Fisher curvature, L) at step α along the search direction (``poisson_line_terms``)."""
    sums = np.zeros((model.chunks.shape[0] - 1, 3), np.float64)
    if model.n_modes == 1:
        K.poisson_line_terms_1(float_view(psi0[:, 0]), float_view(a1[:, 0]), float_view(a2[:, 0]), model.intensity,
                               model.all_frames, model.validf, background, d_bg, alpha, use_a2, model.chunks, sums)
    else:
        K.poisson_line_terms(psi0, a1, a2, model.intensity, model.all_frames, model.valid, background, d_bg, alpha,
                             use_a2, model.chunks, sums)
    d1, d2, value = sums.sum(axis=0)
    return float(d1), float(d2), float(value)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.vdot(a, b).real)


def run_ml(run: Run, iterations: int, *, newton_steps: int, precond_reg: float) -> None:
    """Run ``iterations`` conjugate-gradient iterations on the Poisson likelihood."""
    model = run.model
    frames = model.all_frames
    n = model.n_frames
    psi0 = model.buf
    work = model.psi
    a2 = None
    previous = None  # (gradients, preconditioned gradients, directions) of the last iteration
    for _ in range(iterations):
        st = run.state
        do_probe = run.refine_probe
        do_bg = run.refine_background
        model.exit_waves(psi0, st.obj, run.probes, frames)
        psi0 = model.fft_inplace(psi0)
        t = model.chunks.shape[0] - 1
        bg_grad = np.zeros((t, model.h, model.w), np.float32)
        sums = np.zeros((t, 3), np.float64)
        if model.n_modes == 1:
            K.poisson_gradient_1(float_view(psi0[:, 0]), float_view(work[:, 0]), model.intensity, frames, model.validf,
                                 st.background, model.chunks, bg_grad, sums)
        else:
            K.poisson_gradient(psi0, work, model.intensity, frames, model.valid, st.background, model.chunks,
                               bg_grad, sums)
        bg_grad = bg_grad.sum(axis=0)
        _, err, tot = sums.sum(axis=0)
        chi = model.ifft_inplace(work)
        g_obj, den_obj, g_probe_bins, den_probe = model.accumulate(chi, st.obj, run.probes, frames,
                                                                   do_probe=do_probe)
        grads = [g_obj]
        pre = [g_obj / (den_obj + precond_reg * float(den_obj.max()) + 1e-30)]
        if do_probe:
            g_probe = model.unshift_sum(g_probe_bins)
            grads.append(g_probe)
            den_probe = den_probe.sum(axis=0)
            pre.append(g_probe / (den_probe + precond_reg * float(den_probe.max()) + 1e-30))
        if do_bg:
            grads.append(bg_grad.astype(np.float32))
            pre.append((bg_grad / n).astype(np.float32))
        directions = [-p for p in pre]
        if previous is not None and len(previous[0]) == len(grads):
            g_old, p_old, d_old = previous
            num = sum(_dot(p, g - go) for p, g, go in zip(pre, grads, g_old))
            den = sum(_dot(po, go) for po, go in zip(p_old, g_old))
            beta_pr = max(0.0, num / den) if den > 0 else 0.0
            directions = [d + beta_pr * do for d, do in zip(directions, d_old)]
        # Orthogonalising several probe modes rotates them, so old directions no longer apply.
        previous = None if (do_probe and st.probe.shape[0] > 1) else (grads, pre, directions)
        d_obj = directions[0].astype(np.complex64)
        d_probe = directions[1].astype(np.complex64) if do_probe else None
        d_bg = directions[-1].astype(np.float32) if do_bg else np.zeros((model.h, model.w), np.float32)

        # Line search: Ψ(α) = Ψ0 + α A1 + α² A2 exactly.
        a1 = work
        if do_probe:
            d_probes = model.shifted_probes(d_probe)
            K.bilinear_waves(a1, d_obj, run.probes, st.obj, d_probes, model.cy, model.cx, model.kb, frames, True)
            if a2 is None:
                a2 = empty_aligned(psi0.shape)
            K.bilinear_waves(a2, d_obj, d_probes, st.obj, d_probes, model.cy, model.cx, model.kb, frames, False)
            a2 = model.fft_inplace(a2)
        else:
            K.bilinear_waves(a1, d_obj, run.probes, st.obj, run.probes, model.cy, model.cx, model.kb, frames, False)
        a1 = model.fft_inplace(a1)
        line = functools.partial(_line_terms, model, psi0, a1, a2 if do_probe else a1, st.background, d_bg,
                                 do_probe)
        alpha = 0.0
        d1, d2, loss0 = line(0.0)
        for _ in range(newton_steps):
            if not d2 > 0:
                break
            alpha = max(0.0, alpha - d1 / d2)
            d1, d2, loss = line(alpha)
        # Safeguard: halve the step until the likelihood decreases (the scoring step can
        # overshoot far from the solution, where the model is far too dark in places).
        for _ in range(30):
            if alpha == 0.0 or loss <= loss0:
                break
            alpha *= 0.5
            _, _, loss = line(alpha)
        else:
            alpha = 0.0
        st.obj = (st.obj + np.float32(alpha) * d_obj).astype(np.complex64)
        if do_probe:
            run.set_probe(st.probe + np.float32(alpha) * d_probe)
        if do_bg:
            st.background = np.maximum(st.background + np.float32(alpha) * d_bg, 0).astype(np.float32)
        if not run.end_iteration(err, tot):
            return
