"""Synthetic plate samples for the particle tests: rotated boxes with known truth.

Each plate is a box of ``size_px`` voxels (length, width, thickness) rotated by a random rotation
and placed in the volume; some are pushed against a neighbour until their voxels touch (share a
face), which is the case the watershed must split. The truth is a label volume, each plate's
extents and its FePO4 fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

VOXEL_M = 6.7e-9


@dataclass(frozen=True)
class Plates:
    labels: np.ndarray        # (ny, nz, nx) int32, truth, 0 background
    density: np.ndarray       # (ny, nz, nx) float32, blurred occupancy + noise
    fraction: np.ndarray      # (ny, nz, nx) float32, FePO4 fraction, NaN outside the sample
    sizes_px: np.ndarray      # (n, 3) length, width, thickness of each plate, voxels
    fp_fraction: np.ndarray   # (n,) true FePO4 fraction of each plate
    touching: list            # pairs (a, b) of 1-based labels that touch


def _box(shape, centre, rot, size):
    """Bool volume of a rotated box (size = full edge lengths, voxels)."""
    radius = 0.5 * np.linalg.norm(size) + 1
    lo = np.maximum(np.floor(centre - radius).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, shape)
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
    local = (grid - centre) @ rot  # coordinates along the box axes (columns of rot)
    inside = np.all(np.abs(local) <= 0.5 * np.asarray(size), axis=-1)
    out = np.zeros(shape, bool)
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = inside
    return out


def make_plates(shape=(48, 48, 64), n_free=4, n_pairs=2, size_px=(15, 12, 3), seed=0,
                blur_px=0.7, noise=0.05, fraction_noise=0.08) -> Plates:
    rng = np.random.default_rng(seed)
    shape = np.asarray(shape)
    boxes: list[np.ndarray] = []
    touching = []
    occupied = np.zeros(tuple(shape), bool)

    def random_rot():
        return Rotation.random(random_state=rng.integers(2**31)).as_matrix()

    def free_spot(box):
        grown = ndimage.binary_dilation(box, iterations=3)
        return not (grown & occupied).any()

    margin = 0.5 * np.linalg.norm(size_px) + 2
    attempts = 0
    while len(boxes) < n_free + 2 * n_pairs:
        attempts += 1
        if attempts > 2000:
            raise RuntimeError("could not place the plates; enlarge the volume")
        centre = rng.uniform(margin, shape - margin)
        box_a = _box(tuple(shape), centre, random_rot(), size_px)
        if not free_spot(box_a):
            continue
        if len(boxes) < 2 * n_pairs:
            # a touching pair: push a second plate towards the first along a random direction
            rot_b = random_rot()
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            for dist in np.arange(1.0, 2 * margin, 0.25):
                box_b = _box(tuple(shape), centre + dist * direction, rot_b, size_px)
                if not (box_b & ndimage.binary_dilation(box_a)).any():
                    break
            # step back in until the plates share a face, without overlapping much
            while dist > 0:
                dist -= 0.25
                trial = _box(tuple(shape), centre + dist * direction, rot_b, size_px)
                if (trial & ndimage.binary_dilation(box_a)).any():
                    box_b = trial & ~box_a
                    break
            centre_b = centre + dist * direction
            if np.any(centre_b < margin) or np.any(centre_b > shape - margin) or not free_spot(box_b):
                continue
            if box_b.sum() < 0.95 * np.prod(size_px):
                continue
            boxes += [box_a, box_b]
            touching.append((len(boxes) - 1, len(boxes)))
            occupied |= box_a | box_b
        else:
            boxes.append(box_a)
            occupied |= box_a
    labels = np.zeros(tuple(shape), np.int32)
    for k, box in enumerate(boxes, start=1):
        labels[box & (labels == 0)] = k
    fp = rng.uniform(0.0, 0.6, len(boxes)).astype(np.float32)
    occupancy = (labels > 0).astype(np.float32)
    density = ndimage.gaussian_filter(occupancy, blur_px) + noise * rng.standard_normal(tuple(shape))
    lut = np.concatenate([[np.nan], fp]).astype(np.float32)
    fraction = lut[labels] + fraction_noise * rng.standard_normal(tuple(shape)).astype(np.float32)
    fraction = np.clip(fraction, 0, 1).astype(np.float32)
    sizes = np.sort(np.asarray(size_px, float))[::-1]
    return Plates(labels, density.astype(np.float32), fraction,
                  np.tile(sizes, (len(boxes), 1)), fp, touching)
