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

#: The extra cells: larger frames spread thin, and a dose just below the threshold.
CELLS = {
    "gaussian 1e6 256²": PR.Cell("gaussian", "defocus", 1e6, 256, 0.35, side=5),
    "zone plate 3e5 256²": PR.Cell("zone plate", "defocus", 3e5, 256, 0.35, side=5),
    "zone plate 1e6 512²": PR.Cell("zone plate", "defocus", 1e6, 512, 0.35, side=4),
}
CHAINS = ("LSQML:300", "LSQML:50,rPIE:300,ePIE:200", "textbook")


def run(chain: str, scan, truth) -> tuple[np.ndarray, int]:
    """(object, iterations) of one chain, or of the benchmark's textbook ePIE (60 iterations)."""
    if chain == "textbook":
        return PR.textbook_epie(scan, truth.shape)[0], 60
    with one_core():
        p = reconstruct(scan, chain, object_shape=truth.shape, frc=False, seed=0)
    return np.asarray(p.transmission), p.info["iterations"]


def main() -> None:
    warnings.simplefilter("ignore")
    for name in sys.argv[1:] or list(CELLS):
        for seed in (0, 1):
            scan, truth, lit, _ = PR.simulate(CELLS[name], seed=seed)
            counts = float(np.mean(scan.frames))
            photons = float(np.mean(scan.frames.sum(axis=(1, 2))))
            out = []
            for chain in CHAINS:
                t = time.perf_counter()
                rec, iterations = run(chain, scan, truth)
                out.append(f"{chain} {PR.od_error(rec, truth, lit):.3f} ({iterations} it, "
                           f"{time.perf_counter() - t:.0f} s)")
            print(f"{name} seed {seed}: {counts:.1f} counts/px, {photons:.2g} photons/frame, {scan.n_frames} frames | "
                  + " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
