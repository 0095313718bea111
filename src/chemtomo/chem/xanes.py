"""Per-voxel XANES maps of a many-energy stack: edge position and white-line energy.

Full-field TXM XANES tomography (tens of energies across a K-edge) is usually summarised by two
maps besides the phase fractions: the **edge position** (where the normalised absorption crosses
half the edge step; it moves up by a few eV from Fe²⁺ to Fe³⁺) and the **white-line energy** (the
energy of the absorption maximum just above the edge). Both are computed here for every voxel or
pixel at once (NumPy over a flattened ``(n_energies, n_voxels)`` array, a block of voxels at a
time, ``BLOCK_VOXELS``; no loop over single voxels).

Normalisation (as in Athena; Ravel & Newville, J. Synchrotron Rad. 12, 537 (2005)):

    n(E) = (μ(E) − pre(E)) / (post(e0) − pre(e0)),

with ``pre`` and ``post`` constants (or straight lines) fitted by least squares to the energies
of the pre- and post-edge ranges and ``e0`` the energy where the step is measured. Each fit is
a weighted sum over the energies, the same weights for every voxel. The step's standard error
follows from the fits' design and the noise σ: ``σ_step² = σ² (g_preᵀ (A_preᵀA_pre)⁻¹ g_pre + g_postᵀ (A_postᵀA_post)⁻¹ g_post)``,
``g = (1, e0 − ē)`` for a line, ``g = 1`` for a constant. σ is given, or estimated from the
residuals of both fits pooled over voxels (median of the per-voxel estimates, divided by the
median of sqrt(χ²_ν/ν) so that it is unbiased for Gaussian noise; voxels clipped to 0 by a
non-negative reconstruction are left out, or only ``noise_mask`` is used). Voxels whose step is
below ``min_step_snr · σ_step`` get NaN: there the "edge" is noise.

Edge position: the first upward crossing of ``level`` (0.5) by n(E) above the pre-edge range,
linearly interpolated between the two energies around it. White line: the largest n(E) between
the pre-edge and the post-edge ranges, refined by the vertex of the parabola through it and its
two neighbours (or of the parabola through their logarithms, ``refine="gaussian"``, exact for a
Gaussian peak); NaN where the maximum is the first or last energy searched (the peak is not
resolved).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from chemtomo.core import InputError, to_numpy

__all__ = ["XanesNormalisation", "edge_position", "normalise_xanes", "white_line_energy"]

#: Default pre-edge range: energies up to this fraction of the scanned span above the first one.
PRE_EDGE_FRACTION = 0.2
#: Default post-edge range: energies from this fraction of the span below the last one.
POST_EDGE_FRACTION = 0.35
#: Voxels that :func:`normalise_xanes`, :func:`edge_position` and :func:`white_line_energy` work
#: on at a time: every step but the noise estimate is voxel by voxel, and a block's temporaries
#: are reused memory where the whole stack's were fresh pages (float64 ones among them). 20
#: energies of a 170 × 274 × 274 volume: the normalisation 22–26 s → 2.9–4.9 s, the edge map
#: 0.9–2.2 → 0.5 s, the white line 2.2–6.1 → 0.9 s; the same values (tests/chem/test_xanes.py),
#: but for 4 of 12.7 million edge steps one float32 ulp apart from the former BLAS sums.
BLOCK_VOXELS = 1 << 16


def _voxel_blocks(m: int) -> list[tuple[int, int]]:
    return [(i, min(m, i + BLOCK_VOXELS)) for i in range(0, m, BLOCK_VOXELS)]


@dataclass(frozen=True)
class XanesNormalisation:
    """A normalised XANES stack (from :func:`normalise_xanes`).

    normalised : (n_energies, ...) float32, n(E): 0 before the edge, 1 after it
    edge_step  : (...) float32, post(e0) − pre(e0) in the units of the input
    step_sigma : (...) float32, standard error of the edge step (from the noise σ)
    noise      : float, σ used (given or estimated), units of the input
    valid      : (...) bool, edge step finite and above ``min_step_snr · step_sigma``
    pre_edge_ev, post_edge_ev : (lo, hi) the ranges used, eV; e0_ev : where the step is measured
    """

    normalised: np.ndarray
    edge_step: np.ndarray
    step_sigma: np.ndarray
    noise: float
    valid: np.ndarray
    pre_edge_ev: tuple[float, float]
    post_edge_ev: tuple[float, float]
    e0_ev: float


def _energies(energies_ev, n: int) -> np.ndarray:
    e = np.asarray(energies_ev, dtype=np.float64).ravel()
    if e.size != n:
        raise InputError(f"energies_ev has {e.size} values but the spectra have {n} energies (axis 0)")
    if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise InputError(f"energies_ev must be finite and strictly increasing, got {e.tolist()}")
    return e


def _range(value, default: tuple[float, float], name: str) -> tuple[float, float]:
    if value is None:
        return default
    lo, hi = (float(v) for v in value)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise InputError(f"{name} must be (lo, hi) energies in eV with lo <= hi, got {value!r}")
    return lo, hi


def _line_fit(e: np.ndarray, y: np.ndarray, at_ev: float, order: int):
    """Least-squares polynomial of ``order`` 0 or 1 (0 where only one energy) through every column of y.

    Parameters: e (n,) energies, y (n, m) values, at_ev where the fit's variance is wanted.
    Returns ``(coef (2, m): value at the centre and slope (0 for a constant), centre eV, residual
    sum of squares (m,), degrees of freedom, variance factor gᵀ(AᵀA)⁻¹g at at_ev)``.
    """
    n = e.size
    centre = float(e.mean())
    line = order >= 1 and n >= 2
    a = np.stack([np.ones(n), e - centre], axis=1) if line else np.ones((n, 1))
    # the products summed energy by energy in NumPy, not by BLAS: each voxel's fit is then the same
    # bits whatever the voxels around it and the thread count (BLAS splits and tiles its columns)
    p = np.linalg.pinv(a).astype(y.dtype)
    coef = np.empty((a.shape[1], y.shape[1]), y.dtype)
    for r in range(a.shape[1]):
        coef[r] = p[r, 0] * y[0]
        for k in range(1, n):
            coef[r] += p[r, k] * y[k]
    ssr = np.zeros(y.shape[1])
    for k in range(n):
        fitted = a[k, 0] * coef[0] if a.shape[1] == 1 else a[k, 0] * coef[0] + a[k, 1] * coef[1]
        ssr += (y[k] - fitted) ** 2
    g = np.array([1.0, at_ev - centre]) if line else np.array([1.0])
    var_factor = float(g @ np.linalg.inv(a.T @ a) @ g)
    if not line:
        coef = np.vstack([coef, np.zeros((1, y.shape[1]))])
    return coef, centre, ssr, n - a.shape[1], var_factor


def normalise_xanes(spectra, energies_ev, *, pre_edge_ev=None, post_edge_ev=None, pre_edge_order: int = 0,
                    post_edge_order: int = 0, e0_ev: float | None = None, noise_sigma: float | None = None,
                    noise_mask=None, min_step_snr: float = 5.0) -> XanesNormalisation:
    """Pre-/post-edge normalisation of XANES spectra, every voxel or pixel at once.

    Parameters
    ----------
    spectra : (n_energies, ...) float
        Absorption (OD, or μ per voxel) at each energy: volumes, images or plain spectra.
        Non-finite values make that voxel invalid.
    energies_ev : (n_energies,) float
        Strictly increasing energies, eV.
    pre_edge_ev, post_edge_ev : (lo, hi) eV, optional
        Energy ranges of the pre- and post-edge line fits. Defaults: the energies up to
        ``PRE_EDGE_FRACTION`` (20 %) of the scanned span above the first one, and from
        ``POST_EDGE_FRACTION`` (35 %) of the span below the last one. Each must hold at least
        one energy, and together more than the fits' parameters (so that σ can be estimated)
        unless ``noise_sigma`` is given.
    pre_edge_order, post_edge_order : {0, 1}
        Polynomial order of each fit: 1 a straight line (Athena's choice for long scans), 0 a
        constant (used anyway where a range holds one energy). Default: constants. A TXM XANES
        scan has a few energies within ~20–30 eV on each side; a slope fitted there and
        extrapolated to e0 multiplies the step's noise (σ_step 2.5σ instead of 0.8σ on the TXM
        preset's grid), while the background's true slope (μ ∝ E^−3 below the edge) changes the
        step by < 1 % over such a range.
    e0_ev : float, optional
        Energy where the step is measured; default midway between the two ranges.
    noise_sigma : float, optional
        Noise standard deviation of one spectrum value (units of ``spectra``). Default:
        estimated from the fits' residuals (module docstring).
    noise_mask : bool array (spatial shape), optional
        Voxels whose residuals estimate σ (e.g. the sample). Default: every voxel with finite
        values and no value exactly 0 at any energy: a reconstruction clipped to OD ≥ 0 has
        empty voxels at 0 whose residuals would understate the noise.
    min_step_snr : float
        A voxel is valid where its edge step exceeds this many standard errors (default 5).

    Returns
    -------
    XanesNormalisation

    Raises
    ------
    InputError
        Spectra with no energy axis, energies not matching or not increasing, ranges without
        energies, too few energies to estimate the noise.
    """
    y = to_numpy(spectra)
    if y.ndim < 1 or y.shape[0] < 3:
        raise InputError(f"spectra must have shape (n_energies >= 3, ...), got {np.shape(y)}")
    e = _energies(energies_ev, y.shape[0])
    span = e[-1] - e[0]
    pre = _range(pre_edge_ev, (e[0], e[0] + PRE_EDGE_FRACTION * span), "pre_edge_ev")
    post = _range(post_edge_ev, (e[-1] - POST_EDGE_FRACTION * span, e[-1]), "post_edge_ev")
    in_pre = (e >= pre[0]) & (e <= pre[1])
    in_post = (e >= post[0]) & (e <= post[1])
    if not in_pre.any() or not in_post.any():
        raise InputError(f"pre_edge_ev {pre} and post_edge_ev {post} must each contain at least one of the energies "
                         f"{e.tolist()}")
    if pre[1] >= post[0]:
        raise InputError(f"pre_edge_ev {pre} must end below the start of post_edge_ev {post}")
    if pre_edge_order not in (0, 1) or post_edge_order not in (0, 1):
        raise InputError(f"pre_edge_order and post_edge_order must be 0 or 1, got {pre_edge_order!r}, "
                         f"{post_edge_order!r}")
    if not (np.isfinite(min_step_snr) and min_step_snr >= 0):
        raise InputError(f"min_step_snr must be a finite number >= 0, got {min_step_snr!r}")
    e0 = 0.5 * (e[in_pre].max() + e[in_post].min()) if e0_ev is None else float(e0_ev)

    spatial = y.shape[1:]
    flat = y.reshape(y.shape[0], -1).astype(np.float32, copy=False)
    m = flat.shape[1]
    # every step but the noise estimate is voxel by voxel: a block of voxels at a time
    # (``BLOCK_VOXELS``), the same values as over all at once without stack-sized temporaries
    blocks = _voxel_blocks(m)
    finite = np.empty(m, bool)
    nonzero = np.empty(m, bool) if noise_sigma is None and noise_mask is None else None  # for the noise
    ssr = np.empty(m)
    pre_coef, step = None, None
    for i, j in blocks:
        fb = flat[:, i:j]
        finite[i:j] = np.all(np.isfinite(fb), axis=0)
        fb = np.where(finite[i:j][None], fb, np.float32(0.0))
        if nonzero is not None:
            nonzero[i:j] = np.all(fb != 0, axis=0)
        c_pre, m_pre, ssr_pre, dof_pre, v_pre = _line_fit(e[in_pre], fb[in_pre], e0, pre_edge_order)
        c_post, m_post, ssr_post, dof_post, v_post = _line_fit(e[in_post], fb[in_post], e0, post_edge_order)
        if pre_coef is None:  # the fits' dtypes: float32 lines, float64 constants (as over all voxels)
            pre_coef = np.empty((2, m), c_pre.dtype)
            step = np.empty(m, np.result_type(c_pre, c_post, np.float64(e0)))
        pre_coef[:, i:j] = c_pre
        step[i:j] = (c_post[0] + c_post[1] * (e0 - m_post)) - (c_pre[0] + c_pre[1] * (e0 - m_pre))
        ssr[i:j] = ssr_pre + ssr_post

    if noise_sigma is None:
        dof = dof_pre + dof_post
        if dof < 1:
            raise InputError(f"cannot estimate the noise: the pre-edge ({int(in_pre.sum())}) and post-edge "
                             f"({int(in_post.sum())}) ranges leave no degree of freedom after their line fits; "
                             "widen them or give noise_sigma")
        use = finite
        if noise_mask is not None:
            nm = np.asarray(noise_mask, dtype=bool)
            if nm.shape != spatial:
                raise InputError(f"noise_mask has shape {nm.shape} but each spectrum image has shape {spatial}")
            use = finite & nm.reshape(-1)
        else:
            unclipped = finite & nonzero
            use = unclipped if unclipped.any() else finite
        per_voxel = np.sqrt(ssr[use] / dof)
        if per_voxel.size == 0:
            raise InputError("no voxel to estimate the noise from: none has finite values at every energy "
                             "(inside noise_mask, when given)")
        # chdtri(dof, 0.5) is the χ² median, scipy.stats.chi2.ppf(0.5, dof), without scipy.stats' 0.3 s import
        sigma = float(np.median(per_voxel, overwrite_input=True) / np.sqrt(special.chdtri(dof, 0.5) / dof))
    else:
        sigma = float(noise_sigma)
        if not (np.isfinite(sigma) and sigma >= 0):
            raise InputError(f"noise_sigma must be a finite number >= 0, got {noise_sigma!r}")
    step_sigma = sigma * np.sqrt(v_pre + v_post)
    valid = finite & np.isfinite(step) & (step > min_step_snr * step_sigma) & (step > 0)
    norm = np.empty(flat.shape, np.float32)
    de = (e - m_pre).astype(np.float32)[:, None]
    for i, j in blocks:
        fb = np.where(finite[i:j][None], flat[:, i:j], np.float32(0.0))
        pre_line = pre_coef[0, i:j][None] + pre_coef[1, i:j][None] * de
        with np.errstate(invalid="ignore", divide="ignore"):
            norm[:, i:j] = (fb - pre_line) / np.where(valid[i:j], step[i:j], np.nan)[None]
    return XanesNormalisation(
        normalised=norm.reshape(y.shape),
        edge_step=np.where(finite, step, np.nan).astype(np.float32).reshape(spatial),
        step_sigma=np.full(spatial, step_sigma, np.float32), noise=sigma, valid=valid.reshape(spatial),
        pre_edge_ev=pre, post_edge_ev=post, e0_ev=float(e0))


def edge_position(spectra, energies_ev, *, level: float = 0.5, normalisation: XanesNormalisation | None = None,
                  **normalise_options) -> np.ndarray:
    """Edge energy per voxel: where the normalised absorption first crosses ``level`` (eV).

    Parameters
    ----------
    spectra : (n_energies, ...) float
        Absorption (OD or μ) at each energy, any spatial shape (volumes, images, spectra).
    energies_ev : (n_energies,) float
        Strictly increasing energies, eV.
    level : float
        Fraction of the edge step (default 0.5, the usual "edge position" of TXM XANES maps).
    normalisation : XanesNormalisation, optional
        A result of :func:`normalise_xanes` for these spectra (saves recomputing it).
    **normalise_options
        ``pre_edge_ev``, ``post_edge_ev``, ``pre_edge_order``, ``post_edge_order``, ``e0_ev``,
        ``noise_sigma``, ``min_step_snr`` of :func:`normalise_xanes`.

    Returns
    -------
    (...) float32 energies, eV; NaN where the edge step is below the noise threshold or n(E)
    never crosses ``level`` above the pre-edge range.

    Notes
    -----
    The crossing between energies E_i < E_{i+1} with n_i < level ≤ n_{i+1} is
    ``E_i + (level − n_i)(E_{i+1} − E_i)/(n_{i+1} − n_i)``; its error from the sampling is at most
    ``h² max|n''| / (8 |n'|)`` (h the local energy step), its noise ≈ σ_n h / Δn.

    Examples
    --------
    >>> e = np.arange(7100.0, 7160.0, 1.0)
    >>> mu = 1.0 + 0.5 * (1 + np.tanh((e - 7123.4) / 2.0))[:, None]     # one pixel, step 1 at 7123.4
    >>> round(float(edge_position(mu, e, noise_sigma=1e-3)[0]), 2)
    7123.4
    """
    if not (np.isfinite(level) and 0.0 < level < 1.0):
        raise InputError(f"level must be a fraction of the edge step in (0, 1), got {level!r}")
    nrm = normalisation if normalisation is not None else normalise_xanes(spectra, energies_ev, **normalise_options)
    n = nrm.normalised.reshape(nrm.normalised.shape[0], -1)
    e = _energies(energies_ev, n.shape[0])
    start = int(np.searchsorted(e, nrm.pre_edge_ev[1], side="right")) - 1   # last pre-edge energy
    valid = nrm.valid.reshape(-1)
    out = np.empty(n.shape[1], np.float32)
    for a, b in _voxel_blocks(n.shape[1]):  # voxel by voxel: a block at a time, the same values
        lo, hi = n[start:-1, a:b], n[start + 1:, a:b]
        crossing = (lo < level) & (hi >= level)
        found = crossing.any(axis=0)
        i = np.argmax(crossing, axis=0)
        cols = np.arange(b - a)
        n0, n1 = lo[i, cols], hi[i, cols]
        e_lo, e_hi = e[start:-1][i], e[start + 1:][i]
        with np.errstate(invalid="ignore", divide="ignore"):
            edge = e_lo + (level - n0) / (n1 - n0) * (e_hi - e_lo)
        out[a:b] = np.where(found & valid[a:b], edge, np.nan)
    return out.reshape(nrm.normalised.shape[1:])


def white_line_energy(spectra, energies_ev, *, refine: str = "parabola", search_ev=None,
                      normalisation: XanesNormalisation | None = None, **normalise_options) -> np.ndarray:
    """White-line energy per voxel: the maximum of the normalised absorption above the edge (eV).

    Parameters
    ----------
    spectra : (n_energies, ...) float
        Absorption (OD or μ) at each energy, any spatial shape.
    energies_ev : (n_energies,) float
        Strictly increasing energies, eV.
    refine : {"parabola", "gaussian", "none"}
        Sub-sample refinement of the sampled maximum: vertex of the parabola through it and its
        two neighbours ("parabola"), of the parabola through their logarithms ("gaussian": exact
        for a Gaussian line; falls back to "parabola" where a value is not positive), or none.
    search_ev : (lo, hi) eV, optional
        Energies searched; default: between the pre-edge and the post-edge ranges (the white
        line lies above the edge and below the range that defines the edge step; searching the
        post-edge range too would let noise there win in thin or rim voxels).
    normalisation, **normalise_options
        As for :func:`edge_position`.

    Returns
    -------
    (...) float32 energies, eV; NaN where the edge step is below the noise threshold or the
    maximum is the first or last energy searched (the peak is not resolved).

    Notes
    -----
    The parabola's vertex through (E_{k−1}, E_k, E_{k+1}) is
    ``(E_{k−1} + E_k)/2 − d₁/(2a)``, ``d₁`` the first divided difference and ``a`` the second;
    its error from the sampling is ≈ ``h² |n'''| / (6 |n''|)`` at the peak.

    Examples
    --------
    >>> e = np.arange(7100.0, 7160.0, 1.5)
    >>> mu = (0.5 * (1 + np.tanh((e - 7123.0) / 2.0)) + 0.4 * np.exp(-0.5 * ((e - 7127.3) / 3.0) ** 2))[:, None]
    >>> round(float(white_line_energy(mu, e, refine="gaussian", noise_sigma=1e-3)[0]), 1)   # true maximum 7127.54
    7127.6
    """
    if refine not in ("parabola", "gaussian", "none"):
        raise InputError(f"refine must be 'parabola', 'gaussian' or 'none', got {refine!r}")
    nrm = normalisation if normalisation is not None else normalise_xanes(spectra, energies_ev, **normalise_options)
    n = nrm.normalised.reshape(nrm.normalised.shape[0], -1)
    e = _energies(energies_ev, n.shape[0])
    default = (np.nextafter(nrm.pre_edge_ev[1], np.inf), np.nextafter(nrm.post_edge_ev[0], -np.inf))
    lo, hi = _range(search_ev, default, "search_ev")
    window = np.flatnonzero((e >= lo) & (e <= hi))
    if window.size < 3:
        raise InputError(f"search_ev ({lo:g}, {hi:g}) eV holds {window.size} energies; at least 3 are needed")
    valid = nrm.valid.reshape(-1)
    out = np.empty(n.shape[1], np.float32)
    for a, b in _voxel_blocks(n.shape[1]):  # voxel by voxel: a block at a time, the same values
        out[a:b] = _white_line(n[:, a:b], valid[a:b], e, window, refine)
    return out.reshape(nrm.normalised.shape[1:])


def _white_line(n: np.ndarray, valid: np.ndarray, e: np.ndarray, window: np.ndarray, refine: str) -> np.ndarray:
    """:func:`white_line_energy` of the voxels (columns) of ``n`` (n_energies, k), float32."""
    sub = np.where(np.isfinite(n[window]), n[window], -np.inf)
    k = np.argmax(sub, axis=0)
    interior = (k > 0) & (k < window.size - 1)
    kc = np.clip(k, 1, window.size - 2)
    cols = np.arange(n.shape[1])
    idx = window[kc]
    x0, x1, x2 = e[idx - 1], e[idx], e[idx + 1]
    y0, y1, y2 = (n[j, cols].astype(np.float64) for j in (idx - 1, idx, idx + 1))   # 3 values per voxel
    if refine == "none":
        peak = e[window[k]]
    else:
        if refine == "gaussian":
            positive = (y0 > 0) & (y1 > 0) & (y2 > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                y0, y1, y2 = (np.where(positive, np.log(np.where(positive, v, 1.0)), v) for v in (y0, y1, y2))
        d1 = (y1 - y0) / (x1 - x0)
        d2 = (y2 - y1) / (x2 - x1)
        a = (d2 - d1) / (x2 - x0)
        with np.errstate(invalid="ignore", divide="ignore"):
            vertex = 0.5 * (x0 + x1) - d1 / (2.0 * a)
        peak = np.where(a < 0, np.clip(vertex, x0, x2), x1)
    return np.where(interior & valid, peak, np.nan).astype(np.float32)
