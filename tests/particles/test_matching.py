"""match_labels: one-to-one IoU matching, independent of label numbering."""

import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.particles import match_labels


def test_permuted_labels_match_perfectly():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, size=(8, 8, 8)).astype(np.int32)
    perm = np.array([0, 5, 3, 1, 2, 4], np.int32)
    m = match_labels(perm[truth], truth)
    assert m.n_matched == 5 and np.all(m.iou == 1.0)
    assert np.array_equal(perm[m.truth], m.found)


def test_a_merged_pair_matches_only_the_larger_part():
    truth = np.zeros((4, 4, 10), np.int32)
    truth[..., :6] = 1
    truth[..., 6:] = 2
    found = (truth > 0).astype(np.int32)
    m = match_labels(found, truth)
    # IoU(merged, 1) = 6/10 ≥ 0.5 matches; IoU(merged, 2) = 4/10 does not
    assert m.n_matched == 1 and m.truth.tolist() == [1] and m.unmatched_truth.tolist() == [2]
    assert m.iou[0] == pytest.approx(0.6)


def test_shape_mismatch_is_named():
    with pytest.raises(InputError, match="found has shape"):
        match_labels(np.zeros((2, 2, 2), np.int32), np.zeros((2, 2, 3), np.int32))
