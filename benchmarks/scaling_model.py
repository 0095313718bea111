"""A scaling model of `chemtomo run` on W single-core Dask workers, for sizes no one here can run.

Every stage is one of three shapes:

- **task farm** (ptycho, recon): m independent tasks of t seconds each on W workers take
  ``ceil(m / W) · t`` (whole waves: the last wave is as long as a full one), plus the scheduler's
  cost per task and the client's transfer of each task's inputs and results;
- **iterated farm** (align): per outer iteration, a farm of slice-block reconstructions (two
  blocks per worker, but never fewer than ``MIN_SLICES`` slices a block) and a farm of
  registrations (six tasks per worker, at least one angle each), then the client's own serial
  work (gauge removal, support update, restarts) and the transfer of the reprojections back (the
  slice-block tasks warp their own rows from the raw projections on their workers: session 4) (the registration tasks take the reprojections from the workers
  that made them, not through the client: issue 25);
- **client serial** (reading the projections into tilt series, energy registration, coarse
  alignment, FSC, chemistry, particles, report): on the client whatever W is.

Inputs (constants below, each with where it was measured):

- per-task seconds on one core at the paper preset's size: ``benchmarks/worker_tasks.py``;
- client serial seconds per stage: the paper preset run of ``benchmarks/pipeline_paper.py``
  (issue 15, run C, benchmarks/RESULTS.md), and the alignment's client profile (same file);
- data sizes: the arrays' shapes (float32 / complex64);
- the client's network: ``BANDWIDTH`` bytes/s (10 GbE, 1.1 GB/s, an assumption: a beamline
  cluster's usual link; loopback here is faster) and ``TASK_OVERHEAD`` s of scheduler and client
  time per task (Dask's documented ~1 ms order).

The 10× dataset is the paper's sample at 20 energies instead of 2 (3,160 scans: an XANES stack
across the Fe L3 edge, the natural way such a dataset grows): ptychography, reading, the
reconstruction and the chemistry grow 10×; the alignment works on the energies' sum, so only its
energy registration grows; the FSC (one energy) and the particles do not.

    .venv/bin/python benchmarks/scaling_model.py [--tasks worker_tasks.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# -- per-task seconds on one core, paper preset, on a quiet machine:
#    ptycho: a RAAR:50 scan, 1.65 s (issue 15, benchmarks/RESULTS.md, quiet);
#    recon: run C's recon stage, 93.8 s on 2 cores for 2 × 11 blocks of 16 slices -> 8.5 s a block;
#    align-*: benchmarks/worker_tasks.py measured 11.6 s (43 slices, ART-3 + reprojection) and
#    5.1 s (14 registrations) under load 8-12 on 2 cores; their ratio kept, scaled so that the
#    model's one-worker alignment equals issue 15's measured align-paper on one worker (71.1 s).
#    Session 4 (the warp on the workers, compiled coordinates): Dask's task stream of one
#    align-paper run on one worker (quiet machine) summed 33.9 s of slice-block tasks and 39.1 s of
#    registrations in a 74.5 s run; scaled to the mean one-worker time of 16 alternating runs
#    (69.9 s) and divided over the model's 744.5 slice and 750.5 angle units of 3 + 4 iterations.
TASK_S = {"ptycho": 1.65, "recon": 8.5, "align-recon": 1.84, "align-register": 0.68}
#: measured wall seconds, paper preset: W=1 alignment (issue 15, align-paper, one worker process,
#: quiet); W=2 the whole run C of issue 15 (in-process, 2 threads: ptycho includes the `auto`
#: trials, about 12 s)
#: and the alignment alone on the paper preset's series (session 4, 16 alternating runs):
#: ALIGN_MEASURED below
MEASURED = {1: {"align": 69.9}, 2: {"ptycho": 384.2, "tiltseries": 19.8, "align": 63.0, "recon": 93.8,
                                    "fsc": 30.8, "chem": 4.2, "particles+report": 10.9, "total": 606.9}}
ALIGN_MEASURED = {1: 69.9, 2: 40.1}  # pipeline_scaling.py --parts align-paper --paper-sim, means of 8
TASK_SHAPE = {"recon": 16, "align-recon": 43, "align-register": 14}  # slices / angles per measured task

# -- the paper preset
N_ANGLES, NY, NX = 158, 170, 274
FRAMES, FRAME_PX = 459, 64
OBJECT_PX = (300, 420)  # a reconstructed scan's object array (complex64), the paper preset's plan
MIN_SLICES = 4          # the alignment never cuts slice blocks thinner than this
REGISTER_PER_WORKER = 6
BINNED, FULL = 3, 4     # outer iterations: the paper run stopped after 3 binned + 3-4 full ones

# -- client serial seconds, paper preset, 2 energies (issue 15 run C; the alignment profile)
# (align-serial: 5.0 s in session 3, of which 4.2 s were the client's six stack warps, now on the workers)
CLIENT_S = {"tiltseries": 19.8, "align-serial": 1.0, "align-energies": 1.8, "fsc": 30.8, "chem": 4.2,
            "particles": 2.2, "report": 8.7}

BANDWIDTH = 1.1e9      # bytes/s of the client's link (10 GbE)
TASK_OVERHEAD = 1e-3   # s per task, scheduler + client


def farm(m: int, t: float, workers: int, bytes_moved: float) -> float:
    return math.ceil(m / workers) * t + m * TASK_OVERHEAD + bytes_moved / BANDWIDTH


def predict(workers: int, energies: int, task_s: dict, shared_storage: bool = True) -> dict:
    """Predicted seconds per stage for the paper sample at ``energies`` energies on W workers."""
    scale = energies / 2
    scans = N_ANGLES * energies
    out = {}
    # ptychography: inputs are paths (shared storage) or paths too (the task reads its scan
    # either way); results come back to the client unless the workers write them
    result_bytes = 0 if shared_storage else scans * OBJECT_PX[0] * OBJECT_PX[1] * 8
    out["ptycho"] = farm(scans, task_s["ptycho"], workers, result_bytes)
    out["tiltseries"] = CLIENT_S["tiltseries"] * scale
    # alignment, per outer iteration at full size; a binned one is 1/8 the reconstruction (voxels)
    # and 1/4 the registration and the data (pixels)
    per_slice = task_s["align-recon"] / TASK_SHAPE["align-recon"]
    per_angle = task_s["align-register"] / TASK_SHAPE["align-register"]
    proj_bytes = N_ANGLES * NY * NX * 4
    align = CLIENT_S["align-serial"] + CLIENT_S["align-energies"] * scale
    for k, (n_it, recon_f, pix_f) in enumerate(((BINNED, 1 / 8, 1 / 4), (FULL, 1.0, 1.0))):
        ny = NY // 2 if k == 0 else NY
        slices = max(MIN_SLICES, math.ceil(ny / (2 * workers)))
        blocks = math.ceil(ny / slices)
        angles = max(1, math.ceil(N_ANGLES / (REGISTER_PER_WORKER * workers)))
        reg_tasks = math.ceil(N_ANGLES / angles)
        # the transforms go out (bytes negligible: each block warps its rows on its worker), the reprojections come back
        it = (farm(blocks, slices * per_slice * recon_f * (2 if k == 0 else 1), workers, proj_bytes * pix_f)
              + farm(reg_tasks, angles * per_angle * pix_f, workers, 0.0))  # reprojections: worker to worker
        align += n_it * it
    out["align"] = align
    # reconstruction: blocks of 16 slices per energy; tilt blocks out, volume blocks back (or not)
    blocks = math.ceil(NY / TASK_SHAPE["recon"]) * energies
    moved = energies * (N_ANGLES * NY * NX * 4 + (0 if shared_storage else NY * NX * NX * 4))
    out["recon"] = farm(blocks, task_s["recon"], workers, moved)
    out["fsc"] = CLIENT_S["fsc"]
    out["chem"] = CLIENT_S["chem"] * scale
    out["particles+report"] = CLIENT_S["particles"] + CLIENT_S["report"]
    out["total"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=Path, help="JSON {kind: seconds} from benchmarks/worker_tasks.py --json")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8, 64, 256])
    args = ap.parse_args()
    task_s = dict(TASK_S)
    if args.tasks:
        task_s.update(json.loads(args.tasks.read_text()))
    print(f"per-task seconds (1 core, paper size): {task_s}")
    stages = ["ptycho", "tiltseries", "align", "recon", "fsc", "chem", "particles+report", "total"]
    for name, energies in (("paper (316 scans)", 2), ("10x (3,160 scans)", 20)):
        print(f"\n{name}, shared_storage = true; seconds")
        print("| workers | " + " | ".join(stages) + " | client serial share |")
        print("|---:|" + "---:|" * (len(stages) + 1))
        for w in args.workers:
            p = predict(w, energies, task_s)
            serial = (p["tiltseries"] + p["fsc"] + p["chem"] + p["particles+report"]
                      + CLIENT_S["align-serial"] + CLIENT_S["align-energies"] * energies / 2)
            print(f"| {w} | " + " | ".join(f"{p[s]:.0f}" for s in stages) + f" | {serial / p['total']:.0%} |")
            if energies == 2 and w in MEASURED:
                meas = MEASURED[w]
                print(f"| {w}, measured | " + " | ".join(f"{meas[s]:.0f}" if s in meas else "" for s in stages) + " | |")
            if energies == 2 and w in ALIGN_MEASURED:
                print(f"| {w}, measured, alignment alone | | | {ALIGN_MEASURED[w]:.0f} |" + " |" * (len(stages) - 2))


if __name__ == "__main__":
    main()
