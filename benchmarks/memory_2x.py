"""Peak memory of the alignment and of a reconstruction block on the paper preset's data upsampled
2x per axis (projections 340x548, volume 340x548x548), measured directly. (Ptychography grows with
the scan, not with the volume: each of its tasks is one scan.)

Issue 15, target 4: a run 2x larger per axis must fit in 24 GB or stream. Reads the paper preset's
tilt series from ``benchmarks/pipeline_paper.py``'s store, upsamples them 2x in y and x (bilinear),
runs the alignment for one binned and one full iteration (every full iteration holds the same
arrays) and one reconstruction block of 16 slices (the recon and FSC stages run such blocks as
tasks), and prints each peak resident memory (this process and its children, sampled every 0.2 s).

    .venv/bin/python benchmarks/memory_2x.py      # about 2 minutes on 2 cores; not a test
"""
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import zarr
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_paper import PeakRSS
from scipy import ndimage
from chemtomo.align import ReprojectionOptions, align
from chemtomo import tomo
g = zarr.open_group(str(Path(__file__).resolve().parent / "out" / "paper" / "run.zarr" / "tiltseries"), mode="r")
with PeakRSS() as m0:
    tilts = {float(k): ndimage.zoom(np.asarray(g[k]), (1, 2, 2), order=1).astype(np.float32) for k in ["708.2", "710.2"]}
angles = np.asarray(g["708.2"].attrs["angles_deg"])
print("tilt series 2x:", tilts[708.2].shape, f"{sum(t.nbytes for t in tilts.values())/2**20:.0f} MiB; load peak {m0.peak/2**30:.2f} GiB", flush=True)
opts = ReprojectionOptions(recon_iterations=3, binned_iterations=1)
with PeakRSS() as m1:
    t0 = time.perf_counter()
    res = align(tilts, angles, reference_energy=708.2, iterations=1, algorithm="art", tol_px=0.02, options=opts)
    dt = time.perf_counter() - t0
print(f"align (1 binned + 1 full iteration) {dt:.0f} s, peak RSS {m1.peak/2**30:.2f} GiB", flush=True)
with PeakRSS() as m2:
    t0 = time.perf_counter()
    block = np.ascontiguousarray(tilts[708.2][:, :16])
    v = tomo.reconstruct(block, angles, algorithm="art", iterations=2, nonneg=True)
    dt = time.perf_counter() - t0
print(f"recon block of 16 slices of 548x548 (ART-2) {dt:.0f} s, peak RSS {m2.peak/2**30:.2f} GiB; full volume float32 {340*548*548*4/2**30:.2f} GiB per energy", flush=True)
