"""split_stacked: two plates lying one on the other are separated; single plates are not split."""

import numpy as np
import pytest
from particle_plates import _box
from scipy.spatial.transform import Rotation

from chemtomo.particles.layers import split_stacked


def test_offset_stack_of_two_boxes_is_split_at_the_interface():
    region = np.zeros((20, 10, 24), bool)
    region[2:17, 2:5, 2:14] = True   # lower plate, 15 × 3 × 12 = 540 voxels
    region[4:18, 5:8, 8:22] = True   # upper plate on it, 14 × 3 × 14 = 588 voxels
    parts = split_stacked(region)
    assert parts.max() == 2
    sizes = sorted(np.bincount(parts.ravel())[1:].tolist())
    # the interface is placed from each plate's own thickness: within a few voxels of exact
    assert abs(sizes[0] - 540) <= 10 and abs(sizes[1] - 588) <= 10
    assert (parts[2:17, 2:5, 2:8] == parts[5, 3, 3]).all()  # lower-only part in one piece
    assert parts[5, 3, 3] != parts[10, 6, 20]


def test_small_plate_lying_inside_a_large_ones_footprint_is_split():
    region = np.zeros((24, 10, 24), bool)
    region[2:22, 2:5, 2:22] = True   # large lower plate 20 × 3 × 20
    region[8:16, 5:8, 8:16] = True   # small upper plate 8 × 3 × 8 = 192 voxels
    parts = split_stacked(region)
    assert parts.max() == 2
    # the upper plate's outermost ring of columns has blurred (intermediate) top heights and
    # may go to the lower plate: at most (8² − 6²) × 3 = 84 voxels lost (measured: 15)
    small = np.bincount(parts.ravel())[1:].min()
    assert 192 - 84 <= small <= 192


@pytest.mark.parametrize("seed", range(6))
def test_single_rotated_plate_stays_whole(seed):
    rot = Rotation.random(random_state=seed).as_matrix()
    region = _box((40, 40, 40), np.array([20.0, 20.0, 20.0]), rot, (15, 12, 3))
    parts = split_stacked(region)
    # at most a sliver of rasterisation noise (merged later by segment's minimum size)
    assert np.bincount(parts.ravel())[1:].max() >= region.sum() - 3


def test_a_cube_is_not_plate_like_and_stays_whole():
    region = np.zeros((12, 12, 12), bool)
    region[2:10, 2:10, 2:10] = True
    assert split_stacked(region).max() == 1
