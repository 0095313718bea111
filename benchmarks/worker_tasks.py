"""Per-task time and peak memory of a Dask worker at the paper preset's size, one task kind at a
time, each in a fresh single-threaded process (what ``dask worker --nthreads 1`` runs).

Task kinds, with the paper preset's shapes (158 angles, two energies, 170×274 px projections,
a 170×274×274 volume, 459 frames of 64² per scan):

- ``ptycho``: ``reconstruct_scan_file`` on one simulated paper scan, RAAR:50 (what ``auto`` chose
  on the paper preset), FRC on (the pipeline's costliest case: two extra half reconstructions);
- ``recon``: ``_recon_block``, ART-20 of one block of 16 slices (``tomo.block_slices``);
- ``align-recon``: the alignment's ``_recon_project_block``, ART-3 warm-started, one block of
  43 slices (two blocks per worker with 2 workers; fewer slices with more workers) and its
  reprojection at all 158 angles;
- ``align-register``: ``register_similarity`` of 14 projections (6 tasks per worker thread with
  2 workers) onto shifted copies, similarity fit with 30 LM steps at most.

The projections of ``recon`` and ``align-*`` are those of a simulated plate sample of the
paper's size (the cost of ART does not depend on the content; the LM iteration count does, so
the registration uses the real projections shifted by a known sub-pixel amount).

"base" is the process's resident memory after imports and input creation (the simulation that
made the inputs freed), "peak" its highest resident memory during the task (``VmHWM``, reset
just before the task): imports, inputs and the task's own arrays together. These are what ``dask worker --memory-limit``
must hold (plus Dask's own ~100 MiB and the results it keeps until the client takes them).
Not a test; never in CI.

    .venv/bin/python benchmarks/worker_tasks.py [--kinds ptycho recon align-recon align-register]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ENV = {"CHEMTOMO_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
       "OPENBLAS_NUM_THREADS": "1"}

TASK = textwrap.dedent("""
    import json, sys, time, tempfile
    import numpy as np
    kind = sys.argv[1]

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
        raise KeyError(field)

    def start():
        # inputs are made: forget the peak so far (Linux: "5" to clear_refs resets VmHWM), so
        # that the peak is the task's own on top of what the process holds now
        import gc
        gc.collect()
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return status("VmRSS"), time.perf_counter()

    def paper_projections(n_angles=158):
        from chemtomo.simulate import plate_sample
        from chemtomo import tomo
        s = plate_sample((170, 274, 274), 6.7e-9, n_particles=80, seed=1)
        vol = np.asarray(s.occupancy, np.float32)
        angles = np.linspace(-80.0, 77.0, n_angles)
        return tomo.project(vol, angles), angles

    if kind == "ptycho":
        from chemtomo.io import write_scan
        from chemtomo.pipeline.ptycho_stage import reconstruct_scan_file
        from chemtomo.simulate import simulate_dataset
        ds = simulate_dataset("paper", seed=0)
        path = tempfile.mkdtemp() + "/scan.cxi"
        write_scan(path, ds.scans[len(ds.scans) // 2])
        del ds
        base, t0 = start()
        reconstruct_scan_file(path, {}, {"algorithm": "RAAR:50", "frc": True, "seed": 0})
    else:
        proj, angles = paper_projections()
        if kind == "recon":
            from chemtomo.pipeline.tomo_stage import _recon_block
            block = np.ascontiguousarray(proj[:, 77:93])
            base, t0 = start()
            _recon_block(block, angles, {"algorithm": "art", "iterations": 20, "nonneg": True})
        elif kind == "align-recon":
            from chemtomo.align.cluster import _recon_project_block
            block = np.ascontiguousarray(proj[:, 64:107])
            prev = _recon_project_block(block, angles, angles, "art", 3, None, proj.shape[2])
            base, t0 = start()
            _recon_project_block(block, angles, angles, "art", 3, prev, proj.shape[2])
        else:
            from scipy import ndimage
            from chemtomo.align.register import edge_window, register_similarity
            ref = np.ascontiguousarray(proj[70:84])
            raw = np.stack([ndimage.shift(p, (0.4, -0.7), order=3) for p in ref]).astype(np.float32)
            k = len(ref)
            window = edge_window(ref.shape[1:], fraction=0.15)
            base, t0 = start()
            register_similarity(ref, raw, init=(np.zeros((k, 2)), np.zeros(k), np.ones(k)), weight=window,
                                similarity=True, max_iter=30)
    print("RESULT " + json.dumps({"kind": kind, "seconds": time.perf_counter() - t0, "base_mib": base,
                                  "peak_mib": status("VmHWM")}))
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = ["ptycho", "recon", "align-recon", "align-register"]
    ap.add_argument("--kinds", nargs="+", default=kinds, choices=kinds)
    ap.add_argument("--json", type=Path, help="also write {kind: seconds} here (benchmarks/scaling_model.py --tasks)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    for kind in args.kinds:
        env = dict(os.environ, **ENV, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        r = subprocess.run([sys.executable, "-c", TASK, kind], capture_output=True, text=True, env=env)
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(r.stderr[-3000:])
        rows.append(json.loads(line[7:]))
        print(f"  {rows[-1]}  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load average at start {load0}, at end {os.getloadavg()}")
    print("| task (paper size) | seconds (1 core) | process base (MiB) | peak (MiB) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['seconds']:.2f} | {r['base_mib']:.0f} | {r['peak_mib']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({r["kind"]: r["seconds"] for r in rows}))


if __name__ == "__main__":
    main()
