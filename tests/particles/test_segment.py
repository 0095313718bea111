"""segment: touching rotated plates are split one to one, nothing is over-split, bad input fails."""

import numpy as np
import pytest
from particle_plates import VOXEL_M, make_plates

from chemtomo.core import InputError
from chemtomo.particles import match_labels, segment

RESOLUTION_M = 11e-9  # the paper's FSC resolution


@pytest.fixture(scope="module", params=[0, 3])
def plates(request):
    return make_plates(seed=request.param)


def test_touching_plates_are_split_one_to_one(plates):
    labels = segment(plates.density, VOXEL_M, resolution_m=RESOLUTION_M)
    assert labels.dtype == np.int32
    match = match_labels(labels, plates.labels)
    # every plate, the 2 touching pairs included, is found once: the scene is built so that
    # the contacts are necks (corner/edge contacts), which the seeds and the contact merge resolve
    assert labels.max() == plates.labels.max() == 8
    assert match.n_matched == 8
    # IoU below 1 only from the 0.7-voxel blur and Otsu's low threshold fattening each plate by
    # about half a voxel on a 3-voxel thickness: ≥ 0.8 leaves room for that and nothing more
    assert match.iou.min() > 0.8
    for a, b in plates.touching:
        assert a in match.truth and b in match.truth


def test_without_split_touching_pairs_stay_merged(plates):
    labels = segment(plates.density, VOXEL_M, resolution_m=RESOLUTION_M, split=False)
    # connected components only: each touching pair is one object (6 = 4 free + 2 pairs)
    assert labels.max() == 6


def test_a_single_plate_is_never_over_split():
    # a lone plate seen with heavy noise: noise bumps in the seed map must not create a second
    # particle (h-maxima, seed separation and the contact merge all guard against it)
    p = make_plates(shape=(40, 40, 40), n_free=1, n_pairs=0, seed=5, noise=0.12)
    labels = segment(p.density, VOXEL_M, resolution_m=RESOLUTION_M)
    assert labels.max() == 1


def test_small_objects_below_the_resolution_are_removed():
    d = np.zeros((24, 24, 24), np.float32)
    d[2:10, 2:10, 2:6] = 1.0      # 256 voxels: a particle
    d[18:20, 18:20, 18:20] = 1.0  # 8 voxels < a sphere of diameter 2 × 11 nm (18.5 voxels)
    labels = segment(d, VOXEL_M, resolution_m=RESOLUTION_M)
    assert labels.max() == 1 and (labels[18:20, 18:20, 18:20] == 0).all()
    # with an explicit size limit below 8 voxels both stay
    assert segment(d, VOXEL_M, min_volume_m3=4 * VOXEL_M**3).max() == 2


def test_labels_are_sequential_and_mask_restricts():
    d = np.zeros((16, 16, 32), np.float32)
    for k in range(4):
        d[4:12, 4:12, 1 + 8 * k:6 + 8 * k] = 1.0
    labels = segment(d, VOXEL_M, threshold=0.5)
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3, 4]
    mask = np.zeros(d.shape, bool)
    mask[..., :16] = True
    assert segment(d, VOXEL_M, threshold=0.5, mask=mask).max() == 2


def test_a_sample_mask_does_not_shift_the_automatic_threshold(plates):
    # the pipeline passes the chemical map's sample mask; inside it there is no background, so
    # the threshold must come from the whole volume: same labels with and without the mask
    plain = segment(plates.density, VOXEL_M, resolution_m=RESOLUTION_M)
    masked = segment(plates.density, VOXEL_M, resolution_m=RESOLUTION_M, mask=plates.density > 0.2)
    assert np.array_equal(plain > 0, masked > 0) and plain.max() == masked.max()


def test_empty_volume_gives_no_labels():
    labels = segment(np.zeros((8, 8, 8), np.float32), VOXEL_M, threshold=0.5)
    assert labels.shape == (8, 8, 8) and labels.max() == 0


def test_nan_outside_the_sample_is_background():
    d = np.full((16, 16, 16), np.nan, np.float32)
    d[4:12, 4:12, 5:9] = 1.0
    d[0, 0, 0] = 0.0
    assert segment(d, VOXEL_M).max() == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"density": np.zeros((8, 8))}, "3D volume"),
    ({"voxel_m": 0.0}, "voxel_m must be a positive"),
    ({"mask": np.ones((4, 4, 4), bool)}, "mask has shape (4, 4, 4)"),
    ({"threshold": float("nan")}, "threshold must be a finite"),
    ({"h_maximum": 1.5}, "h_maximum must lie in (0, 1)"),
    ({"density": np.full((8, 8, 8), np.nan)}, "no finite voxels"),
])
def test_bad_input_is_named(kwargs, message):
    args = {"density": np.zeros((8, 8, 8), np.float32), "voxel_m": VOXEL_M}
    args.update(kwargs)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        segment(args.pop("density"), args.pop("voxel_m"), **args)
