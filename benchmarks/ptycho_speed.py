"""Ptychography speed (issue 22): start-up of ``chemtomo ptycho`` and each solver's iteration cost
against the FFT floor, all measured in one run of this script.

1. **Start-up**: ``chemtomo ptycho SCAN.cxi -o OUT.cxi --algorithm RAAR:1 --no-frc`` on a 32²
   scan (36 frames), launched as a separate process against a fresh numba cache
   (``NUMBA_CACHE_DIR``): the first launch compiles the kernels it calls, the next ``--launches``
   must load them (kernel compilations counted from numba's cache statistics); with
   ``--baseline-src`` the two trees' cached launches and the floors alternate launch by launch.
   Measured from just before the process is spawned: wall time to the first iteration's
   progress callback, and to the process's exit; the heavy modules it imported (Dask,
   matplotlib, pandas, Zarr, the report). The **import floor** is a process that only imports
   what the command cannot do without (``numpy, scipy.fft, numba, h5py, typer, rich.progress``),
   the **numpy floor** one that imports NumPy alone, launched the same way; a bare ``python -c
   pass`` is the interpreter alone.
2. **Iterations**: ``ptycho.reconstruct`` on a simulated scan (default 400 frames of 128², a
   zone-plate probe, 10⁶ photons per frame) with each solver, library options (probe and
   background refined, no FRC; RAAR once more with the probe fixed). Per iteration: the
   interval between progress callbacks, in wall time and in process CPU time, divided by the
   **FFT floor** measured right after it in the callback (outside the interval): one forward
   and one inverse FFT of every frame (``core.fft.stack_fft2``, complex64, in place, all cores,
   the transforms an iteration must do, with the library the solvers use: FFTW where pyFFTW is
   installed, since session 37, scipy's pocketfft before). Medians over the iterations after
   the first two. Targets (issue 22): RAAR/DM ≤ 1.5×, PIE ≤ 2.5×.

Usage::

    python benchmarks/ptycho_speed.py                    # both parts (about a minute on 2 cores)
    python benchmarks/ptycho_speed.py --part startup
    python benchmarks/ptycho_speed.py --part timeline    # the start-up step by step
    python benchmarks/ptycho_speed.py --part fft-workers # one worker or all, by the stack's size
    python benchmarks/ptycho_speed.py --part fft-backends # FFTW against pocketfft, by frame size
    python benchmarks/ptycho_speed.py --part command --baseline-src /tmp/old/src --frames 196  # whole runs
    python benchmarks/ptycho_speed.py --part command --baseline-src /tmp/old/src --frames 49 --n 64 --photons 1e4
    python benchmarks/ptycho_speed.py --part startup --baseline-src /tmp/old/src --launches 6  # before/after
    python benchmarks/ptycho_speed.py --part iterations --frames 400 --n 128 --iterations 12
    python benchmarks/ptycho_speed.py --part iterations --baseline-src /tmp/old/src --rounds 2

With ``--baseline-src`` the iteration part runs in child processes, this tree's and the other
tree's alternately (``--rounds`` times each), and ends with the ratio of the two trees' medians:
before/after in one run. ``NUMBA_NUM_THREADS=1 CHEMTOMO_FFT_WORKERS=1`` measures one core
(the floor then is a one-thread FFT pair too): on a machine shared with other jobs, two-thread
parallel regions wait on each other and the figures move with the load; one thread does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

# chemtomo first: its package sets OMP_WAIT_POLICY=PASSIVE (chemtomo/__init__.py), which OpenMP reads
# once, when numba starts its threads. machine() asks numba for its thread count, which starts
# them: imported after that, chemtomo's kernels and the FFT floor measured here ran beside
# spinning OpenMP workers (before session 39: floors 24 against 17.6 ms, two threads).
import chemtomo  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("dask", "distributed", "matplotlib", "pandas", "zarr", "chemtomo.report")
ALGORITHMS = ("RAAR", "DM", "ePIE", "rPIE", "mPIE", "ML")
TARGETS = {"RAAR": 1.5, "DM": 1.5, "ePIE": 2.5, "rPIE": 2.5, "mPIE": 2.5}

#: Runs the CLI in a child process and reports, at exit, when the first progress callback came
#: (time.time(), comparable with the parent's spawn time), how many kernels numba compiled
#: (cache misses) and which heavy modules were imported.
HARNESS = textwrap.dedent("""
    import atexit, json, sys, time
    from chemtomo import cli
    _first = []
    _call = cli.ProgressReporter.__call__
    def _patched(self, name):
        update = _call(self, name)
        def first(done, total):
            if not _first:
                _first.append(time.time())
            update(done, total)
        return first
    cli.ProgressReporter.__call__ = _patched
    def _report():
        misses = 0
        for mod in list(sys.modules.values()):
            if not getattr(mod, "__name__", "").startswith("chemtomo"):
                continue
            for v in list(vars(mod).values()):
                st = getattr(v, "stats", None)
                if st is not None and hasattr(st, "cache_misses"):
                    misses += sum(st.cache_misses.values())
        heavy = sorted({h for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")})
        print("HARNESS " + json.dumps({"first": _first[0] if _first else None, "compiled": misses,
                                        "heavy": heavy}), file=sys.stderr)
    atexit.register(_report)
    sys.argv = ["chemtomo"] + sys.argv[1:]
    cli.app()
""")


# ------------------------------------------------------------------------------------- data
def simulated_scan(n: int, grid: int, photons: float, seed: int = 0):
    """A raster scan of a random absorbing, phase-shifting object with a zone-plate probe:
    (grid², n, n) Poisson frames, step 0.3 n with ±0.5 px jitter, 10 nm object pixels."""
    from chemtomo.core import Scan, energy_to_wavelength
    from chemtomo.ptycho import zone_plate_probe

    rng = np.random.default_rng(seed)
    pixel, energy = 10e-9, 708.2
    wavelength = energy_to_wavelength(energy)
    step = 0.3 * n
    axis = (np.arange(grid) - (grid - 1) / 2) * step
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    pos = np.stack([ys.ravel(), xs.ravel()], 1) + rng.uniform(-0.5, 0.5, (grid * grid, 2))
    size = int(np.ceil(2 * np.abs(pos).max())) + n + 8
    from scipy.ndimage import gaussian_filter

    thick = np.clip(gaussian_filter(rng.standard_normal((size, size)), 2.0), 0, None)
    obj = np.exp((-0.3 + 0.6j) * thick / thick.max()).astype(np.complex64)
    probe = zone_plate_probe((n, n), pixel, energy, defocus_m=0.3 * n * pixel * 100e-9 / wavelength)
    c = size // 2 - n // 2
    frames = np.empty((len(pos), n, n), np.float32)
    for j, (py, px) in enumerate(np.rint(pos).astype(int)):
        wave = probe * obj[c + py:c + py + n, c + px:c + px + n]
        frames[j] = np.abs(np.fft.fftshift(np.fft.fft2(wave))) ** 2
    frames *= photons / frames.sum(axis=(1, 2)).mean()
    frames = rng.poisson(frames).astype(np.float32)
    return Scan(frames=frames, positions_m=pos * pixel, energy_ev=energy, distance_m=0.1,
                detector_pixel_m=wavelength * 0.1 / (n * pixel), probe=probe)


# ---------------------------------------------------------------------------------- start-up
def _launch(args: list[str], env: dict) -> dict:
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    t1 = time.time()
    out = {"total_s": t1 - t0, "rc": p.returncode}
    for line in p.stderr.splitlines():
        if line.startswith("HARNESS "):
            rec = json.loads(line[len("HARNESS "):])
            out.update(first_s=(rec["first"] - t0) if rec["first"] else float("nan"), compiled=rec["compiled"],
                       heavy=rec["heavy"])
    if p.returncode != 0:
        out["error"] = (p.stdout + p.stderr)[-500:]
    return out


def _import_profile(args: list[str], env: dict, top: int = 8) -> list[tuple[str, float]]:
    """Self import time (s) summed by top-level package, from ``python -X importtime``."""
    p = subprocess.run([args[0], "-X", "importtime", *args[1:]], capture_output=True, text=True, env=env)
    by_pkg: dict[str, float] = {}
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = line.split("|")
            try:
                self_us = int(parts[0].split(":")[1])
            except ValueError:
                continue
            pkg = parts[2].strip().split(".")[0]
            by_pkg[pkg] = by_pkg.get(pkg, 0.0) + self_us * 1e-6
    return sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]


def part_startup(python: str, baseline_src: str | None = None, launches: int = 2) -> str:
    """Launch 1 of each tree compiles its kernels (fresh numba cache); then ``launches`` cached
    launches per tree, the trees and the floors alternated launch by launch, so that the
    machine's drifting load falls on all of them alike; medians (and minima) of those."""
    from chemtomo.io import write_scan

    work = Path(tempfile.mkdtemp(prefix="chemtomo_startup_"))
    scan = simulated_scan(32, 6, 1e5)
    cxi = write_scan(work / "scan32.cxi", scan)
    harness = work / "harness.py"
    harness.write_text(f"HEAVY = {HEAVY!r}\n" + HARNESS)
    cmd = [python, str(harness), "-q", "ptycho", str(cxi), "-o", str(work / "out.cxi"), "--algorithm", "RAAR:1",
           "--no-frc"]
    trees = [("", ROOT / "src")] + ([("baseline ", Path(baseline_src))] if baseline_src else [])
    envs = {tag: {**os.environ, "NUMBA_CACHE_DIR": str(work / f"numba_cache_{k}"),
                  "PYTHONPATH": str(src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
            for k, (tag, src) in enumerate(trees)}
    first = {tag: _launch(cmd, envs[tag]) for tag, _ in trees}
    floor_cmds = {"import floor": [python, "-c", "import numpy, scipy.fft, numba, h5py, typer, rich.progress"],
                  "numpy floor": [python, "-c", "import numpy"],
                  "bare interpreter": [python, "-c", "pass"]}
    cached: dict[str, list[dict]] = {tag: [] for tag, _ in trees}
    floors: dict[str, list[float]] = {name: [] for name in floor_cmds}
    for _ in range(max(1, launches)):
        for tag, _ in trees:
            cached[tag].append(_launch(cmd, envs[tag]))
        for name, c in floor_cmds.items():
            floors[name].append(_launch(c, envs[""])["total_s"])
    fl = float(np.median(floors["import floor"]))
    npf = float(np.median(floors["numpy floor"]))
    lines = ["| process | to first iteration (s) | × import floor | × numpy floor | to exit (s) | kernels compiled | "
             "heavy modules imported |", "|---|---|---|---|---|---|---|"]

    def row(name: str, recs: list[dict]) -> str:
        bad = [r for r in recs if "error" in r]
        if bad:
            return f"| {name} | failed: {bad[0]['error'][-200:]!r} | | | | | |"
        t = np.array([r["first_s"] for r in recs])
        e = np.array([r["total_s"] for r in recs])
        span = f"{np.median(t):.3f} (min {t.min():.3f})" if len(t) > 1 else f"{t[0]:.3f}"
        heavy = sorted({h for r in recs for h in r["heavy"]})
        return (f"| {name} | {span} | {np.median(t) / fl:.2f} | {np.median(t) / npf:.2f} | {np.median(e):.3f} | "
                f"{max(r['compiled'] for r in recs)} | {', '.join(heavy) or 'none'} |")

    for tag, _ in trees:
        lines.append(row(f"{tag}launch 1 (compiles)", [first[tag]]))
        lines.append(row(f"{tag}launches 2–{len(cached[tag]) + 1} (numba cache; median)", cached[tag]))
    for name, c in floor_cmds.items():
        lines.append(f"| {name}: `{' '.join(c[1:])}` (median of {len(floors[name])}) | — | — | — | "
                     f"{float(np.median(floors[name])):.3f} | — | — |")
    prof = _import_profile(cmd, envs[""])
    lines.append("")
    lines.append("Import self-time by top-level package, one more launch (python -X importtime; inflated by the "
                 "instrumentation): " + ", ".join(f"{p} {s:.3f} s" for p, s in prof))
    return "\n".join(lines)


#: One fresh process that does what ``chemtomo ptycho`` does before its first iteration, step by
#: step, and prints each step's wall time (seconds since the script's first line).
TIMELINE = textwrap.dedent("""
    import time
    t = [("start", time.perf_counter())]
    def mark(name): t.append((name, time.perf_counter()))
    import numpy; mark("import numpy")
    import scipy.fft; mark("import scipy.fft")
    import numba; mark("import numba")
    import h5py; mark("import h5py")
    import typer, rich.progress; mark("import typer, rich.progress")
    import typer._adapters; mark("pydantic (typer's parameter coercion)")
    import chemtomo.cli; mark("import chemtomo.cli")
    import chemtomo.io, chemtomo.ptycho; mark("import chemtomo.io, chemtomo.ptycho")
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh(); mark("numba's CPU target set-up (on the first kernel load)")
    import json, sys, warnings
    s = chemtomo.io.read_scan(sys.argv[1]); mark("read_scan")
    first = []
    def progress(d, n):
        if not first: first.append(time.perf_counter())
    warnings.simplefilter("ignore")
    chemtomo.ptycho.reconstruct(s, "RAAR:1", frc=False, progress=progress)
    t.append(("set-up and the first iteration (kernels from the cache)", first[0]))
    print("TIMELINE " + json.dumps([(n, v - t[0][1]) for n, v in t[1:]]))
""")


def part_timeline(python: str, repeats: int = 3) -> str:
    """Where the time to the first iteration goes, step by step (medians over fresh processes;
    a first process fills the numba cache and is not counted)."""
    from chemtomo.io import write_scan

    work = Path(tempfile.mkdtemp(prefix="chemtomo_timeline_"))
    cxi = write_scan(work / "scan32.cxi", simulated_scan(32, 6, 1e5))
    script = work / "timeline.py"
    script.write_text(TIMELINE)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(work / "numba_cache"),
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = []
    for k in range(repeats + 1):
        p = subprocess.run([python, str(script), str(cxi)], capture_output=True, text=True, env=env)
        rec = [json.loads(x[len("TIMELINE "):]) for x in p.stdout.splitlines() if x.startswith("TIMELINE ")]
        if not rec:
            return f"timeline failed: {(p.stdout + p.stderr)[-500:]!r}"
        if k:
            runs.append(rec[0])
    names = [n for n, _ in runs[0]]
    at = np.array([[v for _, v in r] for r in runs])
    step = np.diff(np.concatenate([np.zeros((len(runs), 1)), at], axis=1), axis=1)
    lines = [f"| step | wall time (s, median of {len(runs)}) | at (s) |", "|---|---|---|"]
    for i, name in enumerate(names):
        lines.append(f"| {name} | {np.median(step[:, i]):.3f} | {np.median(at[:, i]):.3f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- FFT workers
def part_fft_workers(repeats: int = 300) -> str:
    """One forward scipy.fft of a stack of frames with one worker and with all cores, the stacks
    the solvers transform (one probe, a dozen shift bins, a PIE or LSQML batch, every frame), and
    the count ``core.fft.fft_workers(size)`` chooses: a thread pool's wake-up costs as much as a
    small transform, so a stack below ``MIN_WORKER_ELEMENTS`` per worker is faster on one."""
    import scipy.fft as sfft

    from chemtomo.core.fft import MIN_WORKER_ELEMENTS, WORKERS, fft_workers

    def per_call(a: np.ndarray, workers: int) -> float:
        sfft.fft2(a, workers=workers)
        t = time.perf_counter()
        for _ in range(repeats):
            sfft.fft2(a, workers=workers)
        return (time.perf_counter() - t) / repeats * 1e6

    head = (f"One forward transform per call, complex64, medians of 3 × {repeats} calls; all cores = "
            f"{WORKERS} workers; the rule: at least {MIN_WORKER_ELEMENTS:,} elements per worker.")
    lines = [head, "",
             f"| stack | elements | 1 worker (µs) | {WORKERS} workers (µs) | {WORKERS} ÷ 1 | chosen | chosen ÷ faster |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n in (64, 128, 256):
        for b in (1, 2, 4, 8, 16, 32, 64):
            a = np.ones((b, n, n), np.complex64)
            one = float(np.median([per_call(a, 1) for _ in range(3)]))
            many = float(np.median([per_call(a, WORKERS) for _ in range(3)]))
            chosen = fft_workers(a.size)
            got = one if chosen == 1 else many
            lines.append(f"| {b} × {n}² | {a.size:,} | {one:.0f} | {many:.0f} | {many / one:.2f} | {chosen} | "
                         f"{got / min(one, many):.2f} |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- iterations
class _FloorPair:
    """One in-place forward + inverse FFT of an aligned array shaped like the frames, all cores,
    through ``core.fft.stack_fft2``: the transforms every iteration must do, with the library the
    solvers use (FFTW where pyFFTW is installed and the frames' sides are in ``FFTW_SIDES``, else
    scipy's pocketfft; the table's heading says which)."""

    def __init__(self, shape: tuple[int, ...]):
        from chemtomo.core.fft import WORKERS, backend, empty_aligned, stack_fft2

        self.stack_fft2, self.workers = stack_fft2, WORKERS
        self.backend = backend(shape)
        self.a = empty_aligned(shape)
        self.a[...] = 1
        for _ in range(2):
            self()

    def __call__(self) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        self.a = self.stack_fft2(self.a, norm="ortho", workers=self.workers, overwrite_x=True)
        self.a = self.stack_fft2(self.a, inverse=True, norm="ortho", workers=self.workers, overwrite_x=True)
        return time.perf_counter() - t, time.process_time() - c


def part_fft_backends(repeats: int = 100) -> str:
    """One in-place forward transform of a stack of 16 frames, per frame: scipy's pocketfft and
    FFTW (pyFFTW, ``FFTW_ESTIMATE`` plans, as ``core.fft`` makes them), one thread each; the
    evidence for ``core.fft.FFTW_SIDES``."""
    import scipy.fft as sfft

    from chemtomo.core.fft import FFTW_SIDES, backend, empty_aligned

    try:
        import pyfftw
    except ImportError:
        return "pyFFTW is not installed (pip install 'chemtomo[fftw]'): nothing to compare"

    def per_frame(f, b: int) -> float:
        f()
        t = time.perf_counter()
        for _ in range(repeats):
            f()
        return (time.perf_counter() - t) / repeats / b * 1e6

    lines = [f"Per frame, one forward complex64 transform in place in a stack of 16, one thread, medians of 3 × "
             f"{repeats} calls; FFTW_SIDES = {sorted(FFTW_SIDES)}.", "",
             "| frame | pocketfft (µs) | FFTW, estimated plan (µs) | FFTW ÷ pocketfft | core.fft uses |",
             "|---|---:|---:|---:|---|"]
    for n in (16, 32, 48, 64, 96, 100, 128, 192, 200, 256, 512):
        a = empty_aligned((16, n, n))
        a[...] = 1
        pocket = float(np.median([per_frame(lambda: sfft.fft2(a, axes=(-2, -1), workers=1, overwrite_x=True), 16)
                                  for _ in range(3)]))
        plan = pyfftw.FFTW(a, a, axes=(1, 2), flags=("FFTW_ESTIMATE",), threads=1)
        fftw = float(np.median([per_frame(plan.execute, 16) for _ in range(3)]))
        lines.append(f"| {n}² | {pocket:.1f} | {fftw:.1f} | {fftw / pocket:.2f} | {backend(a.shape)} |")
    return "\n".join(lines)


def part_iterations(frames: int, n: int, iterations: int, algorithms: list[str]) -> str:
    """Each iteration is timed against an FFT floor pair measured right after it (in the
    progress callback, outside the timed interval), so that the machine's load, which drifts on
    a shared machine, divides out; the table gives medians over the iterations."""
    from chemtomo.ptycho import ProbeOptions, PtychoOptions, reconstruct

    grid = int(round(np.sqrt(frames)))
    scan = simulated_scan(n, grid, 1e6)
    floor = _FloorPair(scan.frames.shape)
    variants = [(alg, alg, None) for alg in algorithms]
    if "RAAR" in algorithms:
        variants.insert(algorithms.index("RAAR") + 1,
                        ("RAAR, probe fixed", "RAAR", PtychoOptions(probe=ProbeOptions(refine=False))))
    rows, floors_wall, floors_cpu = [], [], []
    for label, alg, options in variants:
        rec = {"wall": [], "cpu": [], "floor_wall": [], "floor_cpu": []}
        mark = {}

        def progress(done, total):
            t, c = time.perf_counter(), time.process_time()
            if mark:
                rec["wall"].append(t - mark["t"])
                rec["cpu"].append(c - mark["c"])
                fw, fc = floor()
                rec["floor_wall"].append(fw)
                rec["floor_cpu"].append(fc)
            mark["t"], mark["c"] = time.perf_counter(), time.process_time()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reconstruct(scan, f"{alg}:1", frc=False, options=options)  # compiles (or loads) its kernels
            proj = reconstruct(scan, f"{alg}:{iterations + 2}", frc=False, options=options, progress=progress)
        k = 1  # the first timed interval (iteration 2) still warms buffers up
        w, c = np.asarray(rec["wall"][k:]), np.asarray(rec["cpu"][k:])
        fw, fc = np.asarray(rec["floor_wall"][k:]), np.asarray(rec["floor_cpu"][k:])
        floors_wall += list(fw)
        floors_cpu += list(fc)
        rows.append((label, alg, float(np.median(w)) if len(w) else float("nan"),
                     float(np.median(w / fw)) if len(w) else float("nan"),
                     float(np.median(c)) if len(c) else float("nan"),
                     float(np.median(c / fc)) if len(c) else float("nan"), len(w), bool(proj.info["diverged"])))
    lines = [f"Scan: {scan.n_frames} frames of {n}², 10⁶ photons per frame, transforms by {floor.backend}; "
             f"{iterations} timed iterations per "
             f"solver, each divided by the FFT floor pair measured right after it (floor over the run: "
             f"median {np.median(floors_wall) * 1e3:.1f} ms wall, range {np.min(floors_wall) * 1e3:.1f}–"
             f"{np.max(floors_wall) * 1e3:.1f} ms; {np.median(floors_cpu) * 1e3:.1f} ms CPU); medians over the "
             "iterations", "",
             "| solver | ms/iteration (wall) | × FFT floor (wall) | ms/iteration (CPU) | × FFT floor (CPU) | target |",
             "|---|---|---|---|---|---|"]
    for label, alg, w, rw, c, rc, count, diverged in rows:
        target = TARGETS.get(alg)
        note = " (diverged: stopped early)" if diverged else ""
        met = "" if target is None else (" (met)" if max(rw, rc) <= target else " (not met)")
        lines.append(f"| {label}{note} | {w * 1e3:.1f} | {rw:.2f} | {c * 1e3:.1f} | {rc:.2f} | "
                     f"{'≤ %.1f×' % target + met if target else '—'} |")
    return "\n".join(lines)


def compare_iterations(args) -> str:
    """Runs ``--part iterations`` in child processes on this tree and on ``--baseline-src``,
    alternately, and tabulates the medians of the CPU ratios and their quotient."""
    import re

    trees = {"this tree": str(ROOT / "src"), "baseline": str(Path(args.baseline_src).resolve())}
    cpu: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    wall: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    cmd = [sys.executable, __file__, "--part", "iterations", "--frames", str(args.frames), "--n", str(args.n),
           "--iterations", str(args.iterations), "--algorithms", args.algorithms]
    for _ in range(args.rounds):
        for tag, src in trees.items():
            env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env).stdout
            for line in out.splitlines():
                m = re.match(r"\| ([^|]+?)(?: \(diverged[^|]*)? \| [\d.]+ \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", line)
                if m:
                    wall[tag].setdefault(m.group(1), []).append(float(m.group(2)))
                    cpu[tag].setdefault(m.group(1), []).append(float(m.group(3)))
    lines = [f"{args.rounds} alternations; per solver the median over them of each run's median ratio "
             "(iteration ÷ the FFT floor pair measured right after it)", "",
             "| solver | this tree × floor (CPU) | baseline × floor (CPU) | this ÷ baseline (CPU) | "
             "this tree × floor (wall) | baseline × floor (wall) | target |", "|---|---|---|---|---|---|---|"]
    for label in cpu["this tree"]:
        a, b = np.median(cpu["this tree"][label]), np.median(cpu["baseline"].get(label, [np.nan]))
        aw, bw = np.median(wall["this tree"][label]), np.median(wall["baseline"].get(label, [np.nan]))
        target = TARGETS.get(label.split(",")[0])
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {a / b:.2f} | {aw:.2f} | {bw:.2f} | "
                     f"{'≤ %.1f×' % target if target else '—'} |")
    return "\n".join(lines)


def part_command(python: str, baseline_src: str, frames: int, n: int, rounds: int, photons: float = 1e6) -> str:
    """``chemtomo ptycho SCAN.cxi -o OUT.cxi`` as a user types it (the library default chain,
    background retrieval, the split-half FRC; on 2 cores the halves run beside the full scan,
    each on one core) on a simulated scan, this tree and ``baseline_src`` alternately, whole
    processes timed from spawn to exit; the outputs' transmissions are compared bit for bit."""
    import hashlib

    from chemtomo.io import read_projection, write_scan

    work = Path(tempfile.mkdtemp(prefix="chemtomo_command_"))
    grid = int(round(np.sqrt(frames)))
    cxi = write_scan(work / "scan.cxi", simulated_scan(n, grid, photons))
    trees = {"this tree": str(ROOT / "src"), "baseline": str(Path(baseline_src).resolve())}
    times: dict[str, list[float]] = {t: [] for t in trees}
    digests: dict[str, set[str]] = {t: set() for t in trees}
    info = ""
    for k in range(rounds + 1):  # round 0 fills each tree's numba cache and is not counted
        # the order flips every round (ABBA...), so that a load that drifts during a round falls
        # on both trees alike
        for tag, src in (list(trees.items()) if k % 2 else list(trees.items())[::-1]):
            out = work / f"out_{tag.replace(' ', '_')}.cxi"
            env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   "NUMBA_CACHE_DIR": str(work / f"numba_{tag.replace(' ', '_')}")}
            t0 = time.perf_counter()
            p = subprocess.run([python, "-m", "chemtomo.cli", "-q", "ptycho", str(cxi), "-o", str(out)],
                               capture_output=True, text=True, env=env)
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                return f"command failed on {tag}: {(p.stdout + p.stderr)[-500:]!r}"
            if k:
                times[tag].append(dt)
            proj = read_projection(out)
            digests[tag].add(hashlib.sha1(np.ascontiguousarray(proj.transmission).tobytes()).hexdigest()[:12])
            info = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else info
    a, b = float(np.median(times["this tree"])), float(np.median(times["baseline"]))
    same = digests["this tree"] == digests["baseline"] and len(digests["this tree"]) == 1
    return "\n".join([
        f"Scan: {grid * grid} frames of {n}², {photons:.0e} photons per frame; {rounds} timed launches per tree, alternated "
        f"(the order flipped every round); "
        f"last output line: {info}", "",
        "| tree | whole process (s, median) | runs (s) |", "|---|---|---|",
        f"| this tree | {a:.2f} | {', '.join(f'{t:.2f}' for t in times['this tree'])} |",
        f"| baseline | {b:.2f} | {', '.join(f'{t:.2f}' for t in times['baseline'])} |",
        f"| this ÷ baseline | {a / b:.2f} | transmissions bit-identical: {'yes' if same else 'NO'} |"])


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()
    import numba
    import scipy

    return (f"{os.cpu_count()} cores, {cpu}, load average {load[0]:.2f}; Python {platform.python_version()}, "
            f"NumPy {np.__version__}, SciPy {scipy.__version__}, numba {numba.__version__} "
            f"(threads {numba.get_num_threads()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "startup", "timeline", "fft-workers", "fft-backends", "iterations",
                                       "command"],
                    default="all",
                    help="command (only with --baseline-src, not in all): the whole `chemtomo ptycho` run")
    ap.add_argument("--frames", type=int, default=400, help="frames of the iteration scan (a square raster)")
    ap.add_argument("--n", type=int, default=128, help="frame size of the iteration scan (pixels)")
    ap.add_argument("--photons", type=float, default=1e6, help="photons per frame of the command's scan (--part command)")
    ap.add_argument("--iterations", type=int, default=12, help="timed iterations per solver")
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS))
    ap.add_argument("--python", default=sys.executable, help="interpreter for the start-up launches")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two trees (--baseline-src)")
    ap.add_argument("--launches", type=int, default=2,
                    help="cached start-up launches per tree, alternated with the other tree and the floors")
    ap.add_argument("--baseline-src", default=None,
                    help="another chemtomo source tree (e.g. `git archive` of an older commit) launched the same way")
    args = ap.parse_args()
    print(f"# ptycho_speed: {machine()}\n", flush=True)
    if args.part in ("all", "startup"):
        print("## Start-up: chemtomo ptycho on a 32² scan (36 frames), RAAR:1, --no-frc\n", flush=True)
        print(part_startup(args.python, args.baseline_src, args.launches) + "\n", flush=True)
    if args.part in ("all", "timeline"):
        print("## Start-up step by step: what `chemtomo ptycho` does before its first iteration\n", flush=True)
        print(part_timeline(args.python) + "\n", flush=True)
    if args.part in ("all", "fft-workers"):
        print("## scipy.fft workers by the size of the stack\n", flush=True)
        print(part_fft_workers() + "\n", flush=True)
    if args.part in ("all", "fft-backends"):
        print("## FFTW against pocketfft by frame size\n", flush=True)
        print(part_fft_backends() + "\n", flush=True)
    if args.part == "command":
        if not args.baseline_src:
            ap.error("--part command needs --baseline-src")
        print("## `chemtomo ptycho SCAN.cxi -o OUT.cxi` (default chain, FRC): whole processes\n", flush=True)
        print(part_command(args.python, args.baseline_src, args.frames, args.n, args.rounds, args.photons), flush=True)
        return
    if args.part in ("all", "iterations") and args.baseline_src:
        print("## Iteration cost against the FFT floor: this tree and the baseline, alternated\n", flush=True)
        print(compare_iterations(args), flush=True)
    elif args.part in ("all", "iterations"):
        print("## Iteration cost against the FFT floor\n", flush=True)
        print(part_iterations(args.frames, args.n, args.iterations, args.algorithms.split(",")), flush=True)


if __name__ == "__main__":
    main()
