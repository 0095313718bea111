"""Cells outside the regime matrix that test the default's rules where they extrapolate.

Two groups of cells, simulated with ``ptycho_regimes.simulate`` (the matrix's probes, guesses and
objects) and reconstructed one core each; the script prints the OD error of each chain per cell
and seed.

- ``threshold`` (session 10): ``algorithms.MID_DOSE_PHOTONS`` (3·10⁵ photons per frame) sends scans
  below 50 counts per pixel to the mid-dose chain; the matrix has one such cell (10⁶ photons on
  256²). Larger frames and a dose at the threshold; ``LSQML:300``, the mid-dose chain and textbook
  ePIE; seeds 0 and 1.
- ``low-dose-large`` (session 23): the matrix's one persistent miss is cell 8 (Gaussian probe,
  defocused guess, 10⁵ photons on 128², 6 × 6 frames: ``ePIE:100`` ends 6 % below the low-dose
  chain ``LSQML:300`` on the mean of seeds 20–44). Is that the frame size, the probe or the scan?
  Low-dose cells on 128² and 256² frames with every probe, cell 8 itself on seeds never run, and
  cell 8 with 5 × 5 and 7 × 7 frames, 64² controls; ``LSQML:300`` (the default there),
  ``ePIE:100`` and textbook ePIE; seeds 100–103.

Usage::

    PYTHONPATH=src python benchmarks/ptycho_extra_cells.py                        # threshold group
    PYTHONPATH=src python benchmarks/ptycho_extra_cells.py --group low-dose-large  # session 23
    PYTHONPATH=src python benchmarks/ptycho_extra_cells.py --group low-dose-large --cells "cell 8" \\
        --seeds 100 101 --chains LSQML:300 ePIE:100

Not a test; results in benchmarks/RESULTS.md (issue 22, sessions 10 and 23).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import ptycho_regimes as PR

C = PR.Cell
#: The groups of extra cells: (cells, chains, seeds).
GROUPS = {
    "threshold": ({
        "gaussian 1e6 256²": C("gaussian", "defocus", 1e6, 256, 0.35, side=5),
        "zone plate 3e5 256²": C("zone plate", "defocus", 3e5, 256, 0.35, side=5),
        "zone plate 1e6 512²": C("zone plate", "defocus", 1e6, 512, 0.35, side=4),
    }, ("LSQML:300", "LSQML:50,rPIE:300,ePIE:200", "textbook"), (0, 1)),
    "low-dose-large": ({
        "zone plate defocus 1e5 128²": C("zone plate", "defocus", 1e5, 128, 0.35, side=6),
        "zone plate exact 1e5 128² 0.15": C("zone plate", "exact", 1e5, 128, 0.15, side=9),
        "pinhole broad 1e5 128²": C("pinhole", "broad", 1e5, 128, 0.35, side=6),
        "star disc 1e5 128²": C("star", "disc", 1e5, 128, 0.3, side=6),
        "zone plate defocus 2e5 256²": C("zone plate", "defocus", 2e5, 256, 0.35, side=5),
        "gaussian exact 3e4 128²": C("gaussian", "exact", 3e4, 128, 0.35, side=6),
        "gaussian broad 1e5 128²": C("gaussian", "broad", 1e5, 128, 0.35, side=6),
        "gaussian defocus 1e5 256²": C("gaussian", "defocus", 1e5, 256, 0.35, side=5),
        "cell 8": PR.CELLS[8],
        "cell 8, 5 × 5 frames": C("gaussian", "defocus", 1e5, 128, 0.3, side=5),
        "cell 8, 7 × 7 frames": C("gaussian", "defocus", 1e5, 128, 0.3, side=7),
        "gaussian defocus 2.5e4 64² (6 counts/px)": C("gaussian", "defocus", 2.5e4, 64, 0.3, side=7),
        "gaussian defocus 1e5 64²": C("gaussian", "defocus", 1e5, 64, 0.3, side=7),
    }, ("LSQML:300", "ePIE:100", "textbook"), (100, 101, 102, 103)),
    "dense": ({
        "zone plate defocus 1e6 64² 0.2": C("zone plate", "defocus", 1e6, 64, 0.2, side=8),
        "gaussian defocus 1e6 64² 0.2": C("gaussian", "defocus", 1e6, 64, 0.2, side=8),
        "pinhole broad 1e6 64² 0.2": C("pinhole", "broad", 1e6, 64, 0.2, side=8),
        "star disc 1e6 64² 0.2": C("star", "disc", 1e6, 64, 0.2, side=8),
        "zone plate defocus 1e9 64² 0.2": C("zone plate", "defocus", 1e9, 64, 0.2, side=8),
        "zone plate defocus 1e6 64² 0.2, pos err 1 px": C("zone plate", "defocus", 1e6, 64, 0.2,
                                                          position_error_px=1.0, side=8),
        "zone plate defocus 1e6 64² 0.15": C("zone plate", "defocus", 1e6, 64, 0.15, side=10),
        "zone plate defocus 5e5 128² 0.2": C("zone plate", "defocus", 5e5, 128, 0.2, side=8),
        "star defocus 5e5 128² 0.2": C("star", "defocus", 5e5, 128, 0.2, side=8),
        "gaussian defocus 5e5 128² 0.2": C("gaussian", "defocus", 5e5, 128, 0.2, side=8),
        "pinhole defocus 1e6 128² 0.2": C("pinhole", "defocus", 1e6, 128, 0.2, side=8),
        "star exact 5e5 128² 0.15": C("star", "exact", 5e5, 128, 0.15, side=10),
    }, ("default", "rPIE:300", "ePIE:300", "textbook"), (100, 101, 102)),
}


def run(chain: str, scan, truth) -> tuple[np.ndarray, int]:
    """(final object, iterations) of one chain ("default" and "textbook" as in the regime matrix),
    through the matrix's own ``ptycho_regimes.run_code`` (one core, seed 0, no FRC)."""
    final, _, info = PR.run_code(chain, scan, truth.shape)
    return final, info.get("iterations", 60)  # the textbook ePIE runs 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="cells of the group (default: all); also --cells")
    ap.add_argument("--group", choices=list(GROUPS), default="threshold")
    ap.add_argument("--cells", nargs="+", default=[])
    ap.add_argument("--seeds", nargs="+", type=int)
    ap.add_argument("--chains", nargs="+")
    args = ap.parse_args()
    cells, chains, seeds = GROUPS[args.group]
    chains, seeds = args.chains or chains, args.seeds or seeds
    warnings.simplefilter("ignore")
    for name in args.names + args.cells or list(cells):
        errors = {c: [] for c in chains}
        for seed in seeds:
            scan, truth, lit, _ = PR.simulate(cells[name], seed=seed)
            counts = float(np.mean(scan.frames))
            photons = float(np.mean(scan.frames.sum(axis=(1, 2))))
            out = []
            for chain in chains:
                t = time.perf_counter()
                rec, iterations = run(chain, scan, truth)
                errors[chain].append(PR.od_error(rec, truth, lit))
                out.append(f"{chain} {errors[chain][-1]:.3f} ({iterations} it, {time.perf_counter() - t:.0f} s)")
            print(f"{name} seed {seed}: {counts:.1f} counts/px, {photons:.2g} photons/frame, {scan.n_frames} frames | "
                  + " | ".join(out), flush=True)
        if len(seeds) > 1:
            print(f"{name}, mean of seeds {seeds[0]}–{seeds[-1]}: "
                  + " | ".join(f"{c} {np.mean(e):.3f}" for c, e in errors.items()), flush=True)


if __name__ == "__main__":
    main()
