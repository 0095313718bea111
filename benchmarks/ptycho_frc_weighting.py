"""The low-dose chain's FRC weight (``PtychoOptions.frc_weighting``) on one regime cell, shown.

Simulates one cell of ``ptycho_regimes.py`` (default: cell 8, a Gaussian probe from a defocused
guess at 10⁵ photons on 128² frames, 6 counts per pixel), reconstructs it with the default twice,
the object unweighted (``frc_weighting="off"``, the halves reconstructed for the FRC all the same)
and weighted (``"auto"``), prints both OD errors against the truth and draws the truth's OD, both
reconstructions' and the halves' FRC with the weight √(2 FRC / (1 + FRC)) it gives.

Usage::

    PYTHONPATH=src python benchmarks/ptycho_frc_weighting.py                      # cell 8, seed 20
    PYTHONPATH=src python benchmarks/ptycho_frc_weighting.py --cell 18 --seed 21 --out fig.png

Not a test; the figure of docs/results/ptychography.md, "Session 25".
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ptycho_regimes as PR  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", type=int, default=8)
    ap.add_argument("--seed", type=int, default=20, help="simulation seed (default 20: held out)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "_static" / "frc_weighting.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chemtomo.core.fft import one_core
    from chemtomo.ptycho import PtychoOptions, reconstruct
    from chemtomo.ptycho.postprocess import frc_weight

    cell = PR.CELLS[args.cell]
    scan, truth, lit, _ = PR.simulate(cell, args.seed)
    runs = {}
    with warnings.catch_warnings(), one_core():
        warnings.simplefilter("ignore")
        for weighting in ("off", "auto"):
            runs[weighting] = reconstruct(scan, object_shape=truth.shape, frc=True, seed=0,
                                          options=PtychoOptions(frc_weighting=weighting))
    err = {k: PR.od_error(np.asarray(p.transmission), truth, lit) for k, p in runs.items()}
    print(f"cell {args.cell} ({cell.name}), seed {args.seed}: {runs['auto'].info['algorithm']}; OD error "
          f"unweighted {err['off']:.3f}, weighted {err['auto']:.3f} ({err['auto'] / err['off']:.2f}×)")

    rows, cols = np.nonzero(lit >= 0.25 * lit.max())
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))

    def od(t):
        v = -2 * np.log(np.maximum(np.abs(np.asarray(t)[box]), 1e-6))
        return v - np.median(v)

    images = [("truth", od(truth)), (f"default, unweighted: OD error {err['off']:.3f}", od(runs["off"].transmission)),
              (f"default, FRC-weighted: OD error {err['auto']:.3f}", od(runs["auto"].transmission))]
    lo, hi = np.percentile(images[0][1], [1, 99])
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), constrained_layout=True)
    for ax, (title, img) in zip(axes, images):
        im = ax.imshow(img, cmap="gray_r", vmin=lo - 0.2 * (hi - lo), vmax=hi + 0.2 * (hi - lo))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:3], shrink=0.8, label="optical density (median removed)")
    curve = runs["auto"].frc
    pixel = runs["auto"].pixel_m
    f = np.asarray(curve.frequency_per_m) * pixel  # cycles per pixel
    axes[3].plot(f, curve.correlation, label="split-half FRC")
    axes[3].plot(f, curve.threshold, ":", label="½-bit threshold")
    axes[3].plot(f, frc_weight(curve.correlation), label="weight √(2 FRC / (1 + FRC))")
    axes[3].set_xlabel("spatial frequency (cycles per pixel)")
    axes[3].set_ylim(-0.1, 1.05)
    axes[3].legend(fontsize=8)
    axes[3].set_title(f"cell {args.cell}: {cell.name}, seed {args.seed}", fontsize=9)
    fig.savefig(args.out, dpi=110)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
