"""The local cluster's workers as threads or as processes (``compute.processes``), in one run.

Two parts, on the demo dataset (``chemtomo simulate --preset demo``: 62 scans of 36–54 frames of
64², the pipeline's default ptychography), all in this script's run:

- ``scans``: six of the demo's scans reconstructed by ``ptycho.reconstruct`` (the default chain,
  no FRC, each on one core as the pipeline's tasks run them, ``core.fft.one_core``): one after
  the other in one thread, in two threads, in two processes (spawned, warmed up first). The
  ratio of the one-thread time to each: what two workers give on scans of this size.
- ``many``: ``ptycho.reconstruct_many`` on ``--many`` distinct scans of the dataset (read into
  memory first), ``processes=False`` (Dask's threaded scheduler) against ``processes=True`` (a process
  per core, each scan on one core of it), each call timed whole: the processes' start, which
  every call pays, included.
- ``run``: ``chemtomo run MANIFEST --no-report`` with ``compute.processes = "off"`` (one
  in-process worker with a thread per core, the local cluster until session 26) and ``"on"``
  (a worker process per core), whole processes, alternated ``--rounds`` times (the order
  flipped every round). Per run: the ptycho stage's and the whole run's seconds, and whether
  the projections are the same bits as the first run's.

Not a test; never in CI::

    .venv/bin/python benchmarks/pipeline_workers.py [--parts scans many run] [--rounds 1] [--out /tmp/workers]
    .venv/bin/python benchmarks/pipeline_workers.py --parts many --many 6 24
    .venv/bin/python benchmarks/pipeline_workers.py --parts scans --data benchmarks/out/paper/data  # paper-sized scans
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _reconstruct_one(path: str) -> float:
    """One scan, the default chain, on one core (as a pipeline task): seconds."""
    from chemtomo.core.fft import one_core
    from chemtomo.io import read_scan
    from chemtomo.ptycho import reconstruct

    warnings.simplefilter("ignore")
    scan = read_scan(path)
    t = time.perf_counter()
    with one_core():
        reconstruct(scan, frc=False)
    return time.perf_counter() - t


def part_scans(paths: list[str]) -> str:
    _reconstruct_one(paths[0])  # numba's cache, this process
    t = time.perf_counter()
    for p in paths:
        _reconstruct_one(p)
    one = time.perf_counter() - t
    with ThreadPoolExecutor(2) as ex:
        t = time.perf_counter()
        list(ex.map(_reconstruct_one, paths))
        threads = time.perf_counter() - t
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        list(ex.map(_reconstruct_one, paths[:2]))  # imports and numba's cache in both processes
        t = time.perf_counter()
        list(ex.map(_reconstruct_one, paths))
        procs = time.perf_counter() - t
    return "\n".join([
        f"{len(paths)} scans of {Path(paths[0]).parent.parent}, the default chain, no FRC, each on one core:", "",
        "| how | seconds | one thread ÷ this |", "|---|---:|---:|",
        f"| one thread, one after the other | {one:.2f} | 1.00 |",
        f"| two threads | {threads:.2f} | {one / threads:.2f} |",
        f"| two processes | {procs:.2f} | {one / procs:.2f} |"])


def part_many(paths: list[str], counts: list[int], rounds: int) -> str:
    from chemtomo.io import read_scan
    from chemtomo.ptycho import reconstruct_many

    warnings.simplefilter("ignore")
    scans = [read_scan(p) for p in paths[:max(counts)]]  # distinct scans: Dask would run a repeated one once
    reconstruct_many(scans[:2], frc=False)  # numba's cache, this process
    lines = [(f"`ptycho.reconstruct_many` (the default chain, no FRC), whole calls, alternated; minimum of {rounds} "
              "round(s):"), "", "| scans | processes=False (s) | processes=True (s) | False ÷ True |",
             "|---:|---:|---:|---:|"]
    for n in counts:
        chosen = scans[:n]
        times: dict[bool, list[float]] = {False: [], True: []}
        for k in range(rounds):
            for processes in ((False, True) if k % 2 == 0 else (True, False)):
                t = time.perf_counter()
                reconstruct_many(chosen, frc=False, processes=processes)
                times[processes].append(time.perf_counter() - t)
        a, b = min(times[False]), min(times[True])
        lines.append(f"| {n} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    return "\n".join(lines)


def part_run(manifest: Path, out: Path, rounds: int) -> str:
    from chemtomo.io.store import RunStore

    rows: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    digests: set[str] = set()
    for k in range(rounds):
        for mode in (("off", "on") if k % 2 == 0 else ("on", "off")):
            config = out / f"run_{mode}.toml"
            config.write_text(f'[input]\nmanifest = "{manifest.as_posix()}"\n[compute]\nprocesses = "{mode}"\n')
            store = out / f"run_{mode}.zarr"
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "chemtomo.cli", "-q", "run", str(config), "--out", str(store),
                                "--no-report", "--restart"], capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t
            if p.returncode:
                return f"run failed ({mode}): {(p.stdout + p.stderr)[-800:]}"
            s = RunStore(store, create=False)
            rows[mode].append((s.stage_record("ptycho")["seconds"], wall))
            h = hashlib.sha1()
            for key in ("projections/708.2", "projections/710.2"):
                h.update(np.ascontiguousarray(s.read(key)).tobytes())
            digests.add(h.hexdigest())
    med = {m: np.median(np.array(v), axis=0) for m, v in rows.items()}
    return "\n".join([
        f"`chemtomo run` on {manifest.parent.name}, {rounds} round(s), alternated; medians:", "",
        "| compute.processes | ptycho stage (s) | whole run (s) | runs (ptycho s) |", "|---|---:|---:|---|",
        *(f"| {m} | {med[m][0]:.1f} | {med[m][1]:.1f} | {', '.join(f'{a:.1f}' for a, _ in rows[m])} |"
          for m in ("off", "on")),
        (f"| off ÷ on | {med['off'][0] / med['on'][0]:.2f} | {med['off'][1] / med['on'][1]:.2f} | projections "
         f"bit-identical in every run: {'yes' if len(digests) == 1 else 'NO'} |")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["scans", "run"], choices=["scans", "many", "run"])
    ap.add_argument("--many", nargs="+", type=int, default=[6, 24], help="scans per reconstruct_many call (--parts many; "
                                                                      "distinct scans of the dataset)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default="/tmp/chemtomo_workers")
    ap.add_argument("--data", default=None, help="a simulated dataset's folder (e.g. the paper preset's, as "
                                                 "benchmarks/pipeline_paper.py leaves it); default: the demo, simulated")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else out / "demo"
    if not (data / "manifest.csv").exists():
        subprocess.run([sys.executable, "-m", "chemtomo.cli", "-q", "simulate", str(data), "--preset", "demo"], check=True)
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    print(f"# pipeline_workers: {os.cpu_count()} cores, {cpu}, load average "
          f"{load[0]:.2f}; Python {platform.python_version()}\n", flush=True)
    if "scans" in args.parts:
        paths = sorted(str(p) for p in (data / "scans").glob("*.cxi"))[:: 10][:6]
        print(part_scans(paths) + "\n", flush=True)
    if "many" in args.parts:
        paths = sorted(str(p) for p in (data / "scans").glob("*.cxi"))
        paths = paths[::max(1, len(paths) // max(args.many))]  # spread over angles and energies
        print(part_many(paths, args.many, args.rounds) + "\n", flush=True)
    if "run" in args.parts:
        print(part_run((data / "manifest.csv").resolve(), out, args.rounds), flush=True)


if __name__ == "__main__":
    main()
