"""chemtomo against PtyLab on the measured Siemens star (issue 22): whole processes, side by side.

The data: tike's measured Siemens-star scan (``siemens-star-small.npz.bz2``, 516 frames of
128², see ``tests/data/measured/README.md`` and ``benchmarks/measured.py``, whose conversion and
nominal geometry are used here). Each code runs as its own process, timed from spawn to exit,
one after the other in one run of this script (``--repeats`` alternates them again):

- **chemtomo**: ``chemtomo ptycho star.cxi -o OUT.cxi [--algorithm ALG]``, the command as a
  user types it: the library default unless ``--algorithm`` is given, the file's probe guess,
  background retrieval, and the split-half FRC that the command computes by default (the full
  scan plus its even and odd frames).
- **PtyLab** (``pip install ptylab``), mPIE with its default steps (β_O = β_P = 0.25, momentum
  0.3, friction 0.7), random order, Fraunhofer propagator, the same probe guess scaled to the
  data's photon count, 50 iterations: the full scan, then the even and the odd frames, so that
  its process does the same work as chemtomo's (PtyLab has no split-half FRC of its own). It
  reads the frames from an ``.npz`` the parent writes (no chemtomo import in its process) and
  saves its three objects; the parent computes their FRC with chemtomo's own split-half code
  (``ptycho.postprocess``: air reference, sub-pixel registration, ½-bit threshold), untimed.

Reported per code: process wall time, its ratio to PtyLab's, and the ½-bit FRC resolution in
pixels (smaller is finer). Issue 22's target: chemtomo's default reaches a finer FRC than
PtyLab mPIE-50 in at most a third of its time.

Usage::

    python benchmarks/ptycho_star.py                        # the library default vs PtyLab mPIE-50
    python benchmarks/ptycho_star.py --algorithm RAAR:50    # any chain
    python benchmarks/ptycho_star.py --repeats 2 --ptylab-iterations 50 --data DIR
    python benchmarks/ptycho_star.py --baseline-src /tmp/old/src   # + an older tree, same run
    python benchmarks/ptycho_star.py --without-guess        # + the file with its probe guess removed

``--baseline-src`` times one more process, the same command run on another chemtomo source
tree (e.g. ``git archive`` of an older commit), alternated with the other two: before/after
and PtyLab in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


# ------------------------------------------------------------------------- PtyLab's own process
def ptylab_child(npz: Path, out: Path, engine: str, iterations: int) -> None:
    """Runs in the PtyLab process: full scan, then even and odd frames; saves the objects."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import contextlib
    import io
    import logging

    from PtyLab import Engines
    from PtyLab.ExperimentalData.ExperimentalData import ExperimentalData
    from PtyLab.Monitor.Monitor import DummyMonitor
    from PtyLab.Params.Params import Params
    from PtyLab.Reconstruction.Reconstruction import Reconstruction

    for name in ("ExperimentalData", "Reconstruction", "Params", engine, "BaseEngine"):
        logging.getLogger(name).setLevel(logging.WARNING)
    d = np.load(npz)
    frames, positions_m, probe = d["frames"], d["positions_m"], d["probe"]
    results = {}
    for part, rows in (("full", np.arange(len(frames))), ("even", np.arange(0, len(frames), 2)),
                       ("odd", np.arange(1, len(frames), 2))):
        data = ExperimentalData(None, operationMode="CPM")
        data.ptychogram = frames[rows]
        data.wavelength = float(d["wavelength"])
        data.dxd = float(d["detector_pixel_m"])
        data.zo = float(d["distance_m"])
        data.encoder = positions_m[rows].astype(np.float64)  # (y, x) metres about the object centre
        data.entrancePupilDiameter = None
        data.spectralDensity = None
        data.theta = None
        data.emptyBeam = None
        data._setData()
        params = Params()
        params.gpuSwitch = False
        params.propagatorType = "Fraunhofer"
        params.positionOrder = "random"
        params.probePowerCorrectionSwitch = False
        params.comStabilizationSwitch = False
        params.orthogonalizationSwitch = False
        rec = Reconstruction(data, params)
        rec.No = int(d["object_px"])
        rec.initializeObjectProbe()
        rec.object = np.ones_like(rec.object)
        rec.probe = np.broadcast_to(probe, rec.probe.shape).astype(np.complex64).copy()
        np.random.seed(0)
        eng = getattr(Engines, engine)(rec, data, params, DummyMonitor())
        eng.numIterations = iterations
        with contextlib.redirect_stdout(io.StringIO()):
            eng.reconstruct()
        results[part] = np.asarray(rec.object)[0, 0, 0, 0].astype(np.complex64)
        results[part + "_probe"] = np.asarray(rec.probe)[0, 0, 0, 0].astype(np.complex64)
        results[part + "_corners"] = np.asarray(rec.positions, np.int64)
    np.savez(out, **results)


# ---------------------------------------------------------------------------------- the parent
def _time(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, p


def _illumination(probe: np.ndarray, corners: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    den = np.zeros(shape, np.float32)
    power = np.abs(probe) ** 2
    h, w = probe.shape
    for y0, x0 in corners:
        den[y0:y0 + h, x0:x0 + w] += power
    return den


def ptylab_frc_px(objects: dict) -> float:
    """½-bit FRC (pixels) of PtyLab's even/odd objects with chemtomo's split-half code."""
    from chemtomo.ptycho.postprocess import air_reference, air_region, split_half_frc

    halves = []
    for part in ("even", "odd"):
        obj = objects[part]
        illum = _illumination(objects[part + "_probe"], objects[part + "_corners"], obj.shape)
        halves.append((air_reference(obj, air_region(obj, illum))[0], illum))
    curve, _ = split_half_frc(halves[0][0], halves[1][0], np.minimum(halves[0][1], halves[1][1]), (1.0, 1.0))
    return float(curve.resolution_m)  # pixel size 1: metres are pixels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithm", default=None, help="chemtomo chain (default: the library default)")
    ap.add_argument("--ptylab-engine", default="mPIE")
    ap.add_argument("--ptylab-iterations", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two processes this many times")
    ap.add_argument("--data", default=None, help="folder with siemens-star-small.npz.bz2")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--baseline-src", default=None,
                    help="another chemtomo source tree whose command is timed the same way")
    ap.add_argument("--without-guess", action="store_true",
                    help="also time chemtomo on the scan with its probe guess removed (the probe from the data)")
    ap.add_argument("--ptylab-child", nargs=2, metavar=("NPZ", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ptylab_child:
        ptylab_child(Path(args.ptylab_child[0]), Path(args.ptylab_child[1]), args.ptylab_engine,
                     args.ptylab_iterations)
        return

    import measured

    from chemtomo.core import energy_to_wavelength
    from chemtomo.io import read_projection, write_scan
    from chemtomo.ptycho import ALGORITHMS, DEFAULT_ALGORITHM, parse_algorithm

    src = measured.data_dir(args.data) / measured.STAR
    work = Path(args.out or tempfile.mkdtemp(prefix="chemtomo_star_"))
    work.mkdir(parents=True, exist_ok=True)
    scan = measured.star_scan(src)
    cxi = write_scan(work / "siemens_star.cxi", scan)
    if args.without_guess:
        import dataclasses

        bare = write_scan(work / "siemens_star_no_guess.cxi", dataclasses.replace(scan, probe=None))
    counts = scan.frames.sum(axis=(1, 2))
    probe = scan.probe[0] * np.sqrt(np.percentile(counts, 90) / np.sum(np.abs(scan.probe[0]) ** 2))
    pixel = float(scan.pixel_yx_m[0])
    extent = np.ceil(np.abs(scan.positions_m / pixel).max(axis=0)).astype(int)
    np.savez(work / "star_for_ptylab.npz", frames=scan.frames, positions_m=scan.positions_m, probe=probe,
             wavelength=energy_to_wavelength(scan.energy_ev), detector_pixel_m=scan.detector_pixel_m,
             distance_m=scan.distance_m, object_px=int(2 * extent.max() + scan.frame_shape[0] + 8))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TQDM_DISABLE": "1"}
    algorithm = args.algorithm or DEFAULT_ALGORITHM
    chemtomo_cmd = [sys.executable, "-m", "chemtomo.cli", "-q", "ptycho", str(cxi), "-o", str(work / "chemtomo.cxi")]
    if args.algorithm:
        chemtomo_cmd += ["--algorithm", args.algorithm]
    ptylab_cmd = [sys.executable, __file__, "--ptylab-child", str(work / "star_for_ptylab.npz"),
                  str(work / "ptylab.npz"), "--ptylab-engine", args.ptylab_engine,
                  "--ptylab-iterations", str(args.ptylab_iterations)]
    envs = {"chemtomo": env}
    if args.baseline_src:
        envs["baseline"] = {**env, "PYTHONPATH": str(Path(args.baseline_src).resolve()) + os.pathsep
                            + os.environ.get("PYTHONPATH", "")}
    # warm the numba cache with every solver of the chain (a first launch compiles; a user's second
    # launch does not)
    # (the default picks its chain from the data: warm every solver)
    names = list(ALGORITHMS) if algorithm == DEFAULT_ALGORITHM else [n for n, _ in parse_algorithm(algorithm)]
    warm_chain = ",".join(f"{name}:1" for name in names)
    for e in envs.values():
        subprocess.run(chemtomo_cmd[:5] + [str(cxi), "-o", str(work / "warm.cxi"), "--algorithm", warm_chain,
                                           "--no-frc"], env=e, capture_output=True)
    times = {"chemtomo": [], "baseline": [], "no_guess": [], "ptylab": []}
    frc = {}
    ptylab_note = ""
    for _ in range(args.repeats):
        s, p = _time(chemtomo_cmd, env)
        if p.returncode != 0:
            raise SystemExit(f"chemtomo failed: {(p.stdout + p.stderr)[-1000:]}")
        times["chemtomo"].append(s)
        ran = " ".join((p.stdout + p.stderr).split())  # "... CHAIN stopped after N iterations (why)"
        stop = ran[ran.rfind("pixel") + 1:] if "stopped after" in ran else ""
        proj = read_projection(work / "chemtomo.cxi")
        frc["chemtomo"] = proj.frc.resolution_m / proj.pixel_m
        if "baseline" in envs:
            s, p = _time(chemtomo_cmd, envs["baseline"])
            if p.returncode != 0:
                raise SystemExit(f"baseline chemtomo failed: {(p.stdout + p.stderr)[-1000:]}")
            times["baseline"].append(s)
            proj = read_projection(work / "chemtomo.cxi")
            frc["baseline"] = proj.frc.resolution_m / proj.pixel_m
        if args.without_guess:
            s, p = _time([*chemtomo_cmd[:5], str(bare), "-o", str(work / "no_guess.cxi"), *chemtomo_cmd[8:]], env)
            if p.returncode != 0:
                raise SystemExit(f"chemtomo without the guess failed: {(p.stdout + p.stderr)[-1000:]}")
            times["no_guess"].append(s)
            proj = read_projection(work / "no_guess.cxi")
            frc["no_guess"] = proj.frc.resolution_m / proj.pixel_m
        s, p = _time(ptylab_cmd, env)
        if p.returncode != 0:
            ptylab_note = f"PtyLab failed: {(p.stdout + p.stderr).strip().splitlines()[-1][:300]}"
            break
        times["ptylab"].append(s)
        frc["ptylab"] = ptylab_frc_px(dict(np.load(work / "ptylab.npz")))

    load = os.getloadavg()
    print(f"# ptycho_star: {os.cpu_count()} cores, load average {load[0]:.2f}, Python {platform.python_version()}; "
          f"{scan.n_frames} frames of {scan.frame_shape[0]}², {args.repeats} repeat(s), work folder {work}\n")
    print("| code | process wall time (s) | ÷ PtyLab's time | ½-bit FRC (px, smaller is finer) | ÷ PtyLab's FRC |")
    print("|---|---|---|---|---|")
    t_pl = float(np.median(times["ptylab"])) if times["ptylab"] else float("nan")
    ran_text = stop.split("nm; ", 1)[-1] if times["chemtomo"] else ""
    rows = [("chemtomo", f"chemtomo ptycho, {algorithm} ({ran_text}), split-half FRC")]
    if args.baseline_src:
        rows.append(("baseline", f"the same, source tree {args.baseline_src}"))
    if args.without_guess:
        rows.append(("no_guess", "the same, the file's probe guess removed (the probe estimated from the data)"))
    rows.append(("ptylab", f"PtyLab {args.ptylab_engine}-{args.ptylab_iterations} (full + halves)"))
    for key, name in rows:
        if not times[key]:
            print(f"| {name} | {ptylab_note or 'not run'} | | | |")
            continue
        t = float(np.median(times[key]))
        print(f"| {name} | {t:.1f} ({', '.join(f'{x:.1f}' for x in times[key])}) | {t / t_pl:.2f} | "
              f"{frc[key]:.2f} | {frc[key] / frc.get('ptylab', float('nan')):.3f} |")
    if times["ptylab"]:
        ok = float(np.median(times["chemtomo"])) <= t_pl / 3 and frc["chemtomo"] <= frc["ptylab"]
        print(f"\nTarget (≤ 1/3 of PtyLab's time at a finer FRC): {'met' if ok else 'not met'}")
    (work / "ptycho_star.json").write_text(json.dumps({"times_s": times, "frc_px": frc, "algorithm": algorithm}))


if __name__ == "__main__":
    main()
