"""Two warm starts for the default's expensive runs, measured (issue 22; session 38). Neither is
chemtomo's behaviour: this script seeds the solvers itself.

``--part coarse`` (the measured Siemens star, or any CXI scan): the default spends about half of
the star's time in its first stage, ``LSQML:50`` on the full 128² frames. The probe's far field
fills the central quarter of the detector (99.3 % of the guess's spectral power lies in its
central 64²), so a start on the central 64² of every frame (object pixels twice as large, the
transforms 4–5× cheaper) could pull the probe from the guess as well. Timed here: the default
(``frc=True``: the full scan, then the even and the odd frames, on one core), against
``LSQML:50`` on the cropped frames followed by ``rPIE:300,ePIE:200`` on the full frames, started
from the coarse object and probe interpolated onto the detector's grid (the full scan, and
each half from its own coarse start). Reported: each run's stages, its final error, the time,
and the split-half FRC (½-bit, pixels).

``--part finegrid`` (regime cells): where the detector's grid ends model-limited (≥ 20× the
Poisson floor), the default runs the scan again on a grid twice as fine from scratch
(``reconstruct._grid_from_fit``), at 5–9× the time. Timed here: that cold run against one started
from the detector grid's result (its object and probe interpolated onto the fine grid, its
refined positions). Reported: OD error against the truth, misfit over the floor, time, stages.

The solvers' starting object is seeded by wrapping ``reconstruct``'s ``State`` (the library has
no initial-object argument); the probe goes in through ``probe=``.

Usage::

    PYTHONPATH=src python benchmarks/ptycho_warm_starts.py --part coarse --scan star.cxi
    PYTHONPATH=src python benchmarks/ptycho_warm_starts.py --part finegrid --cells 35 39 --seeds 0 1

Both run on one core (``CHEMTOMO_FFT_WORKERS=1 NUMBA_NUM_THREADS=1`` recommended). Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ptycho_regimes as PR

SEED_OBJECT: dict[str, np.ndarray] = {}


def _seeding_states() -> None:
    """Wrap ``reconstruct``'s ``State`` so that a run starts from ``SEED_OBJECT["obj"]`` where its
    object array has that shape (else from the library's flat object)."""
    module = sys.modules["chemtomo.ptycho.reconstruct"]
    original = module.State

    def state(obj, *args, **kwargs):
        seed = SEED_OBJECT.get("obj")
        if seed is not None and seed.shape == obj.shape:
            obj = seed.copy()
        return original(obj, *args, **kwargs)

    module.State = state


def coarse_scan(scan, k: int = 2):
    """The central (ny/k, nx/k) of every frame (and of the mask), the probe guess band-limited and
    sampled on the k-times coarser object grid."""
    from chemtomo.ptycho.finegrid import detector_window, to_detector_grid

    ny, nx = scan.frames.shape[1:]
    window = detector_window((ny, nx), (ny // k, nx // k))
    return dataclasses.replace(scan, frames=np.ascontiguousarray(scan.frames[(slice(None),) + window]),
                               mask=None if scan.mask is None else scan.mask[window],
                               probe=None if scan.probe is None else to_detector_grid(scan.probe, k))


def _subset(scan, rows: np.ndarray):
    return dataclasses.replace(scan, frames=scan.frames[rows], positions_m=scan.positions_m[rows])


def _coarse_then_fine(scan, fine_chain: str):
    from chemtomo.ptycho import PtychoOptions, reconstruct
    from chemtomo.ptycho.finegrid import fine_shape, upsampled

    SEED_OBJECT.clear()
    t0 = time.perf_counter()
    one_grid = PtychoOptions(oversample=1)  # no second run on a finer grid (the default's rule)
    coarse = reconstruct(coarse_scan(scan), "LSQML:50", frc=False, options=one_grid)
    t_coarse = time.perf_counter() - t0
    shape = fine_shape(coarse.info["object_shape"], 2)
    SEED_OBJECT["obj"] = upsampled(coarse.transmission, 2)[: shape[0], : shape[1]]
    try:
        fine = reconstruct(scan, fine_chain, probe=upsampled(coarse.probe, 2), frc=False, object_shape=shape,
                           options=one_grid)
    finally:
        SEED_OBJECT.clear()
    return fine, coarse, t_coarse, time.perf_counter() - t0


def _illumination(p) -> np.ndarray:
    """Σ|P|² of a result's probe (all modes) at its refined positions, on its object grid (for the
    FRC's mask; ``ptycho_star._illumination`` at the patches' corners)."""
    from ptycho_star import _illumination as at_corners

    h, w = p.probe.shape[-2:]
    pos = np.asarray(p.info["positions_m"]) / np.asarray(p.info["pixel_yx_m"])
    corners = np.floor(pos + np.array(p.transmission.shape) // 2).astype(int) - np.array([h // 2, w // 2])
    return at_corners(np.sqrt((np.abs(p.probe) ** 2).sum(axis=0)), corners, p.transmission.shape)


def part_coarse(path: str, fine_chain: str, repeats: int) -> None:
    from chemtomo.io.cxi import read_scan
    from chemtomo.ptycho import reconstruct
    from chemtomo.ptycho.postprocess import split_half_frc

    scan = read_scan(path)
    reconstruct(coarse_scan(scan), "ePIE:2", frc=False)  # the kernels loaded before any timing
    times: dict[str, list[float]] = {"default": [], "coarse": []}
    for _ in range(repeats):  # alternated: the machine's speed drifts
        t0 = time.perf_counter()
        default = reconstruct(scan, frc=True)
        times["default"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        full, coarse, t_coarse, _ = _coarse_then_fine(scan, fine_chain)
        halves = [_coarse_then_fine(_subset(scan, np.arange(k, scan.n_frames, 2)), fine_chain)[0] for k in (0, 1)]
        times["coarse"].append(time.perf_counter() - t0)
    curve, _ = split_half_frc(halves[0].transmission, halves[1].transmission,
                              np.minimum(_illumination(halves[0]), _illumination(halves[1])), (1.0, 1.0))
    print("| run | stages (full scan) | final error | time, full scan + halves (s) | ½-bit FRC (px) |")
    print("|---|---|---:|---:|---:|")
    print(f"| the default | {default.info['stage_iterations']} | {default.errors[-1]:.5f} | "
          + ", ".join(f"{t:.1f}" for t in times["default"]) + f" | {default.frc.resolution_m / default.pixel_m:.2f} |")
    print(f"| coarse `LSQML:50`, then `{fine_chain}` | {coarse.info['stage_iterations']} + "
          f"{full.info['stage_iterations']} (coarse {t_coarse:.1f} s) | {full.errors[-1]:.5f} | "
          + ", ".join(f"{t:.1f}" for t in times["coarse"]) + f" | {curve.resolution_m:.2f} |")
    print(f"halves' fine stages: {[h.info['stage_iterations'] for h in halves]}; time ratio (best of each) "
          f"{min(times['coarse']) / min(times['default']):.2f}")


def part_coarse_cells(cells: list[int], seeds: list[int], fine_chain: str) -> None:
    """``--part coarse`` on regime cells against their truth: OD error and time of the full scan."""
    from chemtomo.ptycho import PtychoOptions, reconstruct

    one_grid = PtychoOptions(oversample=1)
    print(f"| cell, seed | the default | coarse `LSQML:50`, then `{fine_chain}` |")
    print("|---|---|---|")
    for cell in cells:
        for seed in seeds:
            scan, truth, lit, _ = PR.simulate(PR.CELLS[cell], seed)
            t0 = time.perf_counter()
            default = reconstruct(scan, object_shape=truth.shape, frc=False, options=one_grid)
            t_default = time.perf_counter() - t0
            full, _, t_coarse, t_full = _coarse_then_fine(scan, fine_chain)
            crop = tuple(a // 2 - b // 2 for a, b in zip(full.transmission.shape, truth.shape))  # centre on centre
            image = full.transmission[crop[0]:crop[0] + truth.shape[0], crop[1]:crop[1] + truth.shape[1]]
            print(f"| {cell}, {seed} | {PR.od_error(np.asarray(default.transmission), truth, lit):.4f} "
                  f"({t_default:.1f} s, " + "+".join(str(n) for _, n in default.info["stage_iterations"]) + " it) | "
                  f"{PR.od_error(np.asarray(image), truth, lit):.4f} ({t_full:.1f} s, coarse {t_coarse:.1f} s, "
                  + "+".join(str(n) for _, n in full.info["stage_iterations"]) + " it) |", flush=True)


def part_finegrid(cells: list[int], seeds: list[int], warm_chain: str, warm_object: bool = True,
                  cold_chain: str = "default", lowpass: int = 0, guess_probe: bool = False) -> None:
    from chemtomo.ptycho import PtychoOptions, reconstruct
    from chemtomo.ptycho.finegrid import band_limit, fine_shape, upsampled

    what = ("positions" if guess_probe else "probe and positions") if not warm_object else (
        f"object{f' (band 1/{lowpass})' if lowpass else ''}, " + ("positions" if guess_probe else "probe and positions"))
    print(f"| cell, seed | detector grid | fine grid from the guess (`{cold_chain}`) | fine grid from its {what} "
          f"(`{warm_chain}`) |")
    print("|---|---|---|---|")
    for cell in cells:
        for seed in seeds:
            scan, truth, lit, _ = PR.simulate(PR.CELLS[cell], seed)
            shape = truth.shape
            rows = []
            t0 = time.perf_counter()
            one = reconstruct(scan, object_shape=shape, frc=False, options=PtychoOptions(oversample=1))
            rows.append((one, time.perf_counter() - t0))
            t0 = time.perf_counter()
            cold = reconstruct(scan, cold_chain, object_shape=shape, frc=False, options=PtychoOptions(oversample=2))
            rows.append((cold, time.perf_counter() - t0))
            fine = fine_shape(shape, 2)
            if warm_object:
                start = np.ascontiguousarray(upsampled(one.transmission, 2)[: fine[0], : fine[1]])
                if lowpass:  # only the coarse detail: |f| ≤ 1/(2·lowpass) cycles per fine pixel
                    band_limit(start, lowpass)
                SEED_OBJECT["obj"] = start
            moved = dataclasses.replace(scan, positions_m=np.asarray(one.info["positions_m"]))
            t0 = time.perf_counter()
            try:  # reconstruct interpolates a probe given on the detector's grid onto the fine one
                warm = reconstruct(moved, warm_chain, probe=None if guess_probe else one.probe, object_shape=shape,
                                   frc=False,
                                   options=PtychoOptions(oversample=2))
            finally:
                SEED_OBJECT.clear()
            rows.append((warm, time.perf_counter() - t0))
            text = [f"{PR.od_error(np.asarray(p.transmission), truth, lit):.4f} "
                    f"({p.info['error_over_floor']:.1f} F, {t:.1f} s, "
                    + "+".join(str(n) for _, n in p.info["stage_iterations"]) + " it)" for p, t in rows]
            print(f"| {cell}, {seed} | " + " | ".join(text) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["coarse", "coarse-cells", "finegrid"], required=True)
    ap.add_argument("--scan", default="siemens_star.cxi", help="CXI scan for --part coarse")
    ap.add_argument("--fine-chain", default="rPIE:300,ePIE:200", help="chain after the coarse start")
    ap.add_argument("--repeats", type=int, default=2, help="alternated timings of --part coarse")
    ap.add_argument("--warm-chain", default="default", help="chain of the warm fine-grid run")
    ap.add_argument("--cold-chain", default="default", help="chain of the fine-grid run from the guess")
    ap.add_argument("--flat-object", action="store_true",
                    help="the warm fine-grid run takes the detector grid's probe and positions only")
    ap.add_argument("--lowpass", type=int, default=0,
                    help="band-limit the warm object to 1/(2·N) cycles per fine pixel (2: the detector's band)")
    ap.add_argument("--guess-probe", action="store_true", help="the warm run starts from the file's probe guess")
    ap.add_argument("--cells", type=int, nargs="+", default=[35, 39])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import chemtomo.ptycho  # noqa: F401  (loads the reconstruct module wrapped below)

    _seeding_states()
    print(f"# ptycho_warm_starts --part {args.part}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {tuple(round(v, 1) for v in os.getloadavg())}\n")
    if args.part == "coarse":
        part_coarse(args.scan, args.fine_chain, args.repeats)
    elif args.part == "coarse-cells":
        part_coarse_cells(args.cells, args.seeds, args.fine_chain)
    else:
        part_finegrid(args.cells, args.seeds, args.warm_chain, not args.flat_object, args.cold_chain, args.lowpass,
                      args.guess_probe)


if __name__ == "__main__":
    main()
