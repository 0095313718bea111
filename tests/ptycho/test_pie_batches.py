"""PIE's batches grouped by sub-pixel shift bin (``pie.pie_batches``, ``PIEOptions.group_bins``)."""

from __future__ import annotations

import numpy as np

from chemtomo.ptycho.pie import pie_batches


def test_batches_grouped_by_bin_hold_every_frame_once_and_few_bins_each():
    rng = np.random.default_rng(0)
    n, n_batches = 196, 10
    kb = rng.integers(0, 16, n)  # a jittered scan: 16 sub-pixel bins, about 12 frames each
    order = rng.permutation(n)
    batches = pie_batches(order, kb, n_batches, np.random.default_rng(1))
    assert len(batches) == n_batches
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    # consecutive pieces of a bin-sorted sequence: each bin boundary adds at most one (batch, bin)
    # pair to one per batch; random batches of 20 frames would hold about 12 bins each (~120 pairs)
    pairs = sum(len(np.unique(kb[b])) for b in batches)
    assert pairs <= n_batches + len(np.unique(kb)) - 1
    # within a bin the frames keep their random order
    for b in batches:
        for k in np.unique(kb[b]):
            members = b[kb[b] == k]
            pos = np.argsort(order)[members]
            assert np.all(np.diff(pos) > 0)
    # deterministic for a given generator
    again = pie_batches(order, kb, n_batches, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_a_scan_on_whole_pixels_keeps_random_batches_and_draws_nothing():
    order = np.random.default_rng(0).permutation(50)
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    batches = pie_batches(order, np.zeros(50, np.int64), 5, rng)
    assert all(np.array_equal(a, b) for a, b in zip(batches, np.array_split(order, 5)))
    assert rng.bit_generator.state == state
