"""The Poisson noise floor of the solvers' error metric, estimated from the measured counts.

Every solver records the same error metric per iteration (``engine.py``)::

    E = Σ_valid (√I − √(Σ_m|Ψ_m|² + b))² / Σ_valid I

over all frames and valid detector pixels, I the measured counts. With photon-counting data,
I_p ~ Poisson(λ_p) around the true model intensity λ_p, so even the true object and probe leave a
residual: its expectation per pixel is

    f(λ) = E[(√N − √λ)²] = 2λ − 2√λ E[√N],     N ~ Poisson(λ),

which is ≈ 1/4 + 7/(64 λ) at λ ≳ 10 (the variance of the square root of a Poisson count, the
reason the amplitude misfit is the variance-stabilised likelihood), peaks at 0.45 near λ = 1 and
falls as 2λ towards λ = 0. Its variance per pixel, v(λ) = E[(√N − √λ)⁴] − f², is ≈ 1/8 at
large λ. The floor of ``E`` is ``Σ_p f(λ_p) / Σ_p I_p`` with standard deviation
``√(Σ_p v(λ_p)) / Σ_p I_p``.

The λ_p are unknown. At high counts the measured count is a good plug-in (f(N) is within
0.1 % of f(λ) above 64 counts). At low counts it is not (f(0) = 0 whatever λ; f(1) = 0.45
where λ ≈ 0.1 gives 0.14), and no unbiased estimator of f from one count exists (f has
half-integer powers of λ). So the pixels below 64 counts are treated by empirical Bayes: the
distribution G of their λ is fitted to the histogram of their counts (a non-parametric maximum-
likelihood mixture of Poisson laws on a grid of λ, EM iterations; Laird, JASA 73, 805 (1978)),
and each pixel contributes the posterior means E[f(λ) | N] and E[v(λ) | N] under G. Summed over
the ~10⁵–10⁸ pixels of a scan this matches the true Σ f(λ_p) to well under 1 % on the
distributions of ``tests/ptycho/test_noise.py`` (a mixture of bright and dark pixels, 0.01–1000
counts), far below the other uncertainties of a stopping rule.

The floor assumes photon-counting data (integer counts, Poisson statistics, no read noise). Data
that are not integers (a detector in ADU, gain-corrected or averaged frames) have no known floor:
``amplitude_floor`` then returns None and the stopping rule falls back to the relative fall of the
error (``ConvergenceOptions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseFloor", "amplitude_floor", "dim_background", "dose_summary", "poisson_amplitude_moments"]

#: Counts at and above which the measured count is used as the plug-in for λ.
PLUGIN_COUNTS = 64
#: Pixels used at most (every k-th frame beyond).
MAX_PIXELS = 2 ** 21
#: Fraction of valid pixels allowed to be non-integer (beyond 1e-3 of a count) for the data to
#: count as photon counts.
MAX_NON_INTEGER = 1e-3


@dataclass(frozen=True)
class NoiseFloor:
    """Expected value and standard deviation of the error metric at the true object and probe.

    relative : Σ f(λ_p) / Σ I, the floor of ``Run.errors`` (dimensionless).
    sigma    : √(Σ v(λ_p)) / Σ I, its standard deviation from the Poisson noise.
    per_pixel: Σ f(λ_p) / n_pixels, the mean floor per valid detector pixel (≈ 0.25 at high counts).
    n_pixels : valid detector pixels over all frames.
    counts   : Σ I, photons on valid pixels over all frames.
    systematic : relative uncertainty of ``relative`` from the estimate of the low-count pixels'
               λ: 4 % of the share of the floor those pixels carry (the largest deviation
               measured on the test patterns was 3.5 %, at 0.1 counts per pixel).
    """

    relative: float
    sigma: float
    per_pixel: float
    n_pixels: int
    counts: float
    systematic: float = 0.0


def poisson_amplitude_moments(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean f(λ) and variance v(λ) of (√N − √λ)² for N ~ Poisson(λ).

    Parameters
    ----------
    lam : (k,) float
        Mean counts, ≥ 0.

    Returns
    -------
    f, v : (k,) float64
        ``E[(√N − √λ)²]`` and ``Var[(√N − √λ)²]``: below 64 counts sums over N up to
        λ + 12√λ + 40 (the Poisson tail beyond is below 1e-15); above, the expansions
        1/4 + 7/(64 λ) and 1/8 + 0.2/λ (within 1e-4 of the sums at λ = 64).

    Examples
    --------
    >>> f, v = poisson_amplitude_moments(np.array([1.0, 1000.0]))
    >>> [round(float(x), 4) for x in f]
    [0.4536, 0.2501]
    """
    from scipy.special import gammaln

    lam = np.asarray(lam, np.float64).ravel()
    f = 0.25 + 7.0 / (64.0 * np.maximum(lam, PLUGIN_COUNTS))  # λ ≥ 64: the expansion, within 1e-4
    v = 0.125 + 0.2 / np.maximum(lam, PLUGIN_COUNTS)
    small = lam < PLUGIN_COUNTS
    if small.any():
        lo = lam[small]
        top = int(np.ceil(lo.max() + 12 * np.sqrt(lo.max()) + 40))
        n = np.arange(top + 1, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = n[None] * np.log(lo[:, None]) - lo[:, None] - gammaln(n + 1)[None]
        p = np.where(lo[:, None] > 0, np.exp(logp), (n[None] == 0).astype(np.float64))
        d2 = (np.sqrt(n)[None] - np.sqrt(lo)[:, None]) ** 2
        f[small] = np.sum(p * d2, axis=1)
        v[small] = np.maximum(np.sum(p * d2 * d2, axis=1) - f[small] ** 2, 0.0)
    return f, v


def _posterior_moments(hist: np.ndarray, iterations: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means of f(λ) and v(λ) given N = n for n = 0 .. len(hist) − 1, under the
    mixing distribution of λ fitted to ``hist`` (pixels with these counts) by EM on a grid."""
    from scipy.special import gammaln

    top = len(hist)
    grid = np.concatenate([[0.0], np.geomspace(1e-3, 2.0 * top, 100)])
    n = np.arange(top, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = n[None] * np.log(grid[:, None]) - grid[:, None] - gammaln(n + 1)[None]
    like = np.where(grid[:, None] > 0, np.exp(logp), (n[None] == 0).astype(np.float64))  # (grid, n)
    like /= np.maximum(like.sum(axis=1, keepdims=True), 1e-300)  # truncated to N < top
    weights = np.full(len(grid), 1.0 / len(grid))
    total = float(hist.sum())
    # EM: the posterior of grid point g for count n is w_g·like_gn / Σ_g' w_g'·like_g'n, and the
    # new weight of g is its posterior summed over the pixels. Two matrix–vector products per
    # step, not the (grid, n) posterior itself: 2000 steps take ~10 ms instead of ~40 (this runs
    # for every reconstruction before its first iteration)
    hist_share = hist / total
    for _ in range(iterations):
        weights = weights * (like @ (hist_share / np.maximum(weights @ like, 1e-300)))
    f, v = poisson_amplitude_moments(grid)
    norm = np.maximum(weights @ like, 1e-300)
    return ((f * weights) @ like) / norm, ((v * weights) @ like) / norm


def amplitude_floor(amplitude: np.ndarray, valid: np.ndarray | None = None) -> NoiseFloor | None:
    """The Poisson floor of the error metric for the measured data (module docstring).

    Parameters
    ----------
    amplitude : (n_frames, ny, nx) float
        √ of the measured counts (the solvers' ``FarFieldModel.amplitude``), any pixel order.
    valid : (ny, nx) bool or float, optional
        Valid detector pixels (non-zero); None: all.

    Returns
    -------
    NoiseFloor, or None when the data are not photon counts (more than ``MAX_NON_INTEGER`` of
    the valid pixels are not integers) or hold no photons.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> counts = rng.poisson(200.0, size=(4, 64, 64))
    >>> floor = amplitude_floor(np.sqrt(counts))
    >>> round(floor.per_pixel, 3)
    0.251
    """
    a = np.asarray(amplitude)
    if a.ndim != 3:
        raise ValueError(f"amplitude must be (n_frames, ny, nx), got shape {a.shape}")
    # every k-th frame when the data are large: the floor is a sum of per-pixel terms, and
    # 2²¹ pixels estimate its relative value to ~0.1 % (the star's 516 frames of 128²: k = 5)
    n_valid = a.shape[1] * a.shape[2] if valid is None else int(np.count_nonzero(valid))
    stride = max(1, int(np.ceil(a.shape[0] * n_valid / MAX_PIXELS)))
    sub = a[::stride]
    sel = sub if valid is None else sub[:, np.asarray(valid) != 0]
    counts = np.square(sel, dtype=np.float32).ravel()
    if counts.size == 0:
        return None
    if not _integers(counts):
        return None
    rounded = np.rint(counts)
    total = float(rounded.sum(dtype=np.float64))
    if total <= 0:
        return None
    # pixels of PLUGIN_COUNTS counts or more: f(N) and v(N) summed directly (within 1e-4 of f(λ));
    # a histogram of every count value would be as long as the brightest pixel's count (10⁸ counts
    # in a pixel: 4.1 GB and 3.8 s before the first iteration, session 35)
    high = rounded >= PLUGIN_COUNTS
    inv = float(np.sum(1.0 / rounded[high].astype(np.float64)))
    n_high = int(np.count_nonzero(high))
    f_sum = 0.25 * n_high + 7.0 / 64.0 * inv
    v_sum = 0.125 * n_high + 0.2 * inv
    # pixels per count value below PLUGIN_COUNTS (the histogram _posterior_moments fits)
    low = np.bincount(rounded[~high].astype(np.int64), minlength=PLUGIN_COUNTS).astype(np.float64)
    low_sum = 0.0
    if low.sum() > 0:
        f_low, v_low = _posterior_moments(low)
        low_sum = float(low @ f_low)
        f_sum += low_sum
        v_sum += float(low @ v_low)
    scale = a.shape[0] / sub.shape[0]  # the sums of the whole data, from the frames taken
    f_sum, v_sum, low_sum, total = f_sum * scale, v_sum * scale, low_sum * scale, total * scale
    return NoiseFloor(relative=f_sum / total, sigma=float(np.sqrt(v_sum)) / total,
                      per_pixel=f_sum / (counts.size * scale), n_pixels=round(counts.size * scale), counts=total,
                      systematic=0.04 * low_sum / max(f_sum, 1e-300))


def dose_summary(amplitude: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """Mean count per valid detector pixel, and the share of the counts in a flat background.

    Parameters
    ----------
    amplitude : (n_frames, ny, nx) float
        √ of the measured counts, any pixel order.
    valid : (ny, nx) bool or float, optional
        Valid detector pixels (non-zero); None: all.

    Returns
    -------
    mean_counts : float
        Photons per valid pixel and frame.
    background_share : float in [0, 1]
        The mean count of the dimmest quarter of the valid pixels of the mean diffraction
        pattern, times the number of valid pixels, over the total: the share of the counts a
        background as bright as the pattern's darkest region would explain. A probe's far field
        (a zone plate's cone, a pinhole's Airy pattern, a Gaussian) leaves that quarter nearly
        dark: ≤ 0.04 on every scan of the regime matrix without background, 0.29 with 2 photons
        per pixel at 10⁴ photons per frame of 64².

    Examples
    --------
    >>> frames = np.zeros((2, 8, 8)); frames[:, 3:5, 3:5] = 100.0
    >>> dose_summary(np.sqrt(frames))
    (6.25, 0.0)
    >>> round(dose_summary(np.sqrt(frames + 5.0))[1], 3)  # 5 of the 11.25 counts per pixel
    0.444
    """
    a = np.asarray(amplitude)
    if a.ndim != 3:
        raise ValueError(f"amplitude must be (n_frames, ny, nx), got shape {a.shape}")
    mean = np.mean(np.square(a, dtype=np.float64), axis=0)
    if valid is not None:
        mean = mean[np.asarray(valid) != 0]
    mean = mean.ravel()
    if mean.size == 0 or mean.sum() <= 0:
        return 0.0, 0.0
    dim = float(np.mean(np.sort(mean)[: max(1, mean.size // 4)]))
    return float(mean.mean()), float(min(1.0, dim * mean.size / mean.sum()))


def dim_background(amplitude: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float, float]:
    """How much of the dimmest detector pixels' counts a constant background explains.

    The dimmest quarter of the valid pixels (by their mean count over the frames) is where a
    detector background shows: a probe's far field leaves it nearly dark. Its counts are modelled
    per pixel as a constant background ``b`` (Poisson: variance = mean over the frames) plus the
    object's diffraction, which changes from frame to frame as the probe moves over the object;
    speckle of that kind has intensity statistics with a contrast of one (its variance over the
    frames is its mean squared). Per pixel, then, ``var − mean = s̄²`` (``s̄`` the diffraction's
    mean count) and ``b = mean − s̄``. Averaged over the quarter (``var − mean`` first, so that the
    square root is taken of an average, not of each pixel's noisy estimate):

        background = mean − √max(⟨var − mean⟩, 0)

    Where the quarter holds few counts the two cannot be told apart: for a constant background
    ``var − mean`` averages to 0 with a standard error of ``√(2⟨mean²⟩ / (n P))`` (n frames, P
    pixels; Poisson moments), for diffraction alone it averages to ``⟨mean²⟩``. Their separation in
    standard errors, ``√(⟨mean²⟩ n P / 2)``, is returned too: 0.7 on 36 frames of 32² with 0.01
    counts in the dim quarter (not told apart), 45 on the demo's scans (0.27 counts, 54 frames of
    64²).

    Parameters
    ----------
    amplitude : (n_frames, ny, nx) float
        √ of the measured counts, any pixel order.
    valid : (ny, nx) bool or float, optional
        Valid detector pixels (non-zero); None: all.

    Returns
    -------
    dim_counts : float
        Mean count per pixel and frame of the dimmest quarter of the valid pixels.
    background_fraction : float in [0, 1]
        The share of those counts explained by a constant background (0 where they are all
        diffraction, or where the quarter holds no count at all; 1 where they are constant).
    separation : float
        How many standard errors apart the two extremes (all background, all diffraction) are
        on these data; below about 3 the fraction says little. 0 (and the fraction 0) where the
        frames are not photon counts (more than ``MAX_NON_INTEGER`` of the dim pixels' values
        are not whole numbers: scaled or normalised data, whose variance says nothing).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> flat = rng.poisson(0.3, (50, 16, 16)).astype(float)      # a background alone
    >>> m, fraction, separation = dim_background(np.sqrt(flat))
    >>> round(fraction, 1), separation > 3
    (1.0, True)
    >>> speckle = rng.poisson(rng.exponential(0.3, (50, 16, 16))).astype(float)  # diffraction alone
    >>> dim_background(np.sqrt(speckle))[1] < 0.3
    True
    >>> dim_background(np.sqrt(0.37 * flat))[1:]  # not counts: nothing can be told
    (0.0, 0.0)
    """
    a = np.asarray(amplitude)
    if a.ndim != 3 or a.shape[0] < 2:
        raise ValueError(f"amplitude must be (n_frames ≥ 2, ny, nx), got shape {a.shape}")
    n = a.shape[0]
    flat = a.reshape(n, -1)
    pixels = np.arange(flat.shape[1]) if valid is None else np.flatnonzero(np.asarray(valid).ravel() != 0)
    if pixels.size == 0:
        return 0.0, 0.0, 0.0
    # in blocks of frames: no float64 copy of the whole scan (1,000 frames of 256² would be 0.5 GB)
    total = np.zeros(pixels.size)
    for k in range(0, n, _BLOCK):
        total += np.square(flat[k:k + _BLOCK][:, pixels], dtype=np.float64).sum(axis=0)
    mean = total / n
    dim = pixels[np.argsort(mean, kind="stable")[: max(1, pixels.size // 4)]]
    s1 = np.zeros(dim.size)
    s2 = np.zeros(dim.size)
    counts = True
    for k in range(0, n, _BLOCK):
        c = np.square(flat[k:k + _BLOCK][:, dim], dtype=np.float64)
        counts = counts and _integers(c)
        s1 += c.sum(axis=0)
        s2 += np.square(c).sum(axis=0)
    if not counts:  # the variance test needs photon counts (Poisson: variance = mean)
        return float(s1.mean() / n), 0.0, 0.0
    m_pix = s1 / n
    m = float(m_pix.mean())
    if m <= 0:
        return 0.0, 0.0, 0.0
    var = (s2 - n * m_pix ** 2) / (n - 1)
    excess = float(np.mean(var - m_pix))
    fraction = float(np.clip((m - np.sqrt(max(excess, 0.0))) / m, 0.0, 1.0))
    separation = float(np.sqrt(np.mean(m_pix ** 2) * n * dim.size / 2))
    return m, fraction, separation


def _integers(counts: np.ndarray) -> bool:
    """True when at most ``MAX_NON_INTEGER`` of ``counts`` (float) are not whole numbers."""
    rounded = np.rint(counts)
    non_integer = np.count_nonzero(np.abs(counts - rounded) > 1e-3 * np.maximum(rounded, 1))
    return non_integer <= MAX_NON_INTEGER * counts.size


#: Frames per block in ``dim_background``'s sums.
_BLOCK = 64
