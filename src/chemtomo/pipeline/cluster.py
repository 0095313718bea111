"""Running on a Dask cluster: what a lost scheduler or worker means to the user, and profiling.

A run sent to a cluster (``compute.scheduler``) can lose its scheduler (the process killed, the
node gone, the network down). The client then cannot continue: every future it holds is
cancelled. What it finished is already saved in the store (each scan and slice block as it
arrives, ``RunStore.save_partial``), so the right answer is one line that says what happened and
that the same command resumes, with exit status 1, not a traceback of Dask's reconnect loop.

A lost *worker* needs nothing from chemtomo: Dask reruns its tasks elsewhere (every task is
idempotent). Only when the same task takes down ``distributed.scheduler.allowed-failures``
workers in a row (typically the worker's memory limit) does Dask give up (``KilledWorker``); that
too becomes one line, naming the task and the likely cause.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path

import numpy as np

from ..core.errors import ChemtomoError, ConfigError

__all__ = ["ClusterError", "cluster_error", "quiet_lost_scheduler_logs", "Profile", "saved_on_worker", "submit_unit",
           "collect_unit", "scattered", "SCATTER_BYTES"]


class ClusterError(ChemtomoError):
    """The Dask cluster a run was sent to failed it (scheduler lost, a task killed its workers)."""


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def cluster_error(exc: BaseException, scheduler: str, store: str | Path) -> ClusterError | None:
    """The :class:`ClusterError` that ``exc`` means, or None when it is not a cluster failure.

    Parameters
    ----------
    exc : an exception raised while a run waited on Dask futures
    scheduler : the scheduler's address (for the message; empty for a local cluster)
    store : the run store (for the message: where the finished work is)
    """
    try:
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    if isinstance(exc, ChemtomoError):  # already says what happened (e.g. a scheduler never reached)
        return None
    where = f"the Dask scheduler at {scheduler}" if scheduler else "the Dask scheduler"
    for e in _chain(exc):
        text = str(e)
        if isinstance(e, KilledWorker):
            n = getattr(e, "allowed_failures", None)
            return ClusterError(f"task {getattr(e, 'task', '?')} was running on every worker that died "
                                f"({n or 'several'} in a row) and Dask gave up on it; most often a worker ran out "
                                "of memory: give workers more (dask worker --memory-limit) or fewer threads. "
                                f"Finished work is saved in {store}; rerun the same command to resume")
        lost = ("scheduler-connection-lost" in text or isinstance(e, CommClosedError)
                or (isinstance(e, (concurrent.futures.CancelledError, asyncio.CancelledError))
                    and "scheduler" in text.lower()))
        if lost:
            return ClusterError(f"lost the connection to {where} (the scheduler stopped or the network failed); "
                                f"finished work is saved in {store}: start the scheduler again and rerun the "
                                "same command to resume")
    return None


def saved_on_worker(func, partial_dir: str, key: str, *args) -> dict:
    """A Dask task for shared storage: run ``func(*args)`` and write its result into the store's
    partial-work folder from the worker itself (``io.store.write_partial_file``: atomic, with its
    CRC-32), returning only what the client's bookkeeping needs.

    ``func`` returns a dict of arrays with an optional ``"meta"`` dict (a ptychography scan), or
    one array (a block of slices, saved as ``"block"``). Returns ``{"meta", "bytes", "crc32"}``:
    the client never receives the arrays, and reads them from the store only when it assembles
    the stage's group.
    """
    from ..io.store import write_partial_file

    result = func(*args)
    if isinstance(result, dict):
        meta = result.pop("meta", {})
        arrays = result
    else:
        meta, arrays = {}, {"block": result}
    size, crc = write_partial_file(partial_dir, key, arrays, meta)
    return {"meta": meta, "bytes": size, "crc32": crc}


def submit_unit(ctx, stage: str, key: str, func, *args):
    """Submit one unit of a stage's work (a scan, a block of slices) as a Dask task.

    With ``compute.shared_storage`` the task writes its own result into the store
    (:func:`saved_on_worker`) and its future's result is only ``{"meta", "bytes", "crc32"}``;
    without it the task returns the arrays to the client, which saves them. Collect with
    :func:`collect_unit`.
    """
    args = scattered(ctx.client, args)
    if ctx.config.compute.shared_storage:
        return ctx.client.submit(saved_on_worker, func, str(ctx.store.partial_dir(stage)), key, *args,
                                 key=f"{stage}-{key}", pure=False)
    return ctx.client.submit(func, *args, key=f"{stage}-{key}", pure=False)


#: Bytes from which a task's array argument is sent to the workers on its own (``scattered``).
SCATTER_BYTES = 1 << 20


def scattered(client, args: tuple) -> tuple:
    """``args`` with every NumPy array of ``SCATTER_BYTES`` or more replaced by its future from
    ``client.scatter``: sent straight to a worker instead of inside the task graph (where Dask
    warns "Sending large graph" from 10 MiB, as a slice block of the paper preset's tilt series
    is); the task receives the same array."""
    return tuple(client.scatter(a) if isinstance(a, np.ndarray) and a.nbytes >= SCATTER_BYTES else a for a in args)


def collect_unit(ctx, stage: str, key: str, future) -> dict:
    """The finished unit's meta dict, the unit saved in the store's partial work either way."""
    result = future.result()
    if ctx.config.compute.shared_storage:
        return result["meta"]
    if isinstance(result, dict):
        meta = result.pop("meta", {})
        ctx.store.save_partial(stage, key, result, meta)
        return meta
    ctx.store.save_partial(stage, key, {"block": result})
    return {}


class _DropReconnectNoise(logging.Filter):
    """Drops the traceback ``distributed.client`` logs while it retries a scheduler that is gone
    (the run turns the loss into one :class:`ClusterError` line); with ``chemtomo -v`` (DEBUG)
    everything is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
            return True
        if not record.exc_info:
            return "Failed to reconnect to scheduler" not in record.getMessage()
        from distributed.comm.core import CommClosedError

        exc = record.exc_info[1]
        return not isinstance(exc, (asyncio.CancelledError, CommClosedError, OSError))


_FILTER = _DropReconnectNoise()


def quiet_lost_scheduler_logs() -> None:
    """Install the filter of Dask's reconnect tracebacks on ``distributed.client`` (idempotent)."""
    lg = logging.getLogger("distributed.client")
    if _FILTER not in lg.filters:
        lg.addFilter(_FILTER)


class Profile:
    """Dask's performance report (one self-contained HTML file: task stream, worker profiles,
    bandwidth, the scheduler's view) of everything run between creation and :meth:`close`,
    written to ``path``; nothing when ``path`` is None. The run's client must be the current
    default client (the one created last)."""

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        self._report = None
        if self.path is not None:
            try:
                import bokeh  # noqa: F401  (Dask draws the report's figures with it)
            except ImportError:
                raise ConfigError("--profile: Dask's performance report needs bokeh; install it with "
                                  "pip install 'chemtomo[cluster]' (or pip install bokeh)") from None
            from distributed import performance_report as report

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._report = report(filename=str(self.path))
            self._report.__enter__()

    def close(self) -> None:
        """Write the report (also after a failed run: what ran until then)."""
        if self._report is not None:
            rep, self._report = self._report, None
            try:
                rep.__exit__(None, None, None)
            except Exception as exc:  # a lost scheduler cannot give its report: say so, keep the run's error
                logging.getLogger(__name__).warning("no Dask performance report: %s", exc)
