"""What every stage of a run shares: config, store, scans, Dask client, progress and log."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.containers import ScanRef
from ..core.errors import ConfigError, InputError
from ..io.store import RunStore
from .config import RunConfig, config_to_dict

__all__ = ["RunContext", "Progress", "StageSkipped", "stable_hash", "file_fingerprint", "local_processes", "make_client",
           "close_client", "resolve_inputs"]

log = logging.getLogger(__name__)

#: ``progress(name)`` returns a ``(done, total)`` callback for a named bar.
Progress = Callable[[str], Callable[[int, int], None]]


def _no_progress(name: str) -> Callable[[int, int], None]:
    return lambda done, total: None


class StageSkipped(Exception):
    """A stage that does not apply to this dataset (e.g. chemistry with one energy); says why."""


def stable_hash(*parts) -> str:
    """SHA-256 of a JSON rendering of ``parts`` (sorted keys), first 16 hex digits."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike) -> list:
    """Identity of an input file for change detection: resolved path, size and modification time."""
    p = Path(path)
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


@dataclass
class RunContext:
    """Everything a stage needs. Stages read their inputs from ``store`` and write back to it."""

    config: RunConfig
    store: RunStore
    refs: list[ScanRef]
    references_path: Path | None
    xas2d_path: Path | None
    client: object | None = None
    progress: Progress = _no_progress
    say: Callable[[str], None] = lambda message: None
    timings: dict = field(default_factory=dict)
    kind: str = "scans"  # the input kind (chemtomo.io.inputs): scans, projections, intensity or od

    def section(self, name: str) -> dict:
        return config_to_dict(self.config)[name]

    def log(self, message: str) -> None:
        self.store.log(message)
        log.info(message)


def resolve_inputs(cfg: RunConfig, *, check_files: bool = True,
                   problems: list | None = None) -> tuple[list[ScanRef], Path | None, Path | None]:
    """Scans, reference spectra and optional 2D XAS stack named by (or found beside) the manifest.

    ``check_files=False`` leaves the scan files' existence to the caller (the preflight check,
    which reports every missing file at once); ``problems`` collects ``(path, message)`` of the
    files of an input folder whose angle or energy cannot be read (``chemtomo.io.scan_folder``).
    """
    from ..io import read_manifest, scan_folder

    m = cfg.path(cfg.input.manifest)
    if m is None:
        raise ConfigError("input.manifest is required (a manifest CSV or a folder of CXI or Data Exchange files)")
    if m.is_dir():
        refs = scan_folder(m, angle_key=cfg.input.angle_key or None, problems=problems)
        folder = m
    else:
        refs = read_manifest(m, check_files=check_files)
        folder = m.parent
    refs_path = cfg.path(cfg.input.references) or folder / "references.csv"
    files = reference_files(cfg, refs_path)
    if not cfg.chem.reference_columns and not refs_path.is_file():
        raise InputError(f"{refs_path}: reference spectra not found; put references.csv beside the manifest "
                         "or set input.references (CSV energy_eV,LiFePO4,…,FePO4; XDI; Athena .nor/.xmu)")
    energies = sorted({round(r.energy_ev, 4) for r in refs})
    if len(energies) > 1:  # chemistry will run: fail now, not after the ptychography
        from ..chem import references_from_spectra
        from ..io import check_references_cover

        if not cfg.chem.reference_columns:
            check_references_cover(refs_path, energies)
        references_from_spectra(load_reference_spectra(cfg, refs_path), energies,
                                max_gap_ev=cfg.chem.max_reference_gap_ev)
    if not refs_path.is_file():
        refs_path = files[0]
    xas = cfg.path(cfg.input.xas2d) or (folder / "xas2d.h5")
    if cfg.input.xas2d and not xas.is_file():
        raise InputError(f"{xas}: 2D XAS stack named in input.xas2d not found")
    return refs, refs_path, (xas if xas.is_file() else None)


def reference_files(cfg: RunConfig, refs_path: Path) -> list[Path]:
    """The files the reference spectra are read from (input.references and chem.reference_columns)."""
    from ..io.references import parse_column_spec

    cols = cfg.chem.reference_columns
    if not cols:
        return [refs_path]
    default = refs_path if refs_path.is_file() else None
    return list(dict.fromkeys(parse_column_spec(v, default, Path(cfg.base_dir or "."))[0] for v in cols.values()))


def load_reference_spectra(cfg: RunConfig, refs_path: Path | None) -> dict:
    """{phase: (energies_eV, absorption)} from input.references and chem.reference_columns."""
    from ..io import read_reference_spectra

    src = refs_path if refs_path is not None and refs_path.is_file() else None
    return read_reference_spectra(src, cfg.chem.reference_columns or None, base_dir=cfg.base_dir or ".")


class _QuietChemtomoErrors(logging.Filter):
    """Drop distributed's "Compute Failed" record (with its traceback) for chemtomo's own errors.

    Also the "Async instruction ... ended with CancelledError" warnings of tasks cancelled when the
    worker closes (distributed: "this should exclusively happen in Worker.close()").

    An InputError raised inside a task is re-raised by the client and reaches the user as one line
    (exit 1); the worker's log of it would print a traceback first. Other exceptions (real bugs)
    are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("Async instruction for") and msg.endswith("ended with CancelledError"):
            return False  # the other scans' tasks cancelled when the client closes after the error
        if not str(record.msg).startswith("Compute Failed") or not isinstance(record.args, tuple):
            return True
        text = next((a for a in record.args[3:4] if isinstance(a, str)), "")
        return not text.startswith(tuple(f"{c}(" for c in _chemtomo_error_names()))


def _chemtomo_error_names() -> set[str]:
    from ..core.errors import ChemtomoError

    names, todo = set(), [ChemtomoError]
    while todo:
        c = todo.pop()
        names.add(c.__name__)
        todo.extend(c.__subclasses__())
    return names


def quiet_input_errors() -> None:
    """Install the filter on distributed's worker logger (once; local workers log in this process)."""
    for name in ("distributed.worker", "distributed.worker.state_machine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietChemtomoErrors) for f in logger.filters):
            logger.addFilter(_QuietChemtomoErrors())


def make_client(scheduler: str = "", workers: int = 0, processes: bool = False):
    """A Dask distributed client: the given scheduler address, or a local cluster.

    The local cluster has one worker per core unless ``workers`` says otherwise: threads of this
    process, or with ``processes`` one process per worker, one thread each
    (``compute.processes``). NumPy, SciPy's FFT and the numba kernels release the GIL, but a
    ptychography scan of the demo's size (36–54 frames of 64²) spends much of its time in the
    Python between them: six such scans went 0.98× as fast on two threads as on one, 1.86× on
    two processes (``benchmarks/pipeline_workers.py``, session 26). Worker processes
    forward their log records to this process and leave chemtomo's own errors to the client
    (``_worker_log_plugin``), as threads do.
    """
    from distributed import Client, LocalCluster

    quiet_input_errors()
    if scheduler:
        from .cluster import quiet_lost_scheduler_logs

        quiet_lost_scheduler_logs()  # a lost scheduler is one ClusterError line, not a reconnect traceback
        _refused_at_once(scheduler)
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    n = workers or os.cpu_count() or 1
    quiet = logging.WARNING if log.getEffectiveLevel() > logging.DEBUG else False
    # the scheduler's and the workers' HTTP servers on this machine only, on free ports: with
    # distributed's defaults a second run on the machine warned "Port 8787 is already in use"
    cluster = LocalCluster(n_workers=n if processes else 1, threads_per_worker=1 if processes else n,
                           processes=processes, dashboard_address="127.0.0.1:0",
                           worker_dashboard_address="127.0.0.1:0", silence_logs=quiet)
    client = Client(cluster)
    if processes:
        level = logging.getLogger("chemtomo").getEffectiveLevel()
        client.register_plugin(_worker_log_plugin(level), name="chemtomo-worker-logs")
        client.forward_logging("chemtomo", level=level)
    return client


def _refused_at_once(address: str) -> None:
    """Raise InputError when a tcp:// scheduler address refuses a connection outright (nothing
    listens on that port: a mistyped port, a scheduler not started). Distributed itself retries
    such an address until its 5 s timeout; anything else (no answer, a name to resolve, another
    protocol) is left to it.

    >>> _refused_at_once("tls://example.org:8786")  # not tcp://: left to distributed
    """
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        return
    if not host or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except ConnectionRefusedError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address}: connection refused (is a scheduler "
                         "listening on that port?)") from exc
    except OSError:
        return  # no answer in 1 s, or a name that does not resolve: distributed tries and says so


def close_client(client) -> None:
    """Close a client that :func:`make_client` made, and its local cluster.

    Worker processes first turn distributed's own logging down to critical messages. As the
    scheduler goes, a worker's heartbeat that is already on its way fails, and distributed logs
    that with a traceback ("Failed to communicate with scheduler during heartbeat") that says
    nothing about the run. A fresh clone's test of a run's stderr met it once, in session 27.
    Worker threads share this process's loggers, so they are left alone."""
    cluster = getattr(client, "cluster", None)
    if cluster is not None and getattr(cluster, "processes", False):
        with contextlib.suppress(Exception):  # a worker already gone: nothing of it left to quiet
            client.run(_quiet_distributed_logs)
    client.close()
    if cluster is not None:
        cluster.close()


def _quiet_distributed_logs() -> None:
    """In a worker process that is about to be closed: distributed's loggers at CRITICAL."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    for name in ("distributed.worker", "distributed.core", "distributed.comm", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def local_processes(compute, kind: str, stages, can_spawn: bool = False) -> bool:
    """Whether the local cluster's workers are processes (``compute.processes``; a scheduler
    address makes no local cluster). "auto": where ptychography scans are reconstructed
    (``kind`` "scans", the ptycho stage among ``stages``) on two workers or more, by a caller
    that ``can_spawn`` worker processes: Python starts them by importing the caller's main
    module afresh, so that module must start the run under ``if __name__ == "__main__":`` (the
    ``chemtomo`` command's does; an unguarded script would fail with "Nanny failed to start").

    >>> from chemtomo.pipeline.config import ComputeConfig
    >>> local_processes(ComputeConfig(workers=2), "scans", ("ptycho", "recon"), can_spawn=True)
    True
    >>> local_processes(ComputeConfig(workers=2), "scans", ("ptycho", "recon"))  # from Python: threads
    False
    >>> local_processes(ComputeConfig(workers=2), "od", ("ptycho", "recon"), can_spawn=True)
    False
    >>> local_processes(ComputeConfig(workers=1, processes="on"), "od", ("recon",))
    True
    """
    if compute.processes != "auto":
        return compute.processes == "on"
    workers = compute.workers or os.cpu_count() or 1
    return can_spawn and workers >= 2 and kind == "scans" and "ptycho" in stages


def _worker_log_plugin(level: int):
    """A Dask worker plugin for worker processes (a worker thread of this process shares its
    loggers; a worker process has its own): chemtomo's logger at this process's ``level`` (its
    records forwarded here by ``Client.forward_logging``), and ``quiet_input_errors``."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class _WorkerLogs(WorkerPlugin):
        idempotent = True

        def setup(self, worker) -> None:
            logging.getLogger("chemtomo").setLevel(level)
            quiet_input_errors()

    return _WorkerLogs()


def timed(ctx: RunContext, name: str):
    """Context manager that records a stage's wall time in ``ctx.timings``."""

    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()
            return self

        def __exit__(self, *exc):
            ctx.timings[name] = time.perf_counter() - self.t0

    return _T()
