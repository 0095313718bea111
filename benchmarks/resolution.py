"""Resolution benchmark: apodisation bias of the ½-bit crossing, and FSC speed, one process.

1. Window choice (the table quoted in ``src/chemtomo/resolution/apodize.py``). Two copies of a
   Gaussian-blurred complex white signal under independent noise, 64 × 64, for which the FRC is
   known exactly: FRC(f) = snr G²(f) / (snr G²(f) + 1), G(f) = exp(−2π²σ²f²). For each Tukey
   taper (per side) the measured ½-bit crossing minus the theoretical one is reported in rings,
   as mean ± standard deviation (max |·|) over 30 seeds. Data are periodic (``mode="wrap"``),
   so the unwindowed row shows the estimator's own scatter and any window only adds leakage.
2. Speed: ``fsc`` on volumes of growing size (float32, default window), best of 3, seconds,
   with scipy.fft on all cores.

Usage::

    .venv/bin/python benchmarks/resolution.py           # both parts, ~1 minute on 2 cores
    .venv/bin/python benchmarks/resolution.py --quick   # 10 seeds, small volumes only
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from chemtomo.resolution import frc, fsc
from chemtomo.resolution.frc import crossing_frequency

CASES = [(1.2, 3e2), (2.0, 1e4), (3.0, 1e5)]  # (sigma_px, snr)
TAPERS = [False, 0.125, 0.25, 0.5]


def window_bias(n_seeds: int, n: int = 64) -> None:
    print(f"½-bit FRC crossing, measured − theory (rings), {n}² complex pairs, {n_seeds} seeds")
    header = "taper  " + "".join(f"  σ={s:.1f} px, snr={snr:.0e}".ljust(28) for s, snr in CASES)
    print(header)
    for taper in TAPERS:
        row = f"{str(taper):6s} "
        for sigma_px, snr in CASES:
            dev = []
            for seed in range(n_seeds):
                rng = np.random.default_rng(seed)
                s = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.sqrt(2)
                gs = gaussian_filter(s.real, sigma_px, mode="wrap") + 1j * gaussian_filter(s.imag, sigma_px, mode="wrap")
                noise = (rng.standard_normal((2, n, n)) + 1j * rng.standard_normal((2, n, n))) / np.sqrt(2 * snr)
                curve = frc((gs + noise[0]).astype(np.complex64), (gs + noise[1]).astype(np.complex64), 1e-8,
                            apodize=taper)
                g2 = np.exp(-4 * np.pi**2 * (sigma_px * 1e-8) ** 2 * curve.frequency_per_m**2)
                expected = crossing_frequency(curve.frequency_per_m, snr * g2 / (snr * g2 + 1), curve.threshold)
                dev.append((1 / (2 * curve.resolution_m) - expected) / curve.frequency_per_m[0])
            dev = np.array(dev)
            row += f"  {dev.mean():+.2f} ± {dev.std():.2f} (max {np.abs(dev).max():.2f})".ljust(28)
        print(row)


def speed(shapes) -> None:
    print("\nfsc wall time (float32 volumes, default window), best of 3")
    rng = np.random.default_rng(0)
    for shape in shapes:
        a = rng.standard_normal(shape, dtype=np.float32)
        b = a + rng.standard_normal(shape, dtype=np.float32)
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            fsc(a, b, 6.7e-9)
            best = min(best, time.perf_counter() - t0)
        print(f"  {str(shape):18s} {best:8.3f} s   ({a.size / best / 1e6:6.1f} Mvoxel/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 seeds and small volumes")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}")
    window_bias(10 if args.quick else 30)
    shapes = [(64, 64, 64), (128, 128, 128)]
    if not args.quick:
        shapes += [(64, 256, 256), (128, 512, 512)]
    speed(shapes)


if __name__ == "__main__":
    main()
