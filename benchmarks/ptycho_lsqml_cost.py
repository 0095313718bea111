"""Cost of one LSQML iteration against ePIE and rPIE on one regime-matrix scan (cell 1: zone
plate, 10⁶ photons, 49 frames of 64²), one core, stopping rule off.

Per-iteration time = (time of 45 iterations − time of 5) / 40, the minimum of 3 repeats, so the
start-up (validation, probe scaling, model build) cancels. Prints ms per iteration and the ratio
to ePIE.

    PYTHONPATH=src .venv/bin/python benchmarks/ptycho_lsqml_cost.py

Not a test; about a minute.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptycho_regimes as R


def main() -> None:
    from chemtomo.core.fft import one_core
    from chemtomo.ptycho import ConvergenceOptions, PtychoOptions, reconstruct

    warnings.simplefilter("ignore")
    scan, truth, _, _ = R.simulate(R.CELLS[1], seed=0)
    off = PtychoOptions(convergence=ConvergenceOptions(tolerance=0.0))
    codes = ("ePIE", "rPIE", "LSQML")
    times: dict[tuple[str, int], list[float]] = {}
    with one_core():
        for code in codes:  # compile the kernels outside the timing
            reconstruct(scan, f"{code}:2", object_shape=truth.shape, frc=False, options=off)
        for _ in range(3):
            for code in codes:
                for n in (5, 45):
                    t0 = time.perf_counter()
                    reconstruct(scan, f"{code}:{n}", object_shape=truth.shape, frc=False, options=off)
                    times.setdefault((code, n), []).append(time.perf_counter() - t0)
    per = {c: (min(times[(c, 45)]) - min(times[(c, 5)])) / 40 for c in codes}
    print(f"load average {tuple(round(v, 1) for v in os.getloadavg())}")
    print("| code | ms per iteration | ÷ ePIE |")
    print("|---|---:|---:|")
    for c in codes:
        print(f"| {c} | {per[c] * 1e3:.0f} | {per[c] / per['ePIE']:.2f} |")


if __name__ == "__main__":
    main()
