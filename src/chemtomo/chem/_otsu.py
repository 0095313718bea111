"""Otsu's threshold, vectorised over rows (one threshold per image of a stack)."""

from __future__ import annotations

import numpy as np

__all__ = ["otsu_thresholds"]

#: Values (over all rows) that :func:`otsu_thresholds` bins at a time. One row of 12.6 million
#: float32 values (a volume's densities) took 0.36–1.2 s in whole-row steps, each a fresh
#: temporary of 100 MB, and takes 0.07 s in blocks of 2¹⁶–2¹⁸ (0.14 s at 2²²): the same minima,
#: maxima and counts, so the same threshold to the bit (tests/chem/test_otsu.py).
BLOCK_VALUES = 1 << 18


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
    x = np.asarray(values)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    n, m = x.shape
    # a few values at a time (``BLOCK_VALUES``): the same minima, maxima and bin counts as over
    # whole rows, without whole-row temporaries
    step = max(1, BLOCK_VALUES // max(n, 1))
    blocks = [(a, min(m, a + step)) for a in range(0, m, step)]
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    for a, b in blocks:
        xb = x[:, a:b]
        fb = np.isfinite(xb)
        dense = bool(fb.all())
        lo = np.minimum(lo, np.min(xb if dense else np.where(fb, xb, np.inf), axis=1))
        hi = np.maximum(hi, np.max(xb if dense else np.where(fb, xb, -np.inf), axis=1))
    empty = ~np.isfinite(lo)
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, 0.0, hi)
    span = np.where(hi > lo, hi - lo, 1.0)
    hist = np.zeros(n * nbins, np.int64)
    rows = np.arange(n, dtype=np.int64)[:, None] * nbins
    for a, b in blocks:
        xb = x[:, a:b]
        fb = np.isfinite(xb)
        dense = bool(fb.all())
        # each value's bin: (x − lo) / span · nbins in double precision, truncated and clipped
        u = (xb if dense else np.where(fb, xb, lo[:, None])) - lo[:, None]
        u /= span[:, None]
        u *= nbins
        idx = u.astype(np.int64)
        np.clip(idx, 0, nbins - 1, out=idx)
        idx += rows
        hist += np.bincount(idx.ravel() if dense else idx[fb], minlength=n * nbins)
    hist = hist.reshape(n, nbins).astype(np.float64)
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
