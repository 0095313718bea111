"""Fused CPU kernels (numba) of the far-field ptychography model; see ``operators.py``.

Each kernel makes one pass over the frame stack so that an iteration touches the waves as few
times as possible (the FFTs are the floor; everything else should cost less than they do).
Layouts, shared by all kernels:

- waves / FFT buffers ``(n_frames, n_modes, h, w)`` complex64;
- measured intensities ``(n_frames, h, w)`` float32, mask ``(h, w)`` uint8 and background
  ``(h, w)`` float32, all in FFT order (zero frequency at index 0), so no ``fftshift`` is needed;
- object ``(oy, ox)`` complex64; shifted probes ``(n_bins, n_modes, h, w)`` complex64, one per
  sub-pixel shift bin; per-frame integer patch corners ``cy, cx`` and bin ``kb`` (int64).

Parallelism: the per-frame kernels run over chunks of frames (``chunks``: bounds into ``frames``,
a fixed number of chunks, see ``N_CHUNKS``) so that each thread streams whole frames through
memory; their sums over frames (background, error) go to per-chunk slices of the output, added up
by the caller in chunk order. The overlap sums onto the object and probe grids (``accumulate``)
are split by output row instead: each thread owns rows and adds the frames that reach them in
the order given, so no two threads write the same element, no per-thread copy of the object is
needed, and no atomics. Either way the result is the same bits whatever the number of threads.
Every kernel releases the GIL (``nogil``), so reconstructions in several Python threads, each on
one core, run at once (``reconstruct`` runs its split-half FRC's halves beside the full scan).
(Per-chunk copies of the object, zeroed and summed for every PIE batch, made ePIE 3.9× slower
on the paper preset's scans.) Inner loops run along x over contiguous memory and
are written without branches where possible so they vectorise.
"""

from __future__ import annotations

import functools

# OMP_WAIT_POLICY defaults to PASSIVE for every chemtomo kernel: see chemtomo/__init__.py

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core.extending import intrinsic

__all__ = [
    "accumulate",
    "accumulate_1",
    "accumulate_1_fused",
    "bilinear_waves",
    "exit_waves",
    "exit_waves_1",
    "gather_bins",
    "lsqml_object_step",
    "lsqml_step_sums",
    "modulus_project",
    "modulus_project_1",
    "momentum_step",
    "one_thread",
    "pie_object_step",
    "pie_row_spans",
    "poisson_gradient",
    "poisson_line_terms",
    "position_gradient",
    "raar_fourier",
    "raar_fourier_1",
    "regularized_ratio",
    "thread_chunks",
    "unshift_products_sum",
]


#: Frames are summed in this many contiguous chunks whatever the thread count (numba spreads
#: them over its threads), and the chunks' partial sums are added in chunk order by the caller:
#: the result is then the same bits with 1, 2 or 16 threads (issue 13). One chunk per thread, as
#: before, made every sum over frames depend on NUMBA_NUM_THREADS.
N_CHUNKS = 16


def thread_chunks(frames: np.ndarray) -> np.ndarray:
    """Split a list of frame indices into ``N_CHUNKS`` contiguous chunks (fewer for fewer frames):
    (n_chunks + 1,) bounds, independent of the number of threads. One array per length, made
    once (every batch of every iteration asks; the kernels only read it)."""
    return _chunk_bounds(len(frames))


@functools.lru_cache(maxsize=1024)
def _chunk_bounds(n: int) -> np.ndarray:
    n_chunks = max(1, min(N_CHUNKS, n))
    return np.linspace(0, n, n_chunks + 1).astype(np.int64)


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def exit_waves(out, obj, probes, cy, cx, kb, frames):  # pragma: no cover - compiled
    """out[i, m] = P_m (shift bin of frame frames[i]) · O[patch of frames[i]]."""
    n_modes, h, w = probes.shape[1], probes.shape[2], probes.shape[3]
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        for m in range(n_modes):
            for y in range(h):
                for x in range(w):
                    out[i, m, y, x] = probes[k, m, y, x] * obj[y0 + y, x0 + x]


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
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


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def raar_fourier(buf, state, intensity, valid, background, chunks, bg_ratio, sums, beta):  # pragma: no cover
    """One RAAR step in the detector plane, all frames, in place.

    ``buf`` holds the model far fields Φ = F[P·O] and ``state`` the RAAR iterate Ψ = F ψ. Per
    pixel: z = 2Φ − Ψ; P_F z scales z by sqrt(I / (Σ_m|z_m|² + b)) on valid pixels (masked
    pixels keep z); Ψ ← β(Ψ + P_F z − Φ) + (1 − β)Φ, written to both ``state`` and ``buf`` (the
    latter to be inverse-transformed for the overlap update). Error and background sums are
    taken on the model Φ, per chunk t: ``sums[t] = (Σ (√I − √(Σ|Φ|² + b))², Σ I)`` and
    ``bg_ratio[t] += b·I / (Σ|Φ|² + b)`` (b where masked).
    """
    n_modes, h, w = buf.shape[1], buf.shape[2], buf.shape[3]
    b = np.float32(beta)
    for t in prange(chunks.shape[0] - 1):
        err = 0.0
        tot = 0.0
        for j in range(chunks[t], chunks[t + 1]):
            for y in range(h):
                for x in range(w):
                    s_phi = np.float32(0.0)
                    s_z = np.float32(0.0)
                    for m in range(n_modes):
                        ph = buf[j, m, y, x]
                        z = np.float32(2.0) * ph - state[j, m, y, x]
                        s_phi += ph.real * ph.real + ph.imag * ph.imag
                        s_z += z.real * z.real + z.imag * z.imag
                    bgv = background[y, x]
                    meas = max(intensity[j, y, x], np.float32(0.0))
                    model = s_phi + bgv + np.float32(1e-20)
                    zm = s_z + bgv + np.float32(1e-20)
                    if valid[y, x]:
                        d = np.sqrt(meas) - np.sqrt(model)
                        err += d * d
                        tot += meas
                        bg_ratio[t, y, x] += bgv * meas / model
                        f = np.sqrt(meas / zm)
                    else:
                        bg_ratio[t, y, x] += bgv
                        f = np.float32(1.0)
                    for m in range(n_modes):
                        ph = buf[j, m, y, x]
                        ps = state[j, m, y, x]
                        new = b * (ps + f * (np.float32(2.0) * ph - ps) - ph) + (np.float32(1.0) - b) * ph
                        state[j, m, y, x] = new
                        buf[j, m, y, x] = new
        sums[t, 0] = err
        sums[t, 1] = tot


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def modulus_project(buf, intensity, frames, valid, background, chunks, bg_ratio, sums, share):  # pragma: no cover
    """Fourier-modulus projection of the waves ``buf[i]`` of frames ``frames[i]``, in place.

    Model intensity ``s + b = Σ_m |Ψ_m|² + b``; valid pixels are scaled by ``sqrt(max(I − b, 0) / s)``
    (the background subtracted from the counts: the coherent waves fit what the background does not
    explain) or, with ``share``, by ``sqrt(I / (s + b))`` (the waves' expected share of the counts);
    masked pixels keep the model. Per chunk t: ``bg_ratio[t] += b·I/(s + b)`` (b where masked),
    ``sums[t] = (Σ (√I − √(s + b))², Σ I)`` over valid pixels.

    The two differ where the model ``s`` is below b: sharing hands most of a 1-photon pixel there
    to the background. Where the data have no background (and b is the model's misfit) that
    shrinks the object's high spatial frequencies (session 1, the 10⁶-photon benchmark scan: 0.023
    shared, 0.019 subtracted, 0.018 without background); where a real background fills the dim
    pixels it keeps its noise out of the object (``BackgroundOptions.projection`` picks from the
    data).
    """
    n_modes, h, w = buf.shape[1], buf.shape[2], buf.shape[3]
    for t in prange(chunks.shape[0] - 1):
        err = 0.0
        tot = 0.0
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            for y in range(h):
                for x in range(w):
                    s = np.float32(0.0)
                    for m in range(n_modes):
                        v = buf[i, m, y, x]
                        s += v.real * v.real + v.imag * v.imag
                    bgv = background[y, x]
                    model = s + bgv + np.float32(1e-20)
                    if valid[y, x]:
                        meas = max(intensity[j, y, x], np.float32(0.0))
                        d = np.sqrt(meas) - np.sqrt(model)
                        err += d * d
                        tot += meas
                        bg_ratio[t, y, x] += bgv * meas / model
                        if share:
                            f = np.sqrt(meas / model)
                        else:
                            f = np.sqrt(max(meas - bgv, np.float32(0.0)) / (s + np.float32(1e-20)))
                        for m in range(n_modes):
                            buf[i, m, y, x] *= f
                    else:
                        bg_ratio[t, y, x] += bgv
        sums[t, 0] = err
        sums[t, 1] = tot


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def accumulate(buf, obj, probes, cy, cx, kb, frames, c_phi, obj_num, obj_den, probe_num,
               probe_den, do_object, do_probe):  # pragma: no cover
    """Scatter-add the overlap sums of the waves ``v = buf + c_phi·P·O[patch]``.

    Object: ``obj_num += Σ_m conj(P_m) v_m``, ``obj_den += Σ_m |P_m|²`` on the object grid.
    Probe (``do_probe``): ``probe_num[kb, m] += conj(O) v_m``, ``probe_den[kb] += |O|²`` on the
    probe grid of the frame's shift bin. ``c_phi`` is 0 (projection and gradient sums of
    ``buf``) or −1 (PIE: sums of the correction ``buf − P·O``).

    Threads own output rows (object rows, then probe rows) and add the frames that reach their
    row in the order of ``frames``: no two threads write the same element, no per-thread copies
    of the object are needed, and every sum is added in the same order whatever the number of
    threads (the result is the same bits with 1 or 16 threads).
    """
    n_modes, h, w = probes.shape[1], probes.shape[2], probes.shape[3]
    c = np.float32(c_phi)
    nf = frames.shape[0]
    if do_object:
        for yy in prange(obj.shape[0]):
            for i in range(nf):
                j = frames[i]
                y = yy - cy[j]
                if y < 0 or y >= h:
                    continue
                x0, k = cx[j], kb[j]
                for m in range(n_modes):
                    for x in range(w):
                        p = probes[k, m, y, x]
                        v = buf[i, m, y, x] + c * (p * obj[yy, x0 + x])
                        obj_num[yy, x0 + x] += p.conjugate() * v
                        obj_den[yy, x0 + x] += p.real * p.real + p.imag * p.imag
    if do_probe:
        for y in prange(h):
            for i in range(nf):
                j = frames[i]
                y0, x0, k = cy[j], cx[j], kb[j]
                for x in range(w):
                    o = obj[y0 + y, x0 + x]
                    for m in range(n_modes):
                        v = buf[i, m, y, x] + c * (probes[k, m, y, x] * o)
                        probe_num[k, m, y, x] += o.conjugate() * v
                    probe_den[k, y, x] += o.real * o.real + o.imag * o.imag


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def position_gradient(target, obj, probes, cy, cx, kb, frames, shift_yx):  # pragma: no cover
    """Least-squares sub-pixel shift of each frame that moves the model towards ``target``.

    With φ = P·O[patch] and a_y, a_x = P·∂O/∂y, P·∂O/∂x (central differences), the shift that
    best explains the residual ``r = target − φ`` solves the 2×2 normal equations
    ``[[⟨a_y,a_y⟩, ⟨a_y,a_x⟩], [⟨a_x,a_y⟩, ⟨a_x,a_x⟩]] δ = [⟨a_y,r⟩, ⟨a_x,r⟩]`` (real parts;
    ``solve_shift``). Writes ``shift_yx[frames[i]] = (δy, δx)`` in pixels.
    """
    n_modes, h, w = probes.shape[1], probes.shape[2], probes.shape[3]
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        ny = 0.0
        nx = 0.0
        dy2 = 0.0
        dx2 = 0.0
        dxy = 0.0
        for m in range(n_modes):
            for y in range(h):
                for x in range(w):
                    o = obj[y0 + y, x0 + x]
                    gy = np.float32(0.5) * (obj[y0 + y + 1, x0 + x] - obj[y0 + y - 1, x0 + x])
                    gx = np.float32(0.5) * (obj[y0 + y, x0 + x + 1] - obj[y0 + y, x0 + x - 1])
                    p = probes[k, m, y, x]
                    r = target[i, m, y, x] - p * o
                    ay = p * gy
                    ax = p * gx
                    ny += (ay.conjugate() * r).real
                    nx += (ax.conjugate() * r).real
                    dy2 += ay.real * ay.real + ay.imag * ay.imag
                    dx2 += ax.real * ax.real + ax.imag * ax.imag
                    dxy += ay.real * ax.real + ay.imag * ax.imag
        shift_yx[j, 0], shift_yx[j, 1] = solve_shift(ny, nx, dy2, dx2, dxy)


@njit(nogil=True, cache=True, inline="always")
def solve_shift(ny, nx, dy2, dx2, dxy):  # pragma: no cover - compiled
    """(δy, δx) from the 2×2 normal equations of ``position_gradient``. The cross term ⟨a_y, a_x⟩
    matters wherever the object's gradients have a preferred direction (an edge, a spoke): solved
    axis by axis, a shift along y leaks into δx by ⟨a_y,a_x⟩/⟨a_x,a_x⟩ of itself (measured 30–60 %
    on a smooth random object). Nearly singular (one direction without contrast, det < 10⁻⁶ of
    its diagonal product): each axis alone."""
    det = dy2 * dx2 - dxy * dxy
    if det > 1e-6 * dy2 * dx2 and det > 0:
        return (dx2 * ny - dxy * nx) / det, (dy2 * nx - dxy * ny) / det
    return (ny / dy2 if dy2 > 0 else 0.0), (nx / dx2 if dx2 > 0 else 0.0)


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def position_gradient_1(target, obj, probes, cy, cx, kb, frames, shift_yx):  # pragma: no cover
    """Single-mode ``position_gradient`` on float views: target (b, h, 2w), obj (oy, 2ox), probes
    (K, h, 2w). Each row's five sums in float32 (contiguous slices, no negative indices, so that
    numba vectorises the loop), added to the frame's float64 totals: on 516 frames of 128², one
    core, 7 ms a pass against the complex kernel's 36 ms."""
    h, w = probes.shape[1], probes.shape[2] // 2
    half = np.float32(0.5)
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], 2 * cx[j], kb[j]
        ny = 0.0
        nx = 0.0
        dy2 = 0.0
        dx2 = 0.0
        dxy = 0.0
        for y in range(h):
            prow = probes[k, y]
            trow = target[i, y]
            # windows of the rows (slices: every index below is 2x + a constant ≥ 0)
            orow = obj[y0 + y, x0 - 2:x0 + 2 * w + 2]  # one pixel either side
            up = obj[y0 + y - 1, x0:x0 + 2 * w]
            down = obj[y0 + y + 1, x0:x0 + 2 * w]
            rny = np.float32(0.0)
            rnx = np.float32(0.0)
            rdy = np.float32(0.0)
            rdx = np.float32(0.0)
            rdxy = np.float32(0.0)
            for x in range(w):
                c = 2 * x
                o_r = orow[c + 2]
                o_i = orow[c + 3]
                gyr = half * (down[c] - up[c])
                gyi = half * (down[c + 1] - up[c + 1])
                gxr = half * (orow[c + 4] - orow[c])
                gxi = half * (orow[c + 5] - orow[c + 1])
                pr = prow[2 * x]
                pi = prow[2 * x + 1]
                rr = trow[2 * x] - (pr * o_r - pi * o_i)
                ri = trow[2 * x + 1] - (pr * o_i + pi * o_r)
                ayr = pr * gyr - pi * gyi
                ayi = pr * gyi + pi * gyr
                axr = pr * gxr - pi * gxi
                axi = pr * gxi + pi * gxr
                rny += ayr * rr + ayi * ri
                rnx += axr * rr + axi * ri
                rdy += ayr * ayr + ayi * ayi
                rdx += axr * axr + axi * axi
                rdxy += ayr * axr + ayi * axi
            ny += rny
            nx += rnx
            dy2 += rdy
            dx2 += rdx
            dxy += rdxy
        shift_yx[j, 0], shift_yx[j, 1] = solve_shift(ny, nx, dy2, dx2, dxy)


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def poisson_gradient(buf, grad, intensity, frames, valid, background, chunks, bg_grad, sums):  # pragma: no cover
    """Poisson negative log-likelihood of the model ``buf`` and its gradient.

    L = Σ_valid (s + b) − I log(s + b), s = Σ_m |Ψ_m|². Writes ``grad = (1 − I/(s + b)) Ψ``
    (the Wirtinger gradient ∂L/∂Ψ*; zero where masked); per chunk t ``bg_grad[t] += 1 − I/(s + b)``
    and ``sums[t] = (L, Σ (√I − √(s + b))², Σ I)``.
    """
    n_modes, h, w = buf.shape[1], buf.shape[2], buf.shape[3]
    for t in prange(chunks.shape[0] - 1):
        loss = 0.0
        err = 0.0
        tot = 0.0
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            for y in range(h):
                for x in range(w):
                    s = np.float32(0.0)
                    for m in range(n_modes):
                        v = buf[i, m, y, x]
                        s += v.real * v.real + v.imag * v.imag
                    if valid[y, x]:
                        model = s + background[y, x] + np.float32(1e-9)
                        meas = max(intensity[j, y, x], np.float32(0.0))
                        loss += model - meas * np.log(model)
                        d = np.sqrt(meas) - np.sqrt(model)
                        err += d * d
                        tot += meas
                        g = np.float32(1.0) - meas / model
                        bg_grad[t, y, x] += g
                        for m in range(n_modes):
                            grad[i, m, y, x] = g * buf[i, m, y, x]
                    else:
                        for m in range(n_modes):
                            grad[i, m, y, x] = 0
        sums[t, 0] = loss
        sums[t, 1] = err
        sums[t, 2] = tot


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def poisson_line_terms(psi0, a1, a2, intensity, frames, valid, background, dbg, alpha, use_a2, chunks,
                       sums):  # pragma: no cover
    """Derivative in α of L(α) with Ψ(α) = Ψ0 + α A1 + α² A2 and b(α) = b + α Δb, and its
    Fisher-scoring curvature ``Σ (d(s + b)/dα)² / (s + b)`` (the expected second derivative of
    the Poisson likelihood, always positive, so the step never goes uphill where the exact
    curvature is negative), per chunk t into ``sums[t] = (dL/dα, curvature, L)``."""
    n_modes, h, w = psi0.shape[1], psi0.shape[2], psi0.shape[3]
    for t in prange(chunks.shape[0] - 1):
        r1 = 0.0
        r2 = 0.0
        r0 = 0.0
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            for y in range(h):
                for x in range(w):
                    if not valid[y, x]:
                        continue
                    s = 0.0
                    s1 = 0.0
                    for m in range(n_modes):
                        v = psi0[i, m, y, x]
                        dv = a1[i, m, y, x]
                        if use_a2:
                            ddv = a2[i, m, y, x]
                            v = v + alpha * dv + alpha * alpha * ddv
                            dv = dv + 2.0 * alpha * ddv
                        else:
                            v = v + alpha * dv
                        s += v.real * v.real + v.imag * v.imag
                        s1 += 2.0 * (v.conjugate() * dv).real
                    model = max(s + background[y, x] + alpha * dbg[y, x], 0.0) + 1e-9
                    m1 = s1 + dbg[y, x]
                    meas = max(intensity[j, y, x], 0.0)
                    q = meas / model
                    r0 += model - meas * np.log(model)
                    r1 += m1 * (1.0 - q)
                    r2 += m1 * m1 / model
        sums[t, 0] = r1
        sums[t, 1] = r2
        sums[t, 2] = r0


# ------------------------------------------------------------------------------------------------
# Single-mode fast paths. Complex arrays are passed as float32 views with interleaved (re, im)
# along the last axis (``a.view(np.float32)``: (..., w) complex64 -> (..., 2w) float32), and the
# inner loops are branch-free, which lets LLVM vectorise them: 3-6x faster than the complex
# kernels above on 400 frames of 128² (measured on the 2-core development machine).
# ------------------------------------------------------------------------------------------------


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def exit_waves_1(out, obj, probes, cy, cx, kb, frames):  # pragma: no cover - compiled
    """Single-mode ``exit_waves`` on float views: out (b, h, 2w), obj (oy, 2ox), probes (K, h, 2w)."""
    h, w = probes.shape[1], probes.shape[2] // 2
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], 2 * cx[j], kb[j]
        for y in range(h):
            prow = probes[k, y]
            orow = obj[y0 + y, x0:x0 + 2 * w]
            dst = out[i, y]
            for x in range(w):
                pr = prow[2 * x]
                pi = prow[2 * x + 1]
                o_r = orow[2 * x]
                o_i = orow[2 * x + 1]
                dst[2 * x] = pr * o_r - pi * o_i
                dst[2 * x + 1] = pr * o_i + pi * o_r


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def raar_fourier_1(buf, state, amplitude, validf, background, chunks, bg_ratio, sums, beta, first):  # pragma: no cover
    """Single-mode ``raar_fourier`` on float views (buf, state: (n, h, 2w)) of the frames
    ``first``.. (``amplitude`` = √I of every frame, indexed from ``first``); ``validf`` the mask as
    0/1 float32. Each chunk's error sums continue from ``sums[t]`` and its background terms add
    to ``bg_ratio[t]``, so that a run over consecutive ranges of frames, each with its chunks'
    rows of the accumulators, adds every term in the order one call over all frames does."""
    h, w = buf.shape[1], buf.shape[2] // 2
    b = np.float32(beta)
    one = np.float32(1.0)
    two = np.float32(2.0)
    tiny = np.float32(1e-20)
    for t in prange(chunks.shape[0] - 1):
        err = sums[t, 0]
        tot = sums[t, 1]
        for j in range(chunks[t], chunks[t + 1]):
            for y in range(h):
                e_row = np.float32(0.0)
                t_row = np.float32(0.0)
                for x in range(w):
                    pr = buf[j, y, 2 * x]
                    pi = buf[j, y, 2 * x + 1]
                    sr = state[j, y, 2 * x]
                    si = state[j, y, 2 * x + 1]
                    zr = two * pr - sr
                    zi = two * pi - si
                    bgv = background[y, x]
                    v = validf[y, x]
                    a = amplitude[first + j, y, x]
                    model = pr * pr + pi * pi + bgv + tiny
                    zm = zr * zr + zi * zi + bgv + tiny
                    d = a - np.sqrt(model)
                    e_row += v * d * d
                    t_row += v * a * a
                    bg_ratio[t, y, x] += bgv * (v * (a * a) / model + (one - v))
                    f = v * (a / np.sqrt(zm)) + (one - v)
                    nr = b * (sr + f * zr - pr) + (one - b) * pr
                    ni = b * (si + f * zi - pi) + (one - b) * pi
                    state[j, y, 2 * x] = nr
                    state[j, y, 2 * x + 1] = ni
                    buf[j, y, 2 * x] = nr
                    buf[j, y, 2 * x + 1] = ni
                err += e_row
                tot += t_row
        sums[t, 0] = err
        sums[t, 1] = tot


#: Largest factor of ``modulus_project_1``'s Poisson step, reached in a pixel whose counts far
#: exceed the model's: without a cap a single photon where the model expects 10⁻³ would multiply
#: its wave by 500. Three lets a pixel's model intensity grow ninefold in one step; cap 10 measured
#: worse than 3 at low counts and no better elsewhere (docs/results/ptychography.md, "Session 22").
POISSON_STEP_CAP = 3.0


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def modulus_project_1(buf, amplitude, frames, validf, background, chunks, bg_ratio, sums, share,
                      poisson):  # pragma: no cover
    """Single-mode ``modulus_project`` on a float view of the batch waves (b, h, 2w) (the background
    subtracted from the counts, or with ``share`` shared with them; see ``modulus_project``).

    With ``poisson`` (``PtychoOptions.likelihood = "poisson"``) each wave is scaled by
    ``f = min((1 + r) / 2, POISSON_STEP_CAP)`` instead of ``√r``, r the measured over the model
    intensity (the counts less the background over ``|Ψ|²``, or with ``share`` the counts over
    ``|Ψ|² + b``): the gradient step of length ½ on the Poisson negative log-likelihood
    ``μ − I ln μ`` (``∂/∂Ψ* = Ψ (1 − I/μ)``), equal to ``√r`` to first order at r = 1. Averaged over
    frames its fixed point is ``E[I] = μ`` (unbiased); the amplitude's is ``E[√I] = √μ``, which in
    pixels of about one count or fewer puts the model's intensity well below the mean (0.60 of it
    at one count). The error sums are the amplitude misfit either way."""
    h, w = buf.shape[1], buf.shape[2] // 2
    one = np.float32(1.0)
    half = np.float32(0.5)
    cap = np.float32(POISSON_STEP_CAP)
    tiny = np.float32(1e-20)
    for t in prange(chunks.shape[0] - 1):
        err = 0.0
        tot = 0.0
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            for y in range(h):
                e_row = np.float32(0.0)
                t_row = np.float32(0.0)
                for x in range(w):
                    re = buf[i, y, 2 * x]
                    im = buf[i, y, 2 * x + 1]
                    bgv = background[y, x]
                    v = validf[y, x]
                    a = amplitude[j, y, x]
                    model = re * re + im * im + bgv + tiny
                    d = a - np.sqrt(model)
                    e_row += v * d * d
                    t_row += v * a * a
                    bg_ratio[t, y, x] += bgv * (v * (a * a) / model + (one - v))
                    if poisson:
                        if share:
                            r = a * a / model
                        else:
                            r = max(a * a - bgv, np.float32(0.0)) / (re * re + im * im + tiny)
                        f = v * min(half * (one + r), cap) + (one - v)
                    elif share:
                        f = v * (a / np.sqrt(model)) + (one - v)
                    else:
                        f = v * (np.sqrt(max(a * a - bgv, np.float32(0.0)) / (re * re + im * im + tiny))) + (one - v)
                    buf[i, y, 2 * x] = f * re
                    buf[i, y, 2 * x + 1] = f * im
                err += e_row
                tot += t_row
        sums[t, 0] = err
        sums[t, 1] = tot


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def accumulate_1(buf, obj, probes, cy, cx, kb, frames, c_phi, obj_num, obj_den, probe_num, probe_den,
                 do_object, do_probe, den_max):  # pragma: no cover
    """Single-mode ``accumulate`` on float views: buf (b, h, 2w), obj (oy, 2ox), probes (K, h, 2w),
    obj_num (oy, 2ox), probe_num (K, h, 2w); the dens are plain float32. Rows are owned by
    threads as in ``accumulate``. The inner loops run over row slices taken before them (the
    compiler then sees unit strides and no index arithmetic): 1.3–1.8× faster than indexing
    the whole arrays inside the loop, the same operations in the same order (the same bits).

    ``den_max`` (1,) float32: raised to the largest value in ``obj_den`` over the x-span the
    frames cover in each row (when ``do_object``), taken from the row while it is in cache once
    its frames are added: for sums that start at zero (a PIE or LSQML batch's) that is
    ``obj_den.max()`` exactly, the value ``accumulate_1_fused`` finds frame by frame, so that
    PIE's step needs no pass of its own on two threads either (``pie_row_spans``'s maximum: 2.5
    of 57 ms per ePIE iteration on 400 frames of 128², two threads). NaN where a NaN was written."""
    h, w = probes.shape[1], probes.shape[2] // 2
    c = np.float32(c_phi)
    nf = frames.shape[0]
    if do_object:
        row_top = np.zeros(obj.shape[0], np.int32)  # each row's max Σ|P|² as int32 bits (_den_bits_max)
        den_bits = obj_den.view(np.int32)
        for yy in prange(obj.shape[0]):
            orow = obj[yy]
            nrow = obj_num[yy]
            drow = obj_den[yy]
            left = obj_den.shape[1]
            right = 0
            for i in range(nf):
                j = frames[i]
                y = yy - cy[j]
                if y < 0 or y >= h:
                    continue
                x0, k = cx[j], kb[j]
                left = min(left, x0)
                right = max(right, x0 + w)
                prow = probes[k, y]
                brow = buf[i, y]
                oo = orow[2 * x0:2 * x0 + 2 * w]
                nn = nrow[2 * x0:2 * x0 + 2 * w]
                dd = drow[x0:x0 + w]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    vr = brow[2 * x] + c * (pr * o_r - pi * o_i)
                    vi = brow[2 * x + 1] + c * (pr * o_i + pi * o_r)
                    nn[2 * x] += pr * vr + pi * vi
                    nn[2 * x + 1] += pr * vi - pi * vr
                    dd[x] += pr * pr + pi * pi
            if right > left:
                row_top[yy] = _den_bits_max(den_bits[yy, left:right], np.int32(0))
        top = np.int32(0)
        for yy in range(row_top.shape[0]):
            top = max(top, row_top[yy])
        _set_den_max(den_max, den_max[0], top)
    if do_probe:
        for y in prange(h):
            for i in range(nf):
                j = frames[i]
                y0, x0, k = cy[j], cx[j], kb[j]
                prow = probes[k, y]
                brow = buf[i, y]
                oo = obj[y0 + y, 2 * x0:2 * x0 + 2 * w]
                nn = probe_num[k, y]
                dd = probe_den[k, y]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    vr = brow[2 * x] + c * (pr * o_r - pi * o_i)
                    vi = brow[2 * x + 1] + c * (pr * o_i + pi * o_r)
                    nn[2 * x] += o_r * vr + o_i * vi
                    nn[2 * x + 1] += o_r * vi - o_i * vr
                    dd[x] += o_r * o_r + o_i * o_i


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def accumulate_1_waves_rows(buf, obj, probes, cy, cx, kb, frames, obj_num, obj_den, probe_num, probe_den,
                            do_object, do_probe):  # pragma: no cover
    """``accumulate_1`` of the waves themselves (``c_phi`` = 0: RAAR, DM, ML), without forming the
    zero term ``0 · P·O``; the threads' counterpart of ``accumulate_1_waves``, with the same fused
    multiply-adds in the same order and so the same bits (tests/ptycho/test_sum_kernels.py)."""
    h, w = probes.shape[1], probes.shape[2] // 2
    nf = frames.shape[0]
    if do_object:
        for yy in prange(obj.shape[0]):
            nrow = obj_num[yy]
            drow = obj_den[yy]
            for i in range(nf):
                j = frames[i]
                y = yy - cy[j]
                if y < 0 or y >= h:
                    continue
                x0, k = cx[j], kb[j]
                prow = probes[k, y]
                brow = buf[i, y]
                nn = nrow[2 * x0:2 * x0 + 2 * w]
                dd = drow[x0:x0 + w]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    vr = brow[2 * x]
                    vi = brow[2 * x + 1]
                    nn[2 * x] = _fma32(pr, vr, _fma32(pi, vi, nn[2 * x]))
                    nn[2 * x + 1] = _fma32(pr, vi, _fma32(-pi, vr, nn[2 * x + 1]))
                    dd[x] = _fma32(pr, pr, _fma32(pi, pi, dd[x]))
    if do_probe:
        for y in prange(h):
            for i in range(nf):
                j = frames[i]
                y0, x0, k = cy[j], cx[j], kb[j]
                prow = probes[k, y]
                brow = buf[i, y]
                oo = obj[y0 + y, 2 * x0:2 * x0 + 2 * w]
                nn = probe_num[k, y]
                dd = probe_den[k, y]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    vr = brow[2 * x]
                    vi = brow[2 * x + 1]
                    nn[2 * x] = _fma32(o_r, vr, _fma32(o_i, vi, nn[2 * x]))
                    nn[2 * x + 1] = _fma32(o_r, vi, _fma32(-o_i, vr, nn[2 * x + 1]))
                    dd[x] = _fma32(o_r, o_r, _fma32(o_i, o_i, dd[x]))


def one_thread() -> bool:
    """True when numba runs this thread's parallel kernels on one thread (``NUMBA_NUM_THREADS=1``,
    or ``numba.set_num_threads(1)`` here, as the pipeline's per-scan tasks and the split-half
    FRC's halves do): then the frame-major kernels below, which no two threads may share, apply."""
    return get_num_threads() == 1


@njit(nogil=True, cache=True, fastmath=True)
def accumulate_1_fused(buf, obj, probes, cy, cx, kb, frames, c_phi, obj_num, obj_den, probe_num,
                       probe_den, do_object, do_probe, den_max):  # pragma: no cover - compiled
    """``accumulate_1`` frame by frame and row by row on one thread: when both sums are asked
    for, each row of the waves, the probe and the object is brought into cache once for both
    instead of once per sum; each alone also streams the waves in memory order (RAAR's separate
    object and probe passes over all frames).

    Every element of the four sums still receives its frames' terms in the order of ``frames``,
    and the two inner loops are ``accumulate_1``'s own (the same expressions, so the compiler
    contracts them into the same multiply-adds; one loop forming ``v`` once for both sums was
    measured to change a quarter of the probe sums in their last bit): the same bits as
    ``accumulate_1`` (tests/ptycho/test_sum_kernels.py). Frames overlap on the object, so two
    threads cannot share this sweep: it serves one-thread runs (``one_thread``); the others
    keep the row-owned ``accumulate_1``.

    ``den_max`` (1,) float32: raised to the largest value written into ``obj_den`` (when
    ``do_object``). The sums only grow, so for sums that start at zero (a PIE batch's) that is
    ``obj_den.max()`` exactly, and PIE's step needs no pass of its own to find it. The maximum is
    taken on the values' bit patterns as int32 (``_den_bits_max``), which order as the floats
    do for the sums of squares here (≥ 0), and which the compiler vectorises: a float
    comparison per pixel chained through one register took longer than the sums themselves
    (2.3 against 1.0 ns per pixel for the object sums of 45 frames of 64², one thread). A NaN
    written into the sums sets ``den_max`` to NaN ("not found on the way": the caller then
    measures it, ``_BatchSums.spans``)."""
    h, w = probes.shape[1], probes.shape[2] // 2
    c = np.float32(c_phi)
    m = den_max[0]
    top = np.int32(0)  # the bits of +0.0
    den_bits = obj_den.view(np.int32)
    for i in range(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        for y in range(h):
            prow = probes[k, y]
            brow = buf[i, y]
            oo = obj[y0 + y, 2 * x0:2 * x0 + 2 * w]
            if do_object:
                nn = obj_num[y0 + y, 2 * x0:2 * x0 + 2 * w]
                dd = obj_den[y0 + y, x0:x0 + w]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    vr = brow[2 * x] + c * (pr * o_r - pi * o_i)
                    vi = brow[2 * x + 1] + c * (pr * o_i + pi * o_r)
                    nn[2 * x] += pr * vr + pi * vi
                    nn[2 * x + 1] += pr * vi - pi * vr
                    dd[x] += pr * pr + pi * pi
                top = _den_bits_max(den_bits[y0 + y, x0:x0 + w], top)
            if do_probe:
                nn = probe_num[k, y]
                dd = probe_den[k, y]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    vr = brow[2 * x] + c * (pr * o_r - pi * o_i)
                    vi = brow[2 * x + 1] + c * (pr * o_i + pi * o_r)
                    nn[2 * x] += o_r * vr + o_i * vi
                    nn[2 * x + 1] += o_r * vi - o_i * vr
                    dd[x] += o_r * o_r + o_i * o_i
    _set_den_max(den_max, m, top)


@njit(nogil=True, cache=True, inline="always")
def _den_bits_max(bits, top):  # pragma: no cover - compiled
    """``max(top, bits[:])`` of int32 bit patterns (an integer max: vectorised)."""
    for x in range(bits.shape[0]):
        top = max(top, bits[x])
    return top


@njit(nogil=True, cache=True)
def _set_den_max(den_max, m, top):  # pragma: no cover - compiled
    """``den_max[0] = max(m, the float32 whose bits are top)`` for non-negative sums, written
    through an int32 view of ``den_max`` (no allocation); NaN where ``top`` is a NaN's pattern
    (above +inf's, 0x7f800000)."""
    if top > np.int32(0x7F800000):
        den_max[0] = np.float32(np.nan)
        return
    den_max.view(np.int32)[0] = top
    if m > den_max[0]:
        den_max[0] = m


@njit(nogil=True, cache=True, fastmath=True)
def accumulate_1_waves(buf, obj, probes, cy, cx, kb, frames, obj_num, obj_den, probe_num,
                       probe_den, do_object, do_probe):  # pragma: no cover - compiled
    """``accumulate_1_fused`` of the waves themselves (``c_phi`` = 0: RAAR, DM, ML), without the
    zero term ``0 · P·O`` that the general kernel must form and without PIE's ``den_max``: about
    0.75× its time (196 frames of 128², one thread). Each product is added by an explicit fused
    multiply-add (``_fma32``) in a fixed order, as in ``accumulate_1_waves_rows`` (threads), so
    the two give the same bits whatever the frame width (left to the compiler, the contraction of
    a vector loop's scalar remainder differed between them); they round some sums an ulp away
    from the general kernels (tests/ptycho/test_sum_kernels.py)."""
    h, w = probes.shape[1], probes.shape[2] // 2
    for i in range(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        for y in range(h):
            prow = probes[k, y]
            brow = buf[i, y]
            oo = obj[y0 + y, 2 * x0:2 * x0 + 2 * w]
            if do_object:
                nn = obj_num[y0 + y, 2 * x0:2 * x0 + 2 * w]
                dd = obj_den[y0 + y, x0:x0 + w]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    vr = brow[2 * x]
                    vi = brow[2 * x + 1]
                    nn[2 * x] = _fma32(pr, vr, _fma32(pi, vi, nn[2 * x]))
                    nn[2 * x + 1] = _fma32(pr, vi, _fma32(-pi, vr, nn[2 * x + 1]))
                    dd[x] = _fma32(pr, pr, _fma32(pi, pi, dd[x]))
            if do_probe:
                nn = probe_num[k, y]
                dd = probe_den[k, y]
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    vr = brow[2 * x]
                    vi = brow[2 * x + 1]
                    nn[2 * x] = _fma32(o_r, vr, _fma32(o_i, vi, nn[2 * x]))
                    nn[2 * x + 1] = _fma32(o_r, vi, _fma32(-o_i, vr, nn[2 * x + 1]))
                    dd[x] = _fma32(o_r, o_r, _fma32(o_i, o_i, dd[x]))


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def poisson_gradient_1(buf, grad, intensity, frames, validf, background, chunks, bg_grad, sums):  # pragma: no cover
    """Single-mode ``poisson_gradient`` on float views (buf, grad: (b, h, 2w))."""
    h, w = buf.shape[1], buf.shape[2] // 2
    one = np.float32(1.0)
    eps = np.float32(1e-9)
    for t in prange(chunks.shape[0] - 1):
        loss = 0.0
        err = 0.0
        tot = 0.0
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            for y in range(h):
                l_row = np.float32(0.0)
                e_row = np.float32(0.0)
                t_row = np.float32(0.0)
                for x in range(w):
                    re = buf[i, y, 2 * x]
                    im = buf[i, y, 2 * x + 1]
                    v = validf[y, x]
                    meas = max(intensity[j, y, x], np.float32(0.0))
                    model = re * re + im * im + background[y, x] + eps
                    l_row += v * (model - meas * np.log(model))
                    d = np.sqrt(meas) - np.sqrt(model)
                    e_row += v * d * d
                    t_row += v * meas
                    g = v * (one - meas / model)
                    bg_grad[t, y, x] += g
                    grad[i, y, 2 * x] = g * re
                    grad[i, y, 2 * x + 1] = g * im
                loss += l_row
                err += e_row
                tot += t_row
        sums[t, 0] = loss
        sums[t, 1] = err
        sums[t, 2] = tot


@njit(parallel=True, nogil=True, cache=True, fastmath=True)
def poisson_line_terms_1(psi0, a1, a2, intensity, frames, validf, background, dbg, alpha, use_a2, chunks,
                         sums):  # pragma: no cover
    """Single-mode ``poisson_line_terms`` on float views (psi0, a1, a2: (b, h, 2w))."""
    h, w = psi0.shape[1], psi0.shape[2] // 2
    al = np.float32(alpha)
    al2 = al * al if use_a2 else np.float32(0.0)
    two_al = np.float32(2.0) * al if use_a2 else np.float32(0.0)
    one = np.float32(1.0)
    two = np.float32(2.0)
    eps = np.float32(1e-9)
    for t in prange(chunks.shape[0] - 1):
        r0 = 0.0
        r1 = 0.0
        r2 = 0.0
        for i in range(chunks[t], chunks[t + 1]):
            j = frames[i]
            for y in range(h):
                q0 = np.float32(0.0)
                q1 = np.float32(0.0)
                q2 = np.float32(0.0)
                for x in range(w):
                    br = a2[i, y, 2 * x]
                    bi = a2[i, y, 2 * x + 1]
                    vr = psi0[i, y, 2 * x] + al * a1[i, y, 2 * x] + al2 * br
                    vi = psi0[i, y, 2 * x + 1] + al * a1[i, y, 2 * x + 1] + al2 * bi
                    dr = a1[i, y, 2 * x] + two_al * br
                    di = a1[i, y, 2 * x + 1] + two_al * bi
                    v = validf[y, x]
                    meas = max(intensity[j, y, x], np.float32(0.0))
                    model = max(vr * vr + vi * vi + background[y, x] + al * dbg[y, x], np.float32(0.0)) + eps
                    m1 = two * (vr * dr + vi * di) + dbg[y, x]
                    q0 += v * (model - meas * np.log(model))
                    q1 += v * m1 * (one - meas / model)
                    q2 += v * m1 * m1 / model
                r0 += q0
                r1 += q1
                r2 += q2
        sums[t, 0] = r1
        sums[t, 1] = r2
        sums[t, 2] = r0


@njit(parallel=True, nogil=True, cache=True)
def regularized_ratio(num, den, previous, lam, out):  # pragma: no cover - compiled
    """out = (num + λ·previous) / (den + λ), one fused pass, on float views: num, previous, out
    (rows, 2w) interleaved (re, im), den (rows, w).

    The same float32 operations, in the same order, as NumPy's ``(num + lam * previous) /
    (den + lam)`` on complex64 (its complex division by a real divisor multiplies by the
    reciprocal), so the result is the same bits; no ``fastmath``, which would let LLVM reorder
    them. Five NumPy passes with their temporaries become one (the object update of RAAR/DM).
    """
    one = np.float32(1.0)
    for y in prange(den.shape[0]):
        for x in range(den.shape[1]):
            scale = one / (den[y, x] + lam)
            out[y, 2 * x] = (num[y, 2 * x] + lam * previous[y, 2 * x]) * scale
            out[y, 2 * x + 1] = (num[y, 2 * x + 1] + lam * previous[y, 2 * x + 1]) * scale


# ------------------------------------------------------------------------------------------------
# PIE batch updates on the batch's patches only. ``accumulate_1`` adds a batch's overlap sums into
# arrays that stay zero between batches; these kernels find the object pixels the batch reached
# (per object row, the x-span from the leftmost to the rightmost of its frames), take the step
# there and zero what they read, so no pass over the whole object and no full-size temporary is
# made per batch. Same bits as the NumPy expressions they replace (no ``fastmath``).
# ------------------------------------------------------------------------------------------------


@njit(parallel=True, nogil=True, cache=True)
def pie_row_spans(den, cy, cx, frames, h, w, lo, hi, row_max, with_max):  # pragma: no cover - compiled
    """Per object row ``yy``: the x-span ``[lo[yy], hi[yy])`` covered by the frames ``frames``
    (patches ``cy, cx`` of ``h × w``; empty rows get ``lo = hi = 0``) and, when ``with_max``,
    ``row_max[yy]``, the maximum of ``den`` over it (0 for an empty row; ``row_max`` untouched
    otherwise). ``den`` is zero outside the spans, so the maximum of ``row_max`` is ``den.max()``."""
    nf = frames.shape[0]
    for yy in prange(den.shape[0]):
        left = den.shape[1]
        right = 0
        for i in range(nf):
            j = frames[i]
            if cy[j] <= yy < cy[j] + h:
                left = min(left, cx[j])
                right = max(right, cx[j] + w)
        if right <= left:
            left = 0
            right = 0
        lo[yy] = left
        hi[yy] = right
        if with_max:
            m = np.float32(0.0)
            for x in range(left, right):
                v = den[yy, x]
                if v > m:
                    m = v
            row_max[yy] = m


@njit(parallel=True, nogil=True, cache=True)
def pie_object_step(obj, num, den, lo, hi, c_den, c_max, tiny):  # pragma: no cover - compiled
    """rPIE object step on the spans of ``pie_row_spans``, in place, then ``num`` and ``den``
    zeroed there: ``obj += num / (c_den·den + c_max + tiny)`` on float views (obj, num: (oy, 2ox)
    interleaved (re, im); den (oy, ox)); ``c_den = 1 − α``, ``c_max = α·max(den)``, float32.

    The same float32 operations in the same order as ``pie._step`` and the addition in NumPy
    (``((1 − α)·den + α·max) + 1e−30``; complex ÷ real multiplies by the reciprocal): the same
    bits. Outside the spans ``num`` is 0 and NumPy's step adds 0."""
    one = np.float32(1.0)
    for yy in prange(obj.shape[0]):
        for x in range(lo[yy], hi[yy]):
            weight = c_den * den[yy, x] + c_max + tiny
            scale = one / weight
            obj[yy, 2 * x] = obj[yy, 2 * x] + num[yy, 2 * x] * scale
            obj[yy, 2 * x + 1] = obj[yy, 2 * x + 1] + num[yy, 2 * x + 1] * scale
            num[yy, 2 * x] = 0.0
            num[yy, 2 * x + 1] = 0.0
            den[yy, x] = 0.0


@njit(parallel=True, nogil=True, cache=True)
def momentum_step(obj, velocity, previous, eta, gamma):  # pragma: no cover - compiled
    """mPIE momentum on float views (all (rows, 2w)), in place, one pass:
    ``v ← η v + (O − O_prev); O ← O + γ v; O_prev ← O``, the same float32 operations as the
    NumPy statements in ``pie._momentum`` (multiplying a complex by a real scalar scales both
    parts), hence the same bits."""
    for y in prange(obj.shape[0]):
        for x in range(obj.shape[1]):
            o = obj[y, x]
            v = velocity[y, x] * eta + (o - previous[y, x])
            velocity[y, x] = v
            o = o + gamma * v
            obj[y, x] = o
            previous[y, x] = o


# ------------------------------------------------------------------------------------------------
# PIE's probe step: the batch's per-bin sums gathered (and zeroed) in one pass, and after their
# FFT the ramp products summed over the bins in one pass, where NumPy took a fancy-indexed copy,
# a multiply per bin, a reduction and two fancy-indexed zeroings. The same bits: NumPy's complex64
# product on this CPU is (ar·br − ai·bi, ar·bi + ai·br) with the first product of each part fused
# into a multiply-add (``_fma32`` below, checked against NumPy by tests/ptycho/test_sum_kernels.py),
# its reduction over the leading axis adds the planes in order, and no ``fastmath`` lets LLVM
# change either.
# ------------------------------------------------------------------------------------------------


@intrinsic
def _fma32(typingctx, a, b, c):  # pragma: no cover - compiled
    """``a·b + c`` rounded once (LLVM's fma on float32)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f], ir.FunctionType(f, [f, f, f]))
        return builder.call(fn, args)

    return sig, codegen


@njit(nogil=True, cache=True)
def gather_bins(src, bins, dst, den, den_sum):  # pragma: no cover - compiled
    """``dst[i] = src[bins[i]]`` and ``src[bins[i]] = 0`` (the probe sums, (n_bins, L) float
    views), and ``den_sum = Σ_i den[bins[i]]`` in order, ``den[bins[i]] = 0`` ((n_bins, M) float32):
    the same values as NumPy's ``src[bins]``, ``den[bins].sum(axis=0)`` and the zeroing after."""
    for i in range(bins.shape[0]):
        k = bins[i]
        for l in range(src.shape[1]):
            dst[i, l] = src[k, l]
            src[k, l] = 0.0
        if i == 0:
            for l in range(den.shape[1]):
                den_sum[l] = den[k, l]
                den[k, l] = 0.0
        else:
            for l in range(den.shape[1]):
                den_sum[l] = den_sum[l] + den[k, l]
                den[k, l] = 0.0


@njit(nogil=True, cache=True)
def unshift_products_sum(spec, ramps, bins, out):  # pragma: no cover - compiled
    """``out = Σ_i spec[i] · ramps[bins[i]]`` over the bins in order, on float views: spec
    (n, n_modes, 2L), ramps (n_bins, 2L), out (n_modes, 2L); the same float32 operations as
    NumPy's ``spec[i] *= ramps[bins[i]]`` then ``spec.sum(axis=0)``."""
    n, n_modes, two_l = spec.shape
    for i in range(n):
        r = ramps[bins[i]]
        for m in range(n_modes):
            s = spec[i, m]
            o = out[m]
            for l in range(two_l // 2):
                ar = s[2 * l]
                ai = s[2 * l + 1]
                br = r[2 * l]
                bi = r[2 * l + 1]
                re = _fma32(ar, br, -(ai * bi))
                im = _fma32(ar, bi, ai * br)
                if i == 0:
                    o[2 * l] = re
                    o[2 * l + 1] = im
                else:
                    o[2 * l] = o[2 * l] + re
                    o[2 * l + 1] = o[2 * l + 1] + im


# ------------------------------------------------------------------------------------------------
# LSQML's batch update (``lsqml.py``), single mode, on float views. ``lsqml_step_sums`` forms, per
# frame and pixel, the three waves the optimal steps need (χ = ψ − P·O, P·ΔO, ΔP·O, with
# ΔO = Σ P*χ / (Σ|P|² + λ) read from the batch's sums) and adds up the five inner products of the
# 2×2 system, without writing any of them to memory (NumPy: four exit-wave passes, a subtraction
# and five reductions over the batch). ``lsqml_object_step`` takes the object step on the rows'
# spans the batch covers (``pie_row_spans``) and zeroes the sums there.
#
# Each frame's sums belong to that frame alone (one thread) and each object row to one thread, so
# the results do not depend on the number of threads. ``LSQML_FASTMATH`` allows reassociation
# (the compiler vectorises the five float64 sums: 4× faster than the serial sums, measured on 20
# frames of 128²) and multiplication by a reciprocal; the order it picks is fixed when the kernel
# is compiled, not by the thread count. Not the same bits as the NumPy reference (its reductions
# are pairwise; ΔO is not rounded into an array first): equal to float32 rounding
# (tests/ptycho/test_lsqml_fused.py).
# ------------------------------------------------------------------------------------------------

LSQML_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(parallel=True, nogil=True, cache=True, fastmath=LSQML_FASTMATH)
def lsqml_step_sums(chi, obj, probes, obj_num, obj_den, lam, dprobes, cy, cx, kb, frames, do_probe,
                    sums):  # pragma: no cover - compiled
    """Per frame i of ``frames``: the sums of ``lsqml.optimal_steps`` over its pixels,
    ``sums[i] = (Σ|a|², Σ Re a*χ, Σ|b|², Σ Re a*b, Σ Re b*χ)`` with ``χ = chi − P·O``,
    ``a = P·ΔO``, ``ΔO = obj_num / (obj_den + lam)`` on the frame's patch and ``b = ΔP·O``
    (``dprobes``: ΔP shifted per bin; the last three sums are 0 unless ``do_probe``, and
    ``dprobes`` is then not read).

    chi (B, h, 2w) the projected exit waves; obj, obj_num (oy, 2ox); obj_den (oy, ox) float32;
    probes, dprobes (K, h, 2w); lam float32; sums (B, 5) float64 (written)."""
    h, w = probes.shape[1], probes.shape[2] // 2
    one = np.float32(1.0)
    for i in prange(frames.shape[0]):
        j = frames[i]
        y0, x0, k = cy[j], cx[j], kb[j]
        s11 = 0.0
        s1 = 0.0
        s22 = 0.0
        s12 = 0.0
        s2 = 0.0
        for y in range(h):
            prow = probes[k, y]
            drow = dprobes[k, y]
            crow = chi[i, y]
            oo = obj[y0 + y, 2 * x0:2 * x0 + 2 * w]
            nn = obj_num[y0 + y, 2 * x0:2 * x0 + 2 * w]
            dd = obj_den[y0 + y, x0:x0 + w]
            # two copies of the pixel loop, with and without the probe's sums, so that neither
            # branches per pixel (the branch-free loop is what the compiler vectorises)
            if do_probe:
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    cr = crow[2 * x] - (pr * o_r - pi * o_i)
                    ci = crow[2 * x + 1] - (pr * o_i + pi * o_r)
                    g = one / (dd[x] + lam)
                    dr = nn[2 * x] * g
                    di = nn[2 * x + 1] * g
                    ar = pr * dr - pi * di
                    ai = pr * di + pi * dr
                    qr = drow[2 * x]
                    qi = drow[2 * x + 1]
                    br = qr * o_r - qi * o_i
                    bi = qr * o_i + qi * o_r
                    s11 += np.float64(ar * ar + ai * ai)
                    s1 += np.float64(ar * cr + ai * ci)
                    s22 += np.float64(br * br + bi * bi)
                    s12 += np.float64(ar * br + ai * bi)
                    s2 += np.float64(br * cr + bi * ci)
            else:
                for x in range(w):
                    pr = prow[2 * x]
                    pi = prow[2 * x + 1]
                    o_r = oo[2 * x]
                    o_i = oo[2 * x + 1]
                    cr = crow[2 * x] - (pr * o_r - pi * o_i)
                    ci = crow[2 * x + 1] - (pr * o_i + pi * o_r)
                    g = one / (dd[x] + lam)
                    dr = nn[2 * x] * g
                    di = nn[2 * x + 1] * g
                    ar = pr * dr - pi * di
                    ai = pr * di + pi * dr
                    s11 += np.float64(ar * ar + ai * ai)
                    s1 += np.float64(ar * cr + ai * ci)
        sums[i, 0] = s11
        sums[i, 1] = s1
        sums[i, 2] = s22
        sums[i, 3] = s12
        sums[i, 4] = s2


@njit(parallel=True, nogil=True, cache=True, fastmath=LSQML_FASTMATH)
def lsqml_object_step(obj, obj_num, obj_den, lam, tiny, beta, probes, alpha, cy, cx, kb, frames, lo,
                      hi):  # pragma: no cover - compiled
    """LSQML's object update in place on the spans ``[lo, hi)`` of ``pie_row_spans``, then the
    sums zeroed there::

        O += β · (Σ_i α_i |P_i|²) / (Σ|P|² + tiny) · Σ P*χ / (Σ|P|² + λ)

    (the illumination-weighted mean of the frames' steps times ΔO), the weights added frame by
    frame in the order of ``frames`` for each row. obj, obj_num (oy, 2ox); obj_den (oy, ox);
    probes (K, h, 2w); alpha (B,) float32 per frame of ``frames``; lam, tiny, beta float32."""
    h, w = probes.shape[1], probes.shape[2] // 2
    for yy in prange(obj_den.shape[0]):
        a, b = lo[yy], hi[yy]
        if b <= a:
            continue
        weight = np.zeros(b - a, np.float32)
        for i in range(frames.shape[0]):
            j = frames[i]
            y = yy - cy[j]
            if y < 0 or y >= h:
                continue
            x0, k = cx[j] - a, kb[j]
            al = alpha[i]
            prow = probes[k, y]
            for x in range(w):
                pr = prow[2 * x]
                pi = prow[2 * x + 1]
                weight[x0 + x] += al * (pr * pr + pi * pi)
        orow = obj[yy]
        nrow = obj_num[yy]
        drow = obj_den[yy]
        for x in range(a, b):
            den = drow[x]
            scale = beta * (weight[x - a] / (den + tiny)) / (den + lam)
            orow[2 * x] += scale * nrow[2 * x]
            orow[2 * x + 1] += scale * nrow[2 * x + 1]
            nrow[2 * x] = 0.0
            nrow[2 * x + 1] = 0.0
            drow[x] = 0.0
