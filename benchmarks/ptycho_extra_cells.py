"""Cells outside the regime matrix that test the default's photons-per-frame rule where it extrapolates.

``algorithms.MID_DOSE_PHOTONS`` (3·10⁵ photons per frame) sends scans below 50 counts per pixel to
the mid-dose chain; the matrix has one such cell (10⁶ photons on 256²). This script simulates
larger frames and a dose at the threshold with ``ptycho_regimes.simulate`` (seeds 0 and 1) and
prints the OD error of ``LSQML:300``, the mid-dose chain and textbook ePIE (one core each).

Usage::

    PYTHONPATH=src python benchmarks/ptycho_extra_cells.py ["gaussian 1e6 256²" ...]

Not a test; results in benchmarks/RESULTS.md (issue 22, session 10).
"""
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import ptycho_regimes as PR

from chemtomo.core.fft import one_core
from chemtomo.ptycho import reconstruct

warnings.simplefilter("ignore")
cells = {
    "gaussian 1e6 256²": PR.Cell("gaussian", "defocus", 1e6, 256, 0.35, side=5),
    "zone plate 3e5 256²": PR.Cell("zone plate", "defocus", 3e5, 256, 0.35, side=5),
    "zone plate 1e6 512²": PR.Cell("zone plate", "defocus", 1e6, 512, 0.35, side=4),
}
want = sys.argv[1:] or list(cells)
for name in want:
    cell = cells[name]
    for seed in (0, 1):
        scan, truth, lit, d = PR.simulate(cell, seed=seed)
        counts = float(np.mean(scan.frames)); photons = float(np.mean(scan.frames.sum(axis=(1, 2))))
        out = []
        for chain in ("LSQML:300", "LSQML:50,rPIE:300,ePIE:200", "textbook"):
            t = time.perf_counter()
            if chain == "textbook":
                rec, _ = PR.textbook_epie(scan, truth.shape)
                it = 60
            else:
                with one_core():
                    p = reconstruct(scan, chain, object_shape=truth.shape, frc=False, seed=0)
                rec, it = np.asarray(p.transmission), p.info["iterations"]
            out.append(f"{chain} {PR.od_error(rec, truth, lit):.3f} ({it} it, {time.perf_counter() - t:.0f} s)")
        print(f"{name} seed {seed}: {counts:.1f} counts/px, {photons:.2g} photons/frame, {scan.n_frames} frames | " + " | ".join(out), flush=True)
