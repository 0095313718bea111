"""Otsu's threshold, vectorised over rows (one threshold per image of a stack)."""

from __future__ import annotations

import numpy as np

__all__ = ["otsu_thresholds"]


def otsu_thresholds(values: np.ndarray, nbins: int = 256) -> np.ndarray:
    """Otsu threshold of each row of ``values`` (non-finite entries ignored).

    Parameters
    ----------
    values : (n_rows, n_values) float
    nbins : histogram bins per row

    Returns
    -------
    thresholds : (n_rows,) float64
        The bin edge that maximises the between-class variance of the row's histogram; values
        above it form the bright class. A constant row returns its value.

    References
    ----------
    N. Otsu, IEEE Trans. Syst. Man Cybern. 9, 62 (1979).
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    finite = np.isfinite(x)
    dense = bool(finite.all())  # the usual case: no masking copies (the same histogram)
    if dense:
        lo, hi = np.min(x, axis=1), np.max(x, axis=1)
    else:
        lo = np.min(np.where(finite, x, np.inf), axis=1)
        hi = np.max(np.where(finite, x, -np.inf), axis=1)
    empty = ~np.isfinite(lo)
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, 0.0, hi)
    span = np.where(hi > lo, hi - lo, 1.0)
    # each value's bin, formed in place: (x − lo) / span · nbins, truncated and clipped
    u = x - lo[:, None] if dense else np.where(finite, x, lo[:, None]) - lo[:, None]
    u /= span[:, None]
    u *= nbins
    idx = u.astype(np.int64)
    del u
    np.clip(idx, 0, nbins - 1, out=idx)
    idx += np.arange(n, dtype=np.int64)[:, None] * nbins
    flat = idx.ravel() if dense else idx[finite]
    hist = np.bincount(flat, minlength=n * nbins).reshape(n, nbins).astype(np.float64)
    centres = lo[:, None] + (np.arange(nbins) + 0.5)[None, :] * (span[:, None] / nbins)
    w0 = np.cumsum(hist, axis=1)
    w1 = w0[:, -1:] - w0
    m0 = np.cumsum(hist * centres, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu0 = m0 / w0
        mu1 = (m0[:, -1:] - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.where(np.isfinite(between), between, -1.0)
    k = np.argmax(between, axis=1)
    threshold = lo + (k + 1) * span / nbins
    return np.where(hi > lo, threshold, lo)
