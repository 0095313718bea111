"""A lone plate is one particle, whatever its size, shape, orientation, offset and the machine.

Property-style checks of ``segment`` on single plates (issue 13: 8 x 8 x 5 and 8 x 3 x 8 boxes
came back cut in two on some machines): the in-plane column grid of the stacked-plate split
depended on which eigenvectors LAPACK returned for a square plate and on how half-integer
coordinates rounded. Every case is a small volume (< 40^3), so the whole file runs in seconds.
"""

import numpy as np
import pytest
from particle_plates import VOXEL_M
from scipy import ndimage
from scipy.spatial.transform import Rotation

from chemtomo.particles import segment
from chemtomo.particles.layers import split_stacked

RESOLUTION_M = 11e-9  # the paper's FSC resolution
BLUR_PX, NOISE = 0.7, 0.05  # the simulated reconstructions' blur and noise (particle tests)


def plate_volume(size, rot, offset):
    """Bool volume of one box (edge lengths ``size`` along the columns of ``rot``), centred in a
    cube with 3 voxels of margin and shifted by ``offset`` voxels."""
    size = np.asarray(size, float)
    n = int(2 * np.ceil(0.5 * np.linalg.norm(size) + 3)) + 1
    centre = (n - 1) / 2 + np.asarray(offset, float)
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    local = (grid - centre) @ rot
    # 1e-9 voxel: faces lying exactly on voxel centres are inside, independent of float noise
    return np.all(np.abs(local) <= 0.5 * size + 1e-9, axis=1).reshape(n, n, n)


def about(axis, deg):
    return Rotation.from_rotvec(np.radians(deg) * np.eye(3)[axis]).as_matrix()


def lone_plates():
    """(name, size, rot, offset): 9 aspect ratios x 2 widths (even and odd) x orientations."""
    rng = np.random.default_rng(13)
    cases = []
    for ratio in np.arange(0.1, 0.95, 0.1):
        for width in (8, 9) if ratio >= 0.25 else (20, 21):  # thickness >= 2 voxels
            thickness = max(2, round(ratio * width))
            length = width + int(rng.integers(0, 4))
            size = (length, width, thickness)
            perm = np.eye(3)[:, rng.permutation(3)]  # axis-aligned, thin axis on a random grid axis
            cases.append((f"aligned {size} t/w={ratio:.1f}", size, perm, np.zeros(3)))
            cases.append((f"aligned+offset {size}", size, perm, rng.uniform(-0.5, 0.5, 3)))
            # in-plane turn by 30 deg: the orientation whose column grid left holes
            cases.append((f"turned 30 {size}", size, about(2, 30.0), rng.uniform(-0.5, 0.5, 3)))
            rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
            cases.append((f"random {size}", size, rot, rng.uniform(-0.5, 0.5, 3)))
    # the issue's two boxes and one exactly on the plate-likeness bound (7 = 0.7 x 10), each
    # thin axis on each grid axis
    for size in ((8, 8, 5), (8, 8, 3), (10, 10, 7)):
        for k in range(3):
            cases.append((f"issue box {size} thin axis {k}", size, np.roll(np.eye(3), k, axis=0), np.zeros(3)))
    return cases


@pytest.mark.parametrize("noisy", [False, True], ids=["noise-free", "noisy"])
def test_every_lone_plate_is_one_label(noisy):
    rng = np.random.default_rng(1)
    wrong = []
    for name, size, rot, offset in lone_plates():
        occupancy = plate_volume(size, rot, offset).astype(np.float32)
        if noisy:
            density = ndimage.gaussian_filter(occupancy, BLUR_PX)
            density += NOISE * rng.standard_normal(density.shape).astype(np.float32)
            labels = segment(density, VOXEL_M, resolution_m=RESOLUTION_M)
        else:
            labels = segment(occupancy, VOXEL_M, threshold=0.5, resolution_m=RESOLUTION_M)
        if labels.max() != 1:
            wrong.append((name, int(labels.max())))
    # no tolerance: a plate is one particle; every case is listed when one fails
    assert wrong == []


def test_the_issues_sequential_labels_case_gives_four_plates():
    # issue 13: four 8 x 8 x 5 plates came back as eight labels of 160 voxels on another machine
    d = np.zeros((16, 16, 32), np.float32)
    for k in range(4):
        d[4:12, 4:12, 1 + 8 * k:6 + 8 * k] = 1.0
    labels = segment(d, VOXEL_M, threshold=0.5)
    assert np.bincount(labels.ravel())[1:].tolist() == [320] * 4


def test_split_does_not_depend_on_the_eigenvectors_the_solver_returns(monkeypatch):
    # Emulate another LAPACK build: any orthonormal pair for the (near-)degenerate in-plane
    # eigenvalues and 1e-13 noise on the normal. The labels must not change at all.
    boxes = [plate_volume(size, rot, off) for _, size, rot, off in lone_plates()[::5]]
    stack = np.zeros((20, 10, 24), bool)
    stack[2:17, 2:5, 2:14] = True
    stack[4:18, 5:8, 8:22] = True
    regions = boxes + [stack]
    reference = [split_stacked(r, min_area_px=8.5) for r in regions]
    real_eigh = np.linalg.eigh
    rng = np.random.default_rng(7)

    def other_machine(matrix):
        values, vectors = real_eigh(matrix)
        turn = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(turn), np.sin(turn)
        vectors = vectors.copy()
        vectors[:, :2] = vectors[:, :2] @ np.array([[c, -s], [s, c]]) * rng.choice([-1, 1])
        vectors[:, 2] = rng.choice([-1, 1]) * (vectors[:, 2] + 1e-13 * rng.standard_normal(3))
        return values, vectors

    monkeypatch.setattr(np.linalg, "eigh", other_machine)
    for region, ref in zip(regions, reference):
        assert np.array_equal(split_stacked(region, min_area_px=8.5), ref)
    assert reference[-1].max() == 2  # the stack is still split under either solver


@pytest.mark.parametrize("noisy", [False, True], ids=["noise-free", "noisy"])
@pytest.mark.parametrize("turn_deg", [0.0, 30.0, 55.0])
def test_plates_stacked_face_on_face_still_split(noisy, turn_deg):
    # two 15 x 12 x 3 plates, the upper one shifted by 6 and 4 voxels in the plane, the pair
    # turned about the stacking axis: the stack split must find both whatever the in-plane turn
    n = 40
    rot = about(1, turn_deg)
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) - (n - 1) / 2
    truth = np.zeros(n**3, np.int32)
    for k, (shift, z) in enumerate((((-3.0, -2.0), -1.5), ((3.0, 2.0), 1.5)), start=1):
        local = grid @ rot - np.array([shift[0], z, shift[1]])
        truth[np.all(np.abs(local) <= np.array([7.5, 1.5, 6.0]) + 1e-9, axis=1) & (truth == 0)] = k
    truth = truth.reshape(n, n, n)
    occupancy = (truth > 0).astype(np.float32)
    if noisy:
        density = ndimage.gaussian_filter(occupancy, BLUR_PX)
        density += NOISE * np.random.default_rng(2).standard_normal(density.shape).astype(np.float32)
        labels = segment(density, VOXEL_M, resolution_m=RESOLUTION_M)
    else:
        labels = segment(occupancy, VOXEL_M, threshold=0.5, resolution_m=RESOLUTION_M)
    assert labels.max() == 2
    # each found plate is mostly one true plate: the interface is placed from the plates' own
    # thickness (within a voxel), and the blur adds at most a voxel shell: IoU well above 0.5
    for k in (1, 2):
        found = np.bincount(labels[truth == k], minlength=3)[1:]
        assert found.max() >= 0.7 * (truth == k).sum()
    assert np.unique([np.bincount(labels[truth == k], minlength=3)[1:].argmax() for k in (1, 2)]).size == 2
