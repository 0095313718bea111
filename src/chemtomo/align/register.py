"""Image registration primitives: sub-pixel translation and similarity transforms.

Both functions answer the same question in the DESIGN.md convention: which transform ``q`` makes
``moving(q(p))`` look like ``reference(p)``. For a translation ``q(p) = p + t``: the content at
``p`` in the reference sits at ``p + t`` in the moving image. Stacks ``(n, ny, nx)`` are
registered pairwise, all at once.

* :func:`register_translation`: phase correlation, refined to a fraction of a pixel by evaluating
  the cross-power spectrum's inverse DFT on an upsampled grid around the peak with two small
  matrix products (Guizar-Sicairos, Thurman & Fienup 2008), instead of a large zero-padded FFT.
* :func:`register_similarity`: translation, rotation and scale by Levenberg–Marquardt on a
  weighted least-squares intensity metric, with a fitted gain and offset per image (robust to
  intensity drift) and a smooth window that fades the field's edges, using the same bilinear
  warp as :func:`chemtomo.align.apply`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError
from ..core.fft import fft2, ifft2
from ._kernels import affine_warp3, gain_offset_fit, normal_equations, pooled_phase_correlation
from .transform import grid

__all__ = ["register_translation", "register_common_translation", "register_similarity", "SimilarityFit",
           "edge_window"]

log = logging.getLogger(__name__)


def _as_stack(a, name: str) -> tuple[np.ndarray, bool]:
    arr = np.asarray(a)
    if arr.ndim == 2:
        return arr[None].astype(np.float32), True
    if arr.ndim == 3:
        return arr.astype(np.float32, copy=False), False
    raise InputError(f"{name}: expected an image (ny, nx) or a stack (n, ny, nx), got shape {arr.shape}")


def _check_pair(reference, moving):
    ref, single_r = _as_stack(reference, "reference")
    mov, single_m = _as_stack(moving, "moving")
    if ref.shape != mov.shape:
        raise InputError(f"reference has shape {ref.shape} but moving has {mov.shape}; "
                         "expected the same shape")
    if min(ref.shape[-2:]) < 4:
        raise InputError(f"images must be at least 4×4 pixels, got {ref.shape[-2:]}")
    for name, arr in (("reference", ref), ("moving", mov)):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: contains NaN or infinite values; expected finite images")
    return ref, mov, single_r and single_m


def edge_window(shape, *, fraction: float = 0.15) -> np.ndarray:
    """Separable Tukey (cosine-tapered) window, (ny, nx) float32, 1 inside, 0 at the edges.

    ``fraction`` of each axis is tapered on each side. Downweights the field's edges, where the
    sample enters and leaves the field and where warped images carry fill values.
    """
    def taper(n):
        w = np.ones(n)
        m = max(1, int(round(fraction * n)))
        ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(m) + 0.5) / m))
        w[:m] = ramp
        w[n - m:] = ramp[::-1]
        return w

    ny, nx = shape[-2:]
    return np.outer(taper(ny), taper(nx)).astype(np.float32)


def _upsampled_dft(data, up: int, size: int, offsets):
    """Inverse DFT of ``data`` (n, ny, nx) at the ``size``² positions ``(u − offsets)/up``,
    u = 0 … size − 1, offsets (n, 2) in upsampled pixels, by two matrix products per image
    (Guizar-Sicairos et al. 2008)."""
    n, ny, nx = data.shape
    fy = np.fft.ifftshift(np.arange(ny) - ny // 2)  # integer frequencies in FFT order
    fx = np.fft.ifftshift(np.arange(nx) - nx // 2)
    u = np.arange(size)
    # kernels: (n, size, ny) and (n, nx, size)
    ky = np.exp(2j * np.pi / (ny * up) * (u[None, :, None] - offsets[:, 0, None, None]) * fy[None, None, :])
    kx = np.exp(2j * np.pi / (nx * up) * fx[None, :, None] * (u[None, None, :] - offsets[:, 1, None, None]))
    return np.einsum("nay,nyx,nxb->nab", ky, data, kx, optimize=True)


def register_translation(reference, moving, *, upsample: int = 20, window: bool = True,
                         normalization: str | None = "phase") -> np.ndarray:
    """Sub-pixel translation between images by upsampled phase correlation.

    Parameters
    ----------
    reference, moving : (ny, nx) or (n, ny, nx) float
        Images to compare, pairwise along the first axis for stacks.
    upsample : int
        Precision is 1/``upsample`` pixel. 1 gives integer shifts.
    window : bool
        Multiply both images by :func:`edge_window` first, so the field's edges do not correlate.
    normalization : "phase" or None
        "phase" divides the cross-power spectrum by its modulus (phase correlation: sharp peak,
        insensitive to smooth intensity changes and to contrast that differs between images that
        share their edges); None gives plain cross-correlation, better for very smooth,
        noise-free images whose far spectrum holds no signal (see the example). A floor on the
        modulus (1e-3 of its maximum) was tried and made cross-energy offsets 2–4x worse on
        noisy simulated data, so phase correlation here is unregularised.

    Returns
    -------
    shifts : (2,) or (n, 2) float64, (dy, dx) in pixels such that ``moving(p + shift)`` ≈
        ``reference(p)``; the alignment convention of DESIGN.md, so ``shift`` is what
        :func:`chemtomo.align.apply` takes to align ``moving`` onto ``reference``.

    Notes
    -----
    The cross-power spectrum ``X = M·R̄`` (``M``, ``R`` the images' DFTs) of a shifted pair is
    ``|X|·exp(−2πi k·t/N)``; its inverse DFT peaks at ``t``. The peak is located on the FFT grid,
    then the inverse DFT is evaluated on a 1.5-pixel neighbourhood sampled at 1/``upsample`` pixel
    with two matrix products per image, costing O(N·upsample) instead of O(N²·upsample²).

    References
    ----------
    M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image registration
    algorithms", Opt. Lett. 33, 156 (2008).

    Examples
    --------
    >>> y, x = np.mgrid[:32, :32]
    >>> ref = np.exp(-((y - 15.0) ** 2 + (x - 16.0) ** 2) / 20)
    >>> mov = np.exp(-((y - 17.5) ** 2 + (x - 15.25) ** 2) / 20)
    >>> np.round(register_translation(ref, mov, upsample=100, window=False, normalization=None), 2)
    array([ 2.5 , -0.75])
    """
    ref, mov, single = _check_pair(reference, moving)
    peak = _correlation_peak(_cross_power(ref, mov, upsample, window, normalization), int(upsample))
    return peak[0] if single else peak


def register_common_translation(reference, moving, *, upsample: int = 100, window: bool = True) -> np.ndarray:
    """One sub-pixel translation shared by every pair of a stack, by joint phase correlation.

    Each pair's cross-power spectrum is normalised to unit modulus (as in
    :func:`register_translation`), the normalised spectra of all pairs are summed, and the peak of
    the sum's inverse DFT is located and refined on a 1/``upsample`` pixel grid. A pure common
    shift adds coherently at every frequency of every pair; noise, and the phase errors that
    differing contrast gives each pair, add incoherently. So all pairs' frequencies are pooled
    before the peak is taken, instead of taking one peak per pair on a discrete grid and combining
    the peaks (e.g. by their median), which keeps each pair's grid and peak-location error.

    Parameters
    ----------
    reference, moving : (n, ny, nx) float
        Pairs that differ by the same translation (and contrast, noise).
    upsample : int
        Precision is 1/``upsample`` pixel.
    window : bool
        Multiply the images by :func:`edge_window` first.

    Returns
    -------
    shift : (2,) float64 (dy, dx), ``moving(p + shift)`` ≈ ``reference(p)`` for every pair.
    """
    ref, mov, _ = _check_pair(reference, moving)
    if int(upsample) < 1:
        raise InputError(f"upsample must be a positive integer, got {upsample!r}")
    xpow = _pooled_phase_power(mov, window, np.conj(_spectrum(ref, window)))
    return _correlation_peak(xpow[None], int(upsample))[0]


def _cross_power(ref, mov, upsample, window, normalization):
    """Cross-power spectra ``M·R̄`` of the pairs (n, ny, nx), windowed and normalised as asked."""
    if int(upsample) < 1:
        raise InputError(f"upsample must be a positive integer, got {upsample!r}")
    if normalization not in ("phase", None):
        raise InputError(f"normalization must be 'phase' or None, got {normalization!r}")
    xpow = _spectrum(mov, window) * np.conj(_spectrum(ref, window))
    if normalization == "phase":
        mag = np.abs(xpow)
        xpow = xpow / np.maximum(mag, 1e-12 * mag.max(axis=(-2, -1), keepdims=True) + 1e-30)
    return xpow


def _pooled_phase_power(mov, window, ref_conj, rows=None) -> np.ndarray:
    """Σ over the pairs of the phase-normalised cross-power spectra (ny, nx) complex64: the sum
    over axis 0 of ``_cross_power(ref, mov, ..., "phase")``, in one compiled pass
    (``_kernels.pooled_phase_correlation``) from the reference's conjugate spectra ``ref_conj``
    (``np.conj(_spectrum(ref, window))``, kept by a caller that correlates one reference with many
    moving stacks); ``rows``: the reference's image paired with each moving one (None: the same
    index), a subset read in place."""
    spec = _spectrum(np.asarray(mov, np.float32), window)
    rows = np.arange(len(spec)) if rows is None else rows
    out = np.empty(spec.shape[-2:], np.complex64)
    pooled_phase_correlation(spec, np.ascontiguousarray(ref_conj), np.asarray(rows, np.int64), out)
    return out


def _spectrum(img, window):
    """The 2D spectra of the images (n, ny, nx), each first made zero-mean and faded to its edges
    by ``edge_window`` when ``window``."""
    if window:
        w = edge_window(img.shape)
        img = (img - _weighted_mean(img, w)) * w
    return fft2(img)


def _correlation_peak(xpow, up: int) -> np.ndarray:
    """Peak (n, 2) of the inverse DFTs of ``xpow``, signed, refined to 1/``up`` pixel."""
    n, ny, nx = xpow.shape
    corr = np.abs(ifft2(xpow))
    flat = corr.reshape(n, -1).argmax(axis=1)
    peak = np.stack(np.unravel_index(flat, (ny, nx)), axis=1).astype(np.float64)
    size = np.array([ny, nx], dtype=np.float64)
    peak = np.where(peak > size // 2, peak - size, peak)  # wrap to signed shifts
    if up > 1:
        region = int(np.ceil(1.5 * up))
        centre_idx = region // 2
        offsets = centre_idx - peak * up  # sample x = peak + (u − centre_idx)/up
        local = np.abs(_upsampled_dft(xpow.astype(np.complex128), up, region, offsets))
        flat = local.reshape(n, -1).argmax(axis=1)
        sub = np.stack(np.unravel_index(flat, (region, region)), axis=1).astype(np.float64)
        peak = peak + (sub - centre_idx) / up
    return peak


def _weighted_mean(img, w):
    return (img * w).sum(axis=(-2, -1), keepdims=True) / w.sum()


@dataclass(frozen=True)
class SimilarityFit:
    """Result of :func:`register_similarity`, one entry per image.

    shifts_px    : (n, 2) float64, (dy, dx), pixels
    rotation_deg : (n,) float64, degrees
    scale        : (n,) float64
    gain, offset : (n,) float64, the intensity model ``gain·moving(q(p)) + offset ≈ reference(p)``
    residual     : (n,) float64, weighted RMS of the remaining difference divided by the weighted
                   RMS of the reference (0 = perfect match)
    converged    : (n,) bool, the last update moved no point of the field by more than ``tol_px``
    iterations   : number of Levenberg–Marquardt iterations run
    """

    shifts_px: np.ndarray
    rotation_deg: np.ndarray
    scale: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    iterations: int


def register_similarity(reference, moving, *, init=None, weight=None, similarity: bool = True,
                        max_iter: int = 50, tol_px: float = 1e-3) -> SimilarityFit:
    """Translation, rotation and scale that warp ``moving`` onto ``reference``.

    Minimises, for each image independently (all solved together, vectorised),

        Σ_p w(p) · [a · moving(q(p)) + b − reference(p)]²,
        q(p) = c + s R(φ)(p − c) + t,

    over (t, φ, s) and an intensity gain ``a`` and offset ``b``, by Levenberg–Marquardt with the
    bilinear warp. Gradients of ``moving`` are central differences warped with the same
    coordinates. Pixels whose ``q`` falls outside ``moving`` get zero weight.

    Parameters
    ----------
    reference, moving : (ny, nx) or (n, ny, nx) float
    init : tuple (shifts_px (n, 2), rotation_deg (n,), scale (n,)), optional
        Starting transform. Default: identity rotation and scale, translation from
        :func:`register_translation` (so shifts of many pixels are captured).
    weight : (ny, nx) float, optional
        Per-pixel weight on the reference grid; default :func:`edge_window` (fades the edges).
    similarity : bool
        False fits the translation only (with gain and offset).
    max_iter : int
        Largest number of iterations.
    tol_px : float
        Convergence: the largest displacement of any field point in the last update, pixels.

    Returns
    -------
    SimilarityFit

    Notes
    -----
    The Jacobian of the residual with respect to ``θ = (t_y, t_x, φ, s)`` is
    ``a ∇M(q) · ∂q/∂θ`` with ``∂q/∂t = I``, ``∂q/∂φ = s R'(φ)(p − c)``, ``∂q/∂s = R(φ)(p − c)``;
    with ``∂/∂a = M(q)`` and ``∂/∂b = 1`` the 6×6 normal equations of every image are solved in one
    batched call. A step is kept only for the images whose cost it lowers; the others raise their
    damping, so each image follows its own trust region.
    """
    ref, mov, single = _check_pair(reference, moving)
    n, ny, nx = ref.shape
    if int(max_iter) < 1:
        raise InputError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (tol_px > 0):
        raise InputError(f"tol_px must be positive, got {tol_px!r}")
    w = np.ascontiguousarray(edge_window(ref.shape) if weight is None else weight, dtype=np.float64)
    if w.shape != (ny, nx):
        raise InputError(f"weight must have the image shape {(ny, nx)}, got {w.shape}")
    if init is None:
        t0 = register_translation(ref, mov, upsample=10).reshape(n, 2)
        params = np.zeros((n, 4))
        params[:, :2] = t0
        params[:, 3] = 1.0
    else:
        t_i, r_i, s_i = init
        params = np.zeros((n, 4))
        params[:, :2] = np.asarray(t_i, np.float64).reshape(n, 2)
        params[:, 2] = np.deg2rad(np.asarray(r_i, np.float64).reshape(n))
        params[:, 3] = np.asarray(s_i, np.float64).reshape(n)

    gy, gx = (np.ascontiguousarray(g, dtype=np.float32) for g in np.gradient(mov, axis=(1, 2)))
    mov32 = np.ascontiguousarray(mov, dtype=np.float32)
    vy, vx = grid((ny, nx))
    rw = ref.astype(np.float64)
    n_free = 4 if similarity else 2

    all_rows = np.arange(n)

    def evaluate(p, idx):
        """Warped moving image and its gradients, weights, gain/offset, residual and cost of the
        images ``idx`` under the parameters ``p`` (one row per index)."""
        # one compiled pass: the coordinates in the loop, three pulls, the in-field mask (the same
        # values as raw_coordinates + three warp_stack calls, without their (2, k, ny, nx) arrays)
        m, my, mx, inside = affine_warp3(mov32, gy, gx, idx, p[:, :2], p[:, 2], p[:, 3])
        # closed-form gain/offset for the current geometry (weighted linear fit), compiled
        ww, r = np.empty_like(m), np.empty_like(m)
        a, b, cost = (np.empty(m.shape[0]) for _ in range(3))
        gain_offset_fit(m, rw, np.ascontiguousarray(all_rows[idx]), w, inside, ww, r, a, b, cost)
        return m, my, mx, ww, a, b, r, cost

    lam = np.full(n, 1e-3)
    m, my, mx, ww, a, b, r, cost = evaluate(params, all_rows)
    k = n_free + 2  # the geometry, then gain and offset
    cols = np.array([0, 1, 2, 3, 4, 5] if similarity else [0, 1, 4, 5], np.int64)
    converged = np.zeros(n, bool)
    done = np.zeros(n, bool)
    it = 0
    r_max = float(np.hypot(ny / 2.0, nx / 2.0))
    for it in range(1, int(max_iter) + 1):
        # only the images still moving: the others keep their parameters (a finished image's
        # step is never taken), so leaving them out changes nothing and saves their work
        idx = np.flatnonzero(~done)
        if idx.size == n:
            idx = slice(None)  # all still moving: views, not copies
        active = all_rows[idx]
        pa = params[idx]
        n_act = active.size
        # JᵀWJ and JᵀWr summed pixel by pixel in one compiled pass, the Jacobian never in memory
        # (as an (images, k, pixels) float64 array it was 353 MB at the paper's size)
        jtj, jtr = np.empty((n_act, k, k)), np.empty((n_act, k))
        normal_equations(m, my, mx, ww, r, a, active, np.ascontiguousarray(pa[:, 2]),
                         np.ascontiguousarray(pa[:, 3]), vy, vx, cols, jtj, jtr)
        diag = np.einsum("nkk->nk", jtj)
        la = lam[idx]
        damped = jtj + (la[:, None] * (diag + 1e-12 * diag.max(axis=1, keepdims=True)))[:, :, None] * np.eye(k)
        try:
            step = -np.linalg.solve(damped, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("nkl,nl->nk", np.linalg.pinv(damped), jtr)
        trial = pa.copy()
        trial[:, :2] += step[:, :2]
        if similarity:
            trial[:, 2:4] += step[:, 2:4]
        trial[:, 3] = np.clip(trial[:, 3], 0.5, 2.0)
        new = evaluate(trial, idx)
        better = new[7] < cost[idx]
        # largest displacement of a field point caused by the step
        move = (np.hypot(step[:, 0], step[:, 1])
                + (r_max * (np.abs(step[:, 2]) * pa[:, 3] + np.abs(step[:, 3])) if similarity else 0.0))
        keep = active[better]
        params[keep] = trial[better]
        for full, part in zip((m, my, mx, ww, a, b, r, cost), new):
            full[keep] = part[better]
        lam[idx] = np.where(better, np.maximum(la / 3.0, 1e-7), np.minimum(la * 4.0, 1e7))
        small = move < tol_px
        converged[active[small]] = True
        done[active[small | (lam[idx] >= 1e7)]] = True  # converged, or no step lowers the cost any more
        if done.all():
            break
    ref_rms = np.sqrt((ww * (rw - ((ww * rw).sum(axis=(1, 2)) / (ww.sum(axis=(1, 2)) + 1e-30))[:, None, None]) ** 2)
                      .sum(axis=(1, 2)) / (ww.sum(axis=(1, 2)) + 1e-30))
    resid = np.sqrt(cost / (ww.sum(axis=(1, 2)) + 1e-30)) / np.maximum(ref_rms, 1e-30)
    fit = SimilarityFit(shifts_px=params[:, :2].copy(), rotation_deg=np.rad2deg(params[:, 2]),
                        scale=params[:, 3].copy(), gain=a, offset=b, residual=resid,
                        converged=converged, iterations=it)
    if single:
        return SimilarityFit(fit.shifts_px[0], fit.rotation_deg[0], fit.scale[0], fit.gain[0],
                             fit.offset[0], fit.residual[0], fit.converged[0], it)
    return fit
