"""A scaling model of `chemtomo run` on W single-core Dask workers, for sizes no one here can run.

Every stage is one of three shapes:

- **task farm** (ptycho, recon, the FSC's two halves one after the other): m independent tasks of
  t seconds each on W workers take ``ceil(m / W) · t`` (whole waves: the last wave is as long as
  a full one), plus the scheduler's cost per task and the client's transfer of each task's inputs
  and results; the reconstructions' blocks are those ``tomo.operator.slice_blocks`` cuts for W
  workers (up to 96 slices, narrower where a worker would idle, at ART's higher cost per slice);
- **iterated farm** (align): per outer iteration, a farm of slice-block reconstructions (two
  blocks per worker, but never fewer than ``MIN_SLICES`` slices a block) and a farm of
  registrations (six tasks per worker, at least one angle each), then the client's own serial
  work (gauge removal, support update, restarts) and the transfer of the reprojections back (the
  slice-block tasks warp their own rows from the raw projections on their workers: session 4) (the registration tasks take the reprojections from the workers
  that made them, not through the client: issue 25);
- **client serial** (reading the projections into tilt series, energy registration, coarse
  alignment, the FSC's correlation, chemistry, particles, report): on the client whatever W is.

Inputs (constants below, each with where it was measured):

- per-task seconds on one core at the paper preset's size: Dask's task stream of the pipeline's
  own stages (session 30 of issue 22) and, for the alignment, ``benchmarks/worker_tasks.py``;
- client serial seconds per stage: the paper preset runs of ``benchmarks/pipeline_paper.py``
  (sessions 26 and 30 of issue 22, benchmarks/RESULTS.md), and the alignment's client profile;
- data sizes: the arrays' shapes (float32 / complex64);
- the client's network: ``BANDWIDTH`` bytes/s (10 GbE, 1.1 GB/s, an assumption: a beamline
  cluster's usual link; loopback here is faster) and ``TASK_OVERHEAD`` s of scheduler and client
  time per task (Dask's documented ~1 ms order).

The 10× dataset is the paper's sample at 20 energies instead of 2 (3,160 scans: an XANES stack
across the Fe L3 edge, the natural way such a dataset grows): ptychography, reading, the
reconstruction and the chemistry grow 10×; the alignment works on the energies' sum, so only its
energy registration grows (one registration per energy beyond the reference); the FSC (one
energy) and the particles do not.

    .venv/bin/python benchmarks/scaling_model.py [--tasks worker_tasks.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from chemtomo.tomo.operator import slice_blocks

# -- per-task seconds on one core, paper preset (session 30 of issue 22 unless said):
#    ptycho: the default chain, one scan of 459 frames of 64², 3.3-3.7 s in the pipeline's own
#      tasks on two worker processes (Dask's task stream of 80 scans; the FRC scans, three
#      reconstructions each, 9.2-9.9 s): 3.5 s;
#    recon-slice: ART-20 per slice of a 96-slice block (blocks of tomo.operator.slice_blocks; the
#      recon stage's four tasks, two of 96 slices and two of 74, computed 54.4 s in all; narrower
#      blocks cost more per slice, WIDTH_COST);
#    fsc-slice: the same for the FSC's half tilt series (79 angles; four tasks, 29.1 s in all);
#    align-*: benchmarks/worker_tasks.py measured 11.6 s (43 slices, ART-3 + reprojection) and
#      5.1 s (14 registrations) under load 8-12 on 2 cores; their ratio kept, scaled so that the
#      model's one-worker alignment equals issue 15's measured align-paper on one worker (71.1 s).
#      Session 4 (the warp on the workers, compiled coordinates): Dask's task stream of one
#      align-paper run on one worker (quiet machine) summed 33.9 s of slice-block tasks and 39.1 s of
#      registrations in a 74.5 s run; scaled to the mean one-worker time of 16 alternating runs
#      (69.9 s) and divided over the model's 744.5 slice and 750.5 angle units of 3 + 4 iterations.
#      Not measured again since session 29 made ART's slice ranges and the registration's sums
#      faster (the in-process alignment went from 68.7 to 45.3 s): read the align column as an
#      upper bound.
#    align-energy: one energy's registration on one core, as a Dask task: five paper-size energies
#      took 27.7 s on two worker processes (two waves of two), 13 s a task.
TASK_S = {"ptycho": 3.5, "recon-slice": 0.151, "fsc-slice": 0.081, "align-recon": 1.84, "align-register": 0.68,
          "align-energy": 13.0}
#: ART's cost per slice against a 96-slice range, by block width (one core, ms per slice in
#: ranges of 16, 32, 64 and 96 slices: 14.1, 9.5, 7.45, 6.25; session 29)
WIDTH_COST = ((16, 2.26), (32, 1.52), (64, 1.19), (96, 1.0))
#: measured wall seconds, paper preset: W=1 alignment (issue 15, align-paper, one worker process,
#: quiet); W=2 the whole run: ptycho session 26 (two worker processes), the later stages
#: session 30 (the means of two runs of this tree; in-process alignment; the tilt series and the
#: chemistry as in CLIENT_S, session 31), the report session 26;
#: the alignment alone on the paper preset's series (session 4, 16 alternating runs):
#: ALIGN_MEASURED below
MEASURED = {1: {"align": 69.9}, 2: {"ptycho": 628.9, "tiltseries": 6.4, "align": 34.2, "recon": 30.5,
                                    "fsc": 18.3, "chem": 5.6, "particles+report": 12.8, "total": 736.7}}
ALIGN_MEASURED = {1: 69.9, 2: 40.1}  # pipeline_scaling.py --parts align-paper --paper-sim, means of 8
TASK_SHAPE = {"align-recon": 43, "align-register": 14}  # slices / angles per measured task
FRC_ANGLES = 3  # ptycho.frc_angles: scans per energy reconstructed three times (the split-half FRC)

# -- the paper preset
N_ANGLES, NY, NX = 158, 170, 274
FRAMES, FRAME_PX = 459, 64
OBJECT_PX = (300, 420)  # a reconstructed scan's object array (complex64), the paper preset's plan
MIN_SLICES = 4          # the alignment never cuts slice blocks thinner than this
REGISTER_PER_WORKER = 6
BINNED, FULL = 3, 4     # outer iterations: the paper run stopped after 3 binned + 3-4 full ones

# -- client serial seconds, paper preset (session 30 unless said): the tilt series of 2 energies
# (two threads; session 31, optical density a few images at a time: 6.3-6.5 s where session 30's
# code took 10.9-11.0 s in the same run), the alignment's own steps (session 4) and its energy
# registration per energy beyond the reference, the FSC's correlation and bookkeeping around its
# tasks, the chemistry of 2 energies (session 30's 6.0 s times session 31's ratio, 6.7-6.8 s
# against 7.1-7.4 s in one run: Otsu's threshold in blocks), the particles and the report
# (session 26)
CLIENT_S = {"tiltseries": 6.4, "align-serial": 1.0, "align-energy": 8.7, "fsc-client": 4.0, "chem": 5.6,
            "particles": 3.1, "report": 9.7}
#: the chemistry at 20 energies, measured (session 31): the paper volume's unmixing, noise and
#: XANES maps over 20 energies (the references' rows; a store made from the paper run's
#: concentrations), median of six runs 17.9-28.1 s; between and beyond the two measured counts,
#: linear in the energies
CHEM_MEASURED = ((2, CLIENT_S["chem"]), (20, 21.5))
#: the tilt series at six energies, measured (session 31): the paper's two energies' projections,
#: three copies each with other pixel sizes (five of six resampled), in the client's two threads,
#: 15.3-16.6 s; linear in the energies through the two measured counts
TILTSERIES_MEASURED = ((2, CLIENT_S["tiltseries"]), (6, 15.9))

BANDWIDTH = 1.1e9      # bytes/s of the client's link (10 GbE)
TASK_OVERHEAD = 1e-3   # s per task, scheduler + client


def farm(m: int, t: float, workers: int, bytes_moved: float) -> float:
    return math.ceil(m / workers) * t + m * TASK_OVERHEAD + bytes_moved / BANDWIDTH


def width_cost(width: int) -> float:
    """ART's cost per slice in a block of ``width`` slices, against a 96-slice block."""
    w, c = zip(*WIDTH_COST)
    return float(np.interp(width, w, c))


def slice_farm(n_volumes: int, per_slice: float, workers: int, bytes_moved: float) -> float:
    """``n_volumes`` volumes' slices in the blocks ``tomo.operator.slice_blocks`` cuts for
    ``workers``, one task each."""
    blocks = slice_blocks(NY, n_volumes, workers)
    width = max(y1 - y0 for y0, y1 in blocks)
    return farm(len(blocks) * n_volumes, width * per_slice * width_cost(width), workers, bytes_moved)


def predict(workers: int, energies: int, task_s: dict, shared_storage: bool = True) -> dict:
    """Predicted seconds per stage for the paper sample at ``energies`` energies on W workers."""
    scans = N_ANGLES * energies
    out = {}
    # ptychography: inputs are paths (shared storage) or paths too (the task reads its scan
    # either way); results come back to the client unless the workers write them. The FRC scans
    # cost three scans each.
    result_bytes = 0 if shared_storage else scans * OBJECT_PX[0] * OBJECT_PX[1] * 8
    out["ptycho"] = farm(scans + 2 * FRC_ANGLES * energies, task_s["ptycho"], workers, result_bytes)
    (e1, t1), (e2, t2) = TILTSERIES_MEASURED
    out["tiltseries"] = t1 + (t2 - t1) * (energies - e1) / (e2 - e1)
    # alignment, per outer iteration at full size; a binned one is 1/8 the reconstruction (voxels)
    # and 1/4 the registration and the data (pixels)
    per_slice = task_s["align-recon"] / TASK_SHAPE["align-recon"]
    per_angle = task_s["align-register"] / TASK_SHAPE["align-register"]
    proj_bytes = N_ANGLES * NY * NX * 4
    # the energy registration: in the client for one energy beyond the reference (or one worker),
    # else one task per energy on one core each (session 30)
    if energies - 1 > 1 and workers > 1:
        align = CLIENT_S["align-serial"] + farm(energies - 1, task_s["align-energy"], workers,
                                                 (energies - 1 + 3) * proj_bytes)  # each series, the reference's 3 arrays
    else:
        align = CLIENT_S["align-serial"] + CLIENT_S["align-energy"] * (energies - 1)
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
    # reconstruction: slice blocks of every energy; tilt blocks out, volume blocks back (or not)
    moved = energies * (N_ANGLES * NY * NX * 4 + (0 if shared_storage else NY * NX * NX * 4))
    out["recon"] = slice_farm(energies, task_s["recon-slice"], workers, moved)
    # FSC: the two halves' slice blocks, one half after the other (one energy), then the client
    half = N_ANGLES // 2 * NY * NX * 4
    out["fsc"] = 2 * slice_farm(1, task_s["fsc-slice"], workers, half) + CLIENT_S["fsc-client"]
    (e1, c1), (e2, c2) = CHEM_MEASURED
    out["chem"] = c1 + (c2 - c1) * (energies - e1) / (e2 - e1)
    out["particles+report"] = CLIENT_S["particles"] + CLIENT_S["report"]
    out["total"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=Path, help="JSON {kind: seconds} from benchmarks/worker_tasks.py --json")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8, 64, 256])
    args = ap.parse_args()
    task_s = dict(TASK_S)
    if args.tasks:  # worker_tasks.py's kinds; its "recon" (a 16-slice block) is not this model's per-slice cost
        given = json.loads(args.tasks.read_text())
        task_s.update({k: v for k, v in given.items() if k in task_s})
        if set(given) - set(task_s):
            print(f"ignored from {args.tasks}: {sorted(set(given) - set(task_s))}")
    print(f"per-task seconds (1 core, paper size): {task_s}")
    stages = ["ptycho", "tiltseries", "align", "recon", "fsc", "chem", "particles+report", "total"]
    for name, energies in (("paper (316 scans)", 2), ("10x (3,160 scans)", 20)):
        print(f"\n{name}, shared_storage = true; seconds")
        print("| workers | " + " | ".join(stages) + " | client serial share |")
        print("|---:|" + "---:|" * (len(stages) + 1))
        for w in args.workers:
            p = predict(w, energies, task_s)
            on_client = energies - 1 <= 1 or w == 1  # the energy registration (see predict)
            serial = (p["tiltseries"] + CLIENT_S["fsc-client"] + p["chem"] + p["particles+report"]
                      + CLIENT_S["align-serial"] + (CLIENT_S["align-energy"] * (energies - 1) if on_client else 0.0))
            print(f"| {w} | " + " | ".join(f"{p[s]:.0f}" for s in stages) + f" | {serial / p['total']:.0%} |")
            if energies == 2 and w in MEASURED:
                meas = MEASURED[w]
                print(f"| {w}, measured | " + " | ".join(f"{meas[s]:.0f}" if s in meas else "" for s in stages) + " | |")
            if energies == 2 and w in ALIGN_MEASURED:
                print(f"| {w}, measured, alignment alone | | | {ALIGN_MEASURED[w]:.0f} |" + " |" * (len(stages) - 2))


if __name__ == "__main__":
    main()
