"""One-to-one matching of two label volumes by intersection over union (IoU).

Used to score a segmentation against simulator truth: every found particle is paired with at
most one true particle so that the total IoU is largest (Hungarian algorithm), and a pair
counts as a match when its IoU reaches ``min_iou``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..core.backend import to_numpy
from ..core.errors import InputError

__all__ = ["LabelMatch", "match_labels"]


@dataclass(frozen=True)
class LabelMatch:
    """Result of :func:`match_labels`.

    found, truth : (n_matched,) int32
        Matched label pairs: ``found[i]`` in the first volume matches ``truth[i]`` in the second.
    iou : (n_matched,) float64
        Intersection over union of each matched pair, ≥ ``min_iou``.
    unmatched_found, unmatched_truth : int32 arrays
        Labels of each volume left without a partner.
    iou_matrix : (n_found_labels, n_truth_labels) float64
        IoU of every pair of labels present (rows ``found_labels``, columns ``truth_labels``).
    found_labels, truth_labels : int32 arrays
        The nonzero labels present in each volume, in increasing order.
    """

    found: np.ndarray
    truth: np.ndarray
    iou: np.ndarray
    unmatched_found: np.ndarray
    unmatched_truth: np.ndarray
    iou_matrix: np.ndarray
    found_labels: np.ndarray
    truth_labels: np.ndarray

    @property
    def n_matched(self) -> int:
        return int(self.found.size)


def match_labels(found, truth, *, min_iou: float = 0.5) -> LabelMatch:
    """Pair the labels of two volumes one to one, maximising the total IoU.

    Parameters
    ----------
    found, truth : (ny, nz, nx) int
        Label volumes of the same shape, 0 = background.
    min_iou : float
        Smallest IoU that counts as a match, in (0, 1]. With 0.5 no label can match two others,
        so the matching is unique even before the assignment.

    Returns
    -------
    LabelMatch

    Notes
    -----
    IoU(a, b) = |a ∩ b| / |a ∪ b|. Overlaps are counted from the voxels where both volumes are
    nonzero, so the cost is one pass over the volume and an (n_found × n_truth) matrix.

    Examples
    --------
    >>> a = np.zeros((4, 4, 4), np.int32); a[:2] = 1; a[2:] = 2
    >>> m = match_labels(a, 3 - a)
    >>> m.n_matched, m.found.tolist(), m.truth.tolist()
    (2, [1, 2], [2, 1])
    """
    a = np.asarray(to_numpy(found))
    b = np.asarray(to_numpy(truth))
    if a.shape != b.shape:
        raise InputError(f"match_labels: found has shape {a.shape} but truth has shape {b.shape}; "
                         "expected the same shape")
    for name, arr in (("found", a), ("truth", b)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"match_labels: {name} must hold integer labels, got dtype {arr.dtype}")
        if arr.size and arr.min() < 0:
            raise InputError(f"match_labels: {name} has negative labels (min {arr.min()}); expected >= 0")
    if not (0 < min_iou <= 1):
        raise InputError(f"match_labels: min_iou must lie in (0, 1], got {min_iou!r}")

    a, b = a.ravel(), b.ravel()
    found_labels = np.unique(a[a > 0]).astype(np.int32)
    truth_labels = np.unique(b[b > 0]).astype(np.int32)
    size_a = np.bincount(a)[found_labels].astype(np.float64)
    size_b = np.bincount(b)[truth_labels].astype(np.float64)
    both = (a > 0) & (b > 0)
    ia = np.searchsorted(found_labels, a[both])
    ib = np.searchsorted(truth_labels, b[both])
    n_a, n_b = found_labels.size, truth_labels.size
    inter = np.bincount(ia * n_b + ib, minlength=n_a * n_b).reshape(n_a, n_b).astype(np.float64)
    iou = inter / np.maximum(size_a[:, None] + size_b[None, :] - inter, 1.0)

    rows, cols = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    good = iou[rows, cols] >= min_iou
    rows, cols = rows[good], cols[good]
    return LabelMatch(
        found=found_labels[rows], truth=truth_labels[cols], iou=iou[rows, cols],
        unmatched_found=np.setdiff1d(found_labels, found_labels[rows]).astype(np.int32),
        unmatched_truth=np.setdiff1d(truth_labels, truth_labels[cols]).astype(np.int32),
        iou_matrix=iou, found_labels=found_labels, truth_labels=truth_labels)
