"""Particle segmentation benchmark: accuracy and cost on simulated paper-preset fields.

1. Accuracy: three ``plate_sample`` fields of the paper preset (151 x 129 x 257 voxels of 6.7 nm,
   80 plates each), density = occupancy blurred by 0.7 voxel + 5 % noise; plates matched one to
   one at IoU >= 0.5, for the full method and for connected components only (``split=False``).
2. Cost: wall time and peak memory of ``segment`` on one field and on a 2 x 2 tiling of it
   (302 x 129 x 514 voxels, 20 M, 320 plates), in one process. Peak memory is measured with
   tracemalloc (NumPy allocations) and reported relative to the float32 input volume.

Usage::

    .venv/bin/python benchmarks/particles.py      # ~1 min on 2 shared cores
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
from scipy import ndimage

from chemtomo.particles import match_labels, measure, segment
from chemtomo.simulate import plate_sample

VOXEL_M = 6.7e-9
RESOLUTION_M = 11e-9


def field(seed):
    s = plate_sample((151, 129, 257), VOXEL_M, n_particles=80, soc=0.162, seed=seed)
    rng = np.random.default_rng(seed)
    density = ndimage.gaussian_filter(s.occupancy, 0.7) + 0.05 * rng.standard_normal(s.shape).astype(np.float32)
    return density.astype(np.float32), s


def accuracy() -> None:
    print("accuracy (3 paper-preset fields, 240 plates):")
    totals = {True: [0, 0], False: [0, 0]}
    for seed in range(3):
        density, s = field(seed)
        for split in (True, False):
            labels = segment(density, VOXEL_M, resolution_m=RESOLUTION_M, split=split)
            m = match_labels(labels, s.labels)
            totals[split][0] += m.n_matched
            totals[split][1] += int(labels.max())
    for split, (matched, found) in totals.items():
        name = "watershed + stack split" if split else "connected components"
        print(f"  {name:26s} matched {matched}/240, found {found}")


def cost() -> None:
    density, _ = field(0)
    big = np.tile(density, (2, 1, 2))
    for name, vol in (("paper field 5.0 M voxels", density), ("2x2 tiling 20 M voxels", big)):
        tracemalloc.start()
        t = time.perf_counter()
        labels = segment(vol, VOXEL_M, resolution_m=RESOLUTION_M)
        seconds = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        t = time.perf_counter()
        table = measure(labels, vol, VOXEL_M)
        measure_s = time.perf_counter() - t
        print(f"  {name}: segment {seconds:.1f} s, {labels.max()} particles, peak extra memory "
              f"{peak / 2**20:.0f} MiB = {peak / vol.nbytes:.2f} x the float32 input; "
              f"measure {measure_s:.2f} s for {len(table)} rows")


if __name__ == "__main__":
    accuracy()
    print("cost (one process, machine shared with other jobs):")
    cost()
