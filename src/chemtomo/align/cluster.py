"""The reprojection alignment's heavy steps as Dask tasks, with the data kept on the workers.

One outer iteration of :func:`~.reprojection.reprojection_align` reconstructs a volume from the
warped projections, reprojects it, and registers every raw projection onto its reprojection.
On a cluster (``client=``) the reconstruction and reprojection run as tasks over blocks of slices
(slices are independent problems in parallel-beam geometry) and the registrations as tasks over
blocks of angles (each projection's fit is independent). What travels, per outer iteration:

- client → workers: the transforms (four numbers per angle). Each slice block's task warps its
  own rows of every projection from the raw projections already on its worker (the bilinear
  pull of ``_kernels.affine_warp``, the same bits as the client's ``transform.warp``). Before,
  the client warped the whole stack and sent it, ``n·ny·nx`` float32 values per iteration (29 MB
  at the paper's size), and that warp was the largest serial step of the client's loop;
- workers → client: the reprojections, and each registration's few numbers per angle;
- worker → worker: the reprojections, to the registration tasks (each worker fetches the slice
  blocks it lacks once per iteration). The registration tasks depend on the reconstruction tasks
  directly, so they run while the client receives the reprojections: no round trip through the
  client between the two steps (before: gather, concatenate, send back, then register).

What does not travel any more:

- the volume: each slice block's volume stays on the worker that computed it, as the result of
  its task, and the next iteration's task for that block takes it as its warm start (a Dask
  dependency: the scheduler runs the task where the volume is). It is the largest array of the
  loop (``ny·nx²`` against ``n·ny·nx`` for the projections: 1.7× at the paper's 158 angles of
  274 px, and it went out and back every iteration);
- the raw projections and the registration window: scattered once per resolution level, to
  every worker (the registrations and the warps of every slice block read them).

If a worker holding a block's volume dies, Dask recomputes it from its lineage (the same
deterministic tasks), so the result does not change. The price of that lineage: the scheduler
keeps the earlier iterations' task specifications, each with its block of warped projections,
until the level ends (at the paper's size about 28 MiB of scheduler memory per outer iteration).

Placement: block ``k`` of slices is preferred on worker ``k mod W`` (sorted addresses) in every
iteration, so the blocks spread evenly and each block's warm start is where its task runs
(Dask's own choice, "where the dependency is", would keep whatever imbalance the first
iteration happened to have).

Load balance: a Levenberg-Marquardt registration's cost varies with its iteration count, so
angles are cut into ``REGISTER_TASKS_PER_THREAD`` tasks per worker thread (many small tasks
fill the gaps that two large ones per thread leave); the slice blocks' cost is even (ART/SIRT
cost does not depend on the content), one per thread, as wide as the ray kernels sweep at once
(``tomo.operator.slice_blocks``: every range of slices a kernel sweeps streams the whole system
matrix once, so a few wide blocks cost less than many narrow ones).
"""

from __future__ import annotations

import operator

import numpy as np

from .. import tomo
from ..tomo.operator import slice_blocks
from ._kernels import affine_warp
from .register import SimilarityFit, register_similarity

__all__ = ["ClusterLevel", "REGISTER_TASKS_PER_THREAD"]

#: registration tasks per worker thread and outer iteration (see the module's docstring)
REGISTER_TASKS_PER_THREAD = 6
#: projections per registration call inside a task (see ``_register_block``)
REGISTER_CHUNK = 4


def _threads(client) -> int:
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1


def _recon_project_block(rows, angle_blocks, params, keep, angles_use, angles_target, algorithm, iterations,
                         previous, nx, *tilt):
    """One block of slices: warp the aligned rows ``rows = (y0, y1)`` of every kept projection
    from the raw projections ``tilt`` (the level's angle blocks, on every worker) with ``params``
    (NaN outside the raw field, as ``transform.warp``: the same bits as the client's warp),
    reconstruct them (warm-started from ``previous``, the block's ``(volume, reprojection)`` of
    the last outer iteration, when given) and reproject at ``angles_target``. Returns
    ``(volume, reprojection)``; a Dask task, on one core (``core.fft.one_core``: the tasks are the
    parallel unit, one per worker thread; the same bits on any number of threads)."""
    from ..core.fft import one_core

    shifts, rot, scale = params
    with one_core():
        block = np.concatenate([affine_warp(t, shifts[i0:i1], rot[i0:i1], scale[i0:i1], np.nan, rows=rows)
                                for (i0, i1), t in zip(angle_blocks, tilt)])[keep]
        extra = {"x0": previous[0]} if previous is not None else {}
        volume = tomo.reconstruct(block, angles_use, algorithm=algorithm, iterations=iterations, nonneg=True,
                                  **extra)
        return volume, tomo.project(volume, angles_target, nu=nx)


def _register_block(i0, i1, tilt, window, init, similarity, max_iter, *parts):
    """Register raw projections ``i0:i1`` (``tilt``) onto their reprojections, assembled from the
    slice blocks' reprojections ``parts`` (each (n_angles, rows, nx)); a Dask task.

    The fits run ``REGISTER_CHUNK`` projections at a time: each projection's fit is independent
    (the same result as one call), and a few projections' float64 Jacobian (6 values per pixel)
    stays in the cache where 14 do not (paper size: 1.9 MiB a projection). Measured on 56
    projections of the paper preset in one process (two passes each, a loaded machine): 1.2 s
    in chunks of 4 against 1.8–1.9 s in chunks of 14 and 1.6–2.6 s in chunks of 28.
    """
    from ..core.fft import one_core

    reproj = np.concatenate([np.asarray(p[i0:i1]) for p in parts], axis=1).astype(np.float32, copy=False)
    n = i1 - i0
    with one_core():  # one core per task, as _recon_project_block
        fits = [register_similarity(reproj[a:a + REGISTER_CHUNK], tilt[a:a + REGISTER_CHUNK],
                                    init=tuple(np.asarray(p[a:a + REGISTER_CHUNK]) for p in init), weight=window,
                                    similarity=similarity, max_iter=max_iter)
                for a in range(0, n, REGISTER_CHUNK)]
    if len(fits) == 1:
        return fits[0]
    cat = {name: np.concatenate([getattr(f, name) for f in fits])
           for name in ("shifts_px", "rotation_deg", "scale", "gain", "offset", "residual", "converged")}
    return SimilarityFit(**cat, iterations=max(f.iterations for f in fits))


class ClusterLevel:
    """The Dask side of one resolution level of the reprojection alignment.

    Parameters
    ----------
    client : distributed.Client
    tilt : (n_angles, ny, nx) float32, the raw projections of this level (scattered once)
    window : (ny, nx) float, the registration's edge window (scattered once, to every worker)
    block_slices : slices per reconstruction task; None: ``tomo.operator.slice_blocks`` (blocks of
        up to 96 slices in whole lanes, one per worker thread at least)
    """

    def __init__(self, client, tilt: np.ndarray, window: np.ndarray, block_slices: int | None = None):
        self.client = client
        n, ny, _ = tilt.shape
        threads = _threads(client)
        self.slice_blocks = slice_blocks(ny, 1, threads, block_slices or 0)
        size = max(1, -(-n // (REGISTER_TASKS_PER_THREAD * threads)))
        self.angle_blocks = [(i0, min(n, i0 + size)) for i0 in range(0, n, size)]
        # on every worker (broadcast), so that no registration task is tied to one worker: the
        # scheduler hands the many small tasks to whichever worker is free
        self.tilt = client.scatter([np.ascontiguousarray(tilt[i0:i1]) for i0, i1 in self.angle_blocks],
                                   broadcast=True)
        self.window = client.scatter(np.asarray(window), broadcast=True)
        self.volumes = None  # futures of each slice block's (volume, reprojection), on the workers

    def iterate(self, angles_deg: np.ndarray, keep: np.ndarray, params, opts,
                nx: int) -> tuple[np.ndarray, SimilarityFit]:
        """One outer iteration's heavy steps: the reprojections (n_angles, ny, nx) of the volume
        reconstructed from the raw projections warped with ``params``, kept ones only (each slice
        block's task warps its own rows from the raw projections already on its worker: only the
        transforms travel, not the warped stack; warm-started, ``opts.warm_start``, from the last
        call's volume, which never leaves the workers), and the similarity registration of every
        raw projection onto its reprojection, started from ``params``.

        The registration tasks depend on the slice blocks' reprojections directly: they start on
        the workers as soon as the reconstruction ends, taking the pieces they need from the
        workers that made them, while the client receives the reprojections (which it needs for
        the update's support and the restarts) at the same time. No step waits for a round trip
        through the client between the reconstruction and the registration.
        """
        a_use = angles_deg[keep]
        transforms = tuple(np.asarray(p, np.float64) for p in params)
        workers = sorted(self.client.scheduler_info()["workers"])
        futures = []
        for k, (y0, y1) in enumerate(self.slice_blocks):
            previous = self.volumes[k] if opts.warm_start and self.volumes is not None else None
            # block k on worker k mod W, every iteration: the blocks spread evenly and each finds its
            # warm start where it ran before (a preference only: a lost worker's blocks go elsewhere)
            futures.append(self.client.submit(_recon_project_block, (y0, y1), self.angle_blocks, transforms, keep,
                                              a_use, angles_deg, opts.algorithm, opts.recon_iterations, previous,
                                              nx, *self.tilt, pure=False, workers=[workers[k % len(workers)]],
                                              allow_other_workers=True))
        parts = [self.client.submit(operator.getitem, f, 1, pure=False) for f in futures]
        fits = []
        for (i0, i1), tilt in zip(self.angle_blocks, self.tilt):
            init = tuple(np.asarray(p[i0:i1]) for p in params)
            fits.append(self.client.submit(_register_block, i0, i1, tilt, self.window, init, opts.similarity,
                                           opts.register_iter, *parts, pure=False))
        reproj = np.concatenate(self.client.gather(parts), axis=1).astype(np.float32, copy=False)
        self.volumes = futures  # the last iteration's are released here: their successors hold the warm start
        fits = self.client.gather(fits)
        cat = {name: np.concatenate([getattr(f, name) for f in fits])
               for name in ("shifts_px", "rotation_deg", "scale", "gain", "offset", "residual", "converged")}
        return reproj, SimilarityFit(**cat, iterations=max(f.iterations for f in fits))
