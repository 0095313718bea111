"""Otsu's threshold (chem/_otsu.py): bimodal rows, and blocks of values that give the same bits."""

import numpy as np
import pytest

from chemtomo.chem import _otsu
from chemtomo.chem._otsu import otsu_thresholds


def _whole_rows(values, nbins=256):
    """The threshold from whole-row steps (the implementation before the blocks), as reference."""
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    finite = np.isfinite(x)
    lo = np.min(np.where(finite, x, np.inf), axis=1)
    hi = np.max(np.where(finite, x, -np.inf), axis=1)
    empty = ~np.isfinite(lo)
    lo, hi = np.where(empty, 0.0, lo), np.where(empty, 0.0, hi)
    span = np.where(hi > lo, hi - lo, 1.0)
    idx = np.clip(((np.where(finite, x, lo[:, None]) - lo[:, None]) / span[:, None] * nbins).astype(np.int64),
                  0, nbins - 1)
    hist = np.bincount((idx + np.arange(n)[:, None] * nbins)[finite], minlength=n * nbins).reshape(n, nbins)
    hist = hist.astype(np.float64)
    centres = lo[:, None] + (np.arange(nbins) + 0.5)[None, :] * (span[:, None] / nbins)
    w0 = np.cumsum(hist, axis=1)
    w1 = w0[:, -1:] - w0
    m0 = np.cumsum(hist * centres, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[:, -1:] - m0) / w1) ** 2
    k = np.argmax(np.where(np.isfinite(between), between, -1.0), axis=1)
    return np.where(hi > lo, lo + (k + 1) * span / nbins, lo)


def test_threshold_between_two_populations():
    # two Gaussian populations at 0 and 1 (σ 0.1): the threshold falls between them, within a bin
    # width (of a ~1.8-wide range over 256 bins) of the midpoint, where both densities are ~e^-12
    rng = np.random.default_rng(0)
    row = np.concatenate([rng.normal(0, 0.1, 5000), rng.normal(1, 0.1, 3000)])
    t = otsu_thresholds(row[None])[0]
    assert 0.3 < t < 0.7
    assert np.mean(row[:5000] <= t) > 0.999 and np.mean(row[5000:] > t) > 0.999


@pytest.mark.parametrize("block", [7, 1000, 1 << 30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_give_the_whole_rows_bits(monkeypatch, block, dtype):
    """Values binned a block at a time (7 values: blocks of one column over 3 rows, and ragged
    ends) give the same minima, maxima and counts, so the same thresholds to the bit, with
    non-finite values, a constant row and an all-NaN row among them."""
    monkeypatch.setattr(_otsu, "BLOCK_VALUES", block)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (5, 4001)), rng.normal(3, 0.5, (5, 3000))], axis=1).astype(dtype)
    x[1, ::97] = np.nan
    x[2, 5] = np.inf
    x[3] = 2.5
    x[4] = np.nan
    np.testing.assert_array_equal(otsu_thresholds(x), _whole_rows(x))
    dense = x[:1]  # every value finite: the path without masks
    np.testing.assert_array_equal(otsu_thresholds(dense), _whole_rows(dense))
