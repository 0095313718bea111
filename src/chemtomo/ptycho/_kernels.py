"""Fused CPU kernels (numba) of the far-field ptychography model; see ``operators.py``.

Each kernel makes one pass over the frame stack so that an iteration touches the exit waves as
few times as possible (the FFTs are the floor; everything else should cost less than they do).
Layouts, shared by all kernels:

- exit waves / FFT buffers ``(n_frames, n_modes, h, w)`` complex64;
- measured intensities, mask, background in FFT order (zero frequency at index 0) so that no
  ``fftshift`` is needed in the loop: ``(n_frames, h, w)`` float32, ``(h, w)`` uint8, ``(h, w)``
  float32;
- object ``(oy, ox)`` complex64; shifted probes ``(n_bins, n_modes, h, w)`` complex64, one per
  sub-pixel shift bin; per-frame integer patch corners ``cy, cx`` and bin ``kb`` (int64).

Scatter-adds into the object and probe go to per-thread accumulators (one slice per chunk of
frames), summed afterwards, so no two threads write the same element. Loops over frames run in
parallel (``prange``); the modulus kernel runs over detector rows so that the background sums
need no atomics.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["exit_waves", "modulus_project", "raar_fourier", "update_accumulate", "position_gradient", "poisson_gradient", "bilinear_waves",
           "poisson_line_terms", "thread_chunks"]


def thread_chunks(frames: np.ndarray) -> np.ndarray:
    """Split a list of frame indices into one contiguous chunk per thread: (n_chunks + 1,) bounds."""
    n_chunks = max(1, min(numba.get_num_threads(), len(frames)))
    return np.linspace(0, len(frames), n_chunks + 1).astype(np.int64)


@njit(parallel=True, cache=True, fastmath=True)
def exit_waves(out, psi, obj, probes, cy, cx, kb, frames, a, b):  # pragma: no cover - compiled
    """out[i] = a · P_kb · O[patch] + b · psi[frames[i]]   (b == 0 ignores psi)."""
    n_modes, h, w = probes.shape[1], probes.shape[2], probes.shape[3]
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        for m in range(n_modes):
            for y in range(h):
                for x in range(w):
                    phi = probes[k, m, y, x] * obj[y0 + y, x0 + x]
                    if b != 0:
                        out[i, m, y, x] = a * phi + b * psi[j, m, y, x]
                    else:
                        out[i, m, y, x] = a * phi


@njit(parallel=True, cache=True, fastmath=True)
def modulus_project(buf, intensity, frames, valid, background, bg_ratio, row_sums):  # pragma: no cover
    """Fourier-modulus projection in place, with a static additive background.

    Model intensity ``s + b = sum_m |Ψ_m|² + b``; valid pixels are scaled by ``sqrt(I / (s + b))``
    so that the projected model matches the data; masked pixels keep the model. ``bg_ratio``
    (h, w) receives ``sum_frames b·I/(s + b)`` (b where masked), the numerator of the background
    update. ``row_sums[y]`` receives ``(Σ (sqrt I − sqrt(s + b))², Σ I)`` over the valid pixels of
    detector row y (summed by the caller; scalar reductions across prange are avoided).
    """
    n_modes, h, w = buf.shape[1], buf.shape[2], buf.shape[3]
    for y in prange(h):
        err_row = 0.0
        tot_row = 0.0
        for i in range(frames.shape[0]):
            j = frames[i]
            for x in range(w):
                s = 0.0
                for m in range(n_modes):
                    v = buf[i, m, y, x]
                    s += v.real * v.real + v.imag * v.imag
                bgv = background[y, x]
                model = s + bgv
                if valid[y, x]:
                    meas = max(intensity[j, y, x], 0.0)
                    d = np.sqrt(meas) - np.sqrt(model)
                    err_row += d * d
                    tot_row += meas
                    if model > 1e-20:
                        f = np.sqrt(meas / model)
                        bg_ratio[y, x] += bgv * meas / model
                    else:
                        f = 0.0
                        bg_ratio[y, x] += meas
                    for m in range(n_modes):
                        buf[i, m, y, x] *= f
                else:
                    bg_ratio[y, x] += bgv
        row_sums[y, 0] = err_row
        row_sums[y, 1] = tot_row


@njit(parallel=True, cache=True, fastmath=True)
def update_accumulate(psi, buf, obj, probes, cy, cx, kb, frames, chunks, c_psi, c_buf, c_phi, store,
                      obj_num, obj_den, probe_num, probe_den, do_probe):  # pragma: no cover
    """new = c_psi·psi + c_buf·buf + c_phi·φ (φ = P·O[patch]); optionally psi ← new; accumulate.

    Accumulates, per thread chunk t: ``obj_num[t] += Σ conj(P) new``, ``obj_den[t] += Σ_m |P|²``
    on the object grid and, when ``do_probe``, ``probe_num[t, kb] += conj(O) new`` and
    ``probe_den[t, kb] += |O|²`` on the probe grid of the frame's shift bin.

    RAAR: (β, β, 1 − 2β, store). Gradient back-projection (ML, PIE): (0, 1, 0, no store).
    """
    n_modes, h, w = probes.shape[1], probes.shape[2], probes.shape[3]
    for t in prange(chunks.shape[0] - 1):
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            y0, x0, k = cy[j], cx[j], kb[j]
            for y in range(h):
                for x in range(w):
                    o = obj[y0 + y, x0 + x]
                    num = 0j
                    den = 0.0
                    for m in range(n_modes):
                        p = probes[k, m, y, x]
                        new = 0j
                        if c_buf != 0:
                            new += c_buf * buf[i, m, y, x]
                        if c_psi != 0:
                            new += c_psi * psi[j, m, y, x]
                        if c_phi != 0:
                            new += c_phi * (p * o)
                        if store:
                            psi[j, m, y, x] = new
                        num += p.conjugate() * new
                        den += p.real * p.real + p.imag * p.imag
                        if do_probe:
                            probe_num[t, k, m, y, x] += o.conjugate() * new
                    obj_num[t, y0 + y, x0 + x] += num
                    obj_den[t, y0 + y, x0 + x] += den
                    if do_probe:
                        probe_den[t, k, y, x] += o.real * o.real + o.imag * o.imag


@njit(parallel=True, cache=True, fastmath=True)
def position_gradient(target, obj, probes, cy, cx, kb, frames, shift_yx):  # pragma: no cover
    """Least-squares sub-pixel shift of each frame that moves the model towards ``target``.

    With φ = P·O[patch] and ∂φ/∂r = P·∇O (central differences), the shift that best explains
    the residual ``target − φ`` is ``δ = Re⟨∂φ/∂r, target − φ⟩ / ‖∂φ/∂r‖²`` per axis.
    Writes ``shift_yx[frames[i]] = (δy, δx)`` in pixels.
    """
    n_modes, h, w = probes.shape[1], probes.shape[2], probes.shape[3]
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        ny = 0.0
        nx = 0.0
        dy2 = 0.0
        dx2 = 0.0
        for y in range(h):
            for x in range(w):
                o = obj[y0 + y, x0 + x]
                gy = 0.5 * (obj[y0 + y + 1, x0 + x] - obj[y0 + y - 1, x0 + x])
                gx = 0.5 * (obj[y0 + y, x0 + x + 1] - obj[y0 + y, x0 + x - 1])
                for m in range(n_modes):
                    p = probes[k, m, y, x]
                    r = target[i, m, y, x] - p * o
                    ay = p * gy
                    ax = p * gx
                    ny += (ay.conjugate() * r).real
                    nx += (ax.conjugate() * r).real
                    dy2 += ay.real * ay.real + ay.imag * ay.imag
                    dx2 += ax.real * ax.real + ax.imag * ax.imag
        shift_yx[j, 0] = ny / dy2 if dy2 > 0 else 0.0
        shift_yx[j, 1] = nx / dx2 if dx2 > 0 else 0.0


@njit(parallel=True, cache=True, fastmath=True)
def poisson_gradient(buf, grad, intensity, frames, valid, background, bg_grad, row_sums):  # pragma: no cover
    """Poisson negative log-likelihood of the model ``buf`` and its gradient.

    L = Σ_valid (s + b) − I log(s + b), s = Σ_m |Ψ_m|². Writes ``grad = (1 − I/(s + b)) Ψ``
    (the Wirtinger gradient ∂L/∂Ψ*; zero where masked) and ``bg_grad += 1 − I/(s + b)``.
    ``row_sums[y]`` receives ``(L, Σ (sqrt I − sqrt(s + b))², Σ I)`` of detector row y.
    """
    n_modes, h, w = buf.shape[1], buf.shape[2], buf.shape[3]
    for y in prange(h):
        l_row = 0.0
        e_row = 0.0
        t_row = 0.0
        for i in range(frames.shape[0]):
            j = frames[i]
            for x in range(w):
                s = 0.0
                for m in range(n_modes):
                    v = buf[i, m, y, x]
                    s += v.real * v.real + v.imag * v.imag
                if valid[y, x]:
                    model = s + background[y, x] + 1e-9
                    meas = max(intensity[j, y, x], 0.0)
                    l_row += model - meas * np.log(model)
                    d = np.sqrt(meas) - np.sqrt(model)
                    e_row += d * d
                    t_row += meas
                    g = 1.0 - meas / model
                    bg_grad[y, x] += g
                    for m in range(n_modes):
                        grad[i, m, y, x] = g * buf[i, m, y, x]
                else:
                    for m in range(n_modes):
                        grad[i, m, y, x] = 0j
        row_sums[y, 0] = l_row
        row_sums[y, 1] = e_row
        row_sums[y, 2] = t_row


@njit(parallel=True, cache=True, fastmath=True)
def poisson_line_terms(psi0, a1, a2, intensity, frames, valid, background, dbg, alpha, use_a2,
                       row_sums):  # pragma: no cover
    """First and second derivative in α of L(α) with Ψ(α) = Ψ0 + α A1 + α² A2, b(α) = b + α Δb,
    per detector row into ``row_sums[y] = (dL/dα, d²L/dα²)``."""
    n_modes, h, w = psi0.shape[1], psi0.shape[2], psi0.shape[3]
    for y in prange(h):
        r1 = 0.0
        r2 = 0.0
        for i in range(frames.shape[0]):
            j = frames[i]
            for x in range(w):
                if not valid[y, x]:
                    continue
                s = 0.0
                s1 = 0.0
                s2 = 0.0
                for m in range(n_modes):
                    v = psi0[i, m, y, x]
                    dv = a1[i, m, y, x]
                    ddv = 0j
                    if use_a2:
                        ddv = a2[i, m, y, x]
                        v = v + alpha * dv + alpha * alpha * ddv
                        dv = dv + 2.0 * alpha * ddv
                    else:
                        v = v + alpha * dv
                    s += v.real * v.real + v.imag * v.imag
                    s1 += 2.0 * (v.conjugate() * dv).real
                    s2 += 2.0 * (dv.real * dv.real + dv.imag * dv.imag) + 4.0 * (v.conjugate() * ddv).real
                model = s + background[y, x] + alpha * dbg[y, x] + 1e-9
                if model < 1e-9:
                    model = 1e-9
                m1 = s1 + dbg[y, x]
                meas = max(intensity[j, y, x], 0.0)
                q = meas / model
                r1 += m1 * (1.0 - q)
                r2 += s2 * (1.0 - q) + m1 * m1 * q / model
        row_sums[y, 0] = r1
        row_sums[y, 1] = r2


@njit(parallel=True, cache=True, fastmath=True)
def bilinear_waves(out, obj1, probes1, obj2, probes2, cy, cx, kb, frames, use2):  # pragma: no cover
    """out[i] = P1·O1[patch] (+ P2·O2[patch] when use2): the first- and second-order terms of the
    exit waves along a search direction (ML line search)."""
    n_modes, h, w = probes1.shape[1], probes1.shape[2], probes1.shape[3]
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        for m in range(n_modes):
            for y in range(h):
                for x in range(w):
                    v = probes1[k, m, y, x] * obj1[y0 + y, x0 + x]
                    if use2:
                        v += probes2[k, m, y, x] * obj2[y0 + y, x0 + x]
                    out[i, m, y, x] = v


@njit(parallel=True, cache=True, fastmath=True)
def raar_fourier(buf, state, intensity, valid, background, bg_ratio, row_sums, beta):  # pragma: no cover
    """One RAAR step in the detector plane, all frames, in place.

    ``buf`` holds the model far fields Φ = F[P·O] and ``state`` the RAAR iterate Ψ = F ψ. Per
    pixel: z = 2Φ − Ψ; P_F z scales z by sqrt(I / (Σ_m|z_m|² + b)) on valid pixels (masked
    pixels keep z); Ψ ← β(Ψ + P_F z − Φ) + (1 − β)Φ, written to both ``state`` and ``buf`` (the
    latter to be inverse-transformed for the overlap update). The error and background sums
    are taken on the model Φ: ``row_sums[y] = (Σ (√I − √(Σ|Φ|² + b))², Σ I)`` and
    ``bg_ratio += b·I / (Σ|Φ|² + b)`` (b where masked).
    """
    n_frames, n_modes, h, w = buf.shape
    for y in prange(h):
        err_row = 0.0
        tot_row = 0.0
        for j in range(n_frames):
            for x in range(w):
                s_phi = 0.0
                s_z = 0.0
                for m in range(n_modes):
                    ph = buf[j, m, y, x]
                    z = 2 * ph - state[j, m, y, x]
                    s_phi += ph.real * ph.real + ph.imag * ph.imag
                    s_z += z.real * z.real + z.imag * z.imag
                bgv = background[y, x]
                f = 1.0
                if valid[y, x]:
                    meas = max(intensity[j, y, x], 0.0)
                    model = s_phi + bgv
                    d = np.sqrt(meas) - np.sqrt(model)
                    err_row += d * d
                    tot_row += meas
                    if model > 1e-20:
                        bg_ratio[y, x] += bgv * meas / model
                    else:
                        bg_ratio[y, x] += meas
                    zm = s_z + bgv
                    f = np.sqrt(meas / zm) if zm > 1e-20 else 0.0
                else:
                    bg_ratio[y, x] += bgv
                for m in range(n_modes):
                    ph = buf[j, m, y, x]
                    ps = state[j, m, y, x]
                    z = 2 * ph - ps
                    new = beta * (ps + f * z - ph) + (1.0 - beta) * ph
                    state[j, m, y, x] = new
                    buf[j, m, y, x] = new
        row_sums[y, 0] = err_row
        row_sums[y, 1] = tot_row
