"""Run the flow of DESIGN.md stage by stage into a resumable store.

Each stage has a record in the store's root attributes holding a hash of its configuration,
its upstream stages' hashes and (for `ptycho`) the fingerprints of the scan files (for inputs that
need no ptychography, `ptycho` reads projections or images instead: the fingerprints of every file
it reads, see ingest_stage.py). A rerun skips
a stage whose hash is unchanged and whose output exists, and redoes one whose inputs changed
(and so everything downstream of it). Inside `ptycho` and `recon` each finished scan or block of
slices is saved at once, so a run killed at any moment resumes without redoing finished work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..core.errors import ConfigError, InputError, StoreError
from ..io.store import RunStore
from .analysis_stage import run_chem, run_particles
from .cluster import Profile, cluster_error
from .config import RunConfig, config_from_dict, config_to_dict
from .context import (
    RunContext,
    StageSkipped,
    close_client,
    file_fingerprint,
    local_processes,
    make_client,
    resolve_inputs,
    stable_hash,
)
from .ingest_stage import input_files, run_input
from .preflight import preflight
from .tomo_stage import run_align, run_fsc, run_recon, run_tiltseries

__all__ = ["Stage", "STAGES", "run_pipeline", "open_run"]


@dataclass(frozen=True)
class Stage:
    """A step of the flow: what it is called, what it reads, which config sections it uses."""

    name: str
    func: Callable[[RunContext], dict]
    upstream: tuple[str, ...]
    sections: tuple[str, ...]
    output: str  # the store group whose presence says the stage's result exists
    optional: tuple[str, ...] = ()  # upstream stages used when they ran; their being skipped skips nothing

    def requires(self, other: str) -> bool:
        """Whether this stage cannot run without ``other``'s result."""
        return other in self.upstream and other not in self.optional


STAGES: tuple[Stage, ...] = (
    Stage("ptycho", run_input, (), ("ptycho",), "projections"),  # or reading projections/images (ingest_stage)
    Stage("tiltseries", run_tiltseries, ("ptycho",), ("align",), "tiltseries"),
    Stage("align", run_align, ("tiltseries",), ("align",), "alignment"),
    Stage("recon", run_recon, ("align",), ("tomo",), "volumes"),
    Stage("fsc", run_fsc, ("align",), ("tomo", "resolution"), "resolution/fsc"),
    Stage("chem", run_chem, ("recon",), ("chem",), "chem"),
    # the FSC resolution sets the segmentation's smoothing when there is one
    Stage("particles", run_particles, ("chem", "fsc"), ("particles",), "particles", optional=("fsc",)),
)
_BY_NAME = {s.name: s for s in STAGES}


def _stage_hash(ctx: RunContext, stage: Stage, hashes: dict[str, str]) -> str:
    cfg = config_to_dict(ctx.config)
    parts = [stage.name, {s: cfg[s] for s in stage.sections}, [hashes.get(u) for u in stage.upstream]]
    if stage.name == "ptycho" and ctx.kind != "scans":  # read, not reconstructed: the files and how they are read
        i = ctx.config.input
        return stable_hash(stage.name, ctx.kind, [file_fingerprint(p) for p in input_files(ctx)],
                           [[r.angle_deg, r.energy_ev, r.pixel_m] for r in ctx.refs],
                           [i.theta_unit, i.transmission_floor])
    if stage.name == "ptycho":  # the scans themselves and how they are read, not where the manifest is
        i = ctx.config.input
        parts.append([file_fingerprint(r.path) + [r.angle_deg, r.energy_ev] for r in ctx.refs])
        parts.append([i.angle_key, i.swap_xy, i.flip_x, i.flip_y])
    if stage.name == "chem":
        from .context import reference_files

        parts.append([file_fingerprint(p) for p in reference_files(ctx.config, ctx.references_path)])
        parts.append(file_fingerprint(ctx.xas2d_path) if ctx.xas2d_path else None)
    return stable_hash(*parts)


def _short(v):
    """A summary value for one line: floats to 4 significant digits, containers recursively."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return str(v)


def open_run(out: str | Path, config: RunConfig | None = None) -> tuple[RunStore, RunConfig]:
    """Open (or create) a run store; with no config given, use the one stored in it."""
    store = RunStore(out, create=config is not None)
    if config is None:
        stored = store.attrs.get("config")
        if not stored:
            raise StoreError(f"{store.path}: holds no run configuration; start it with `chemtomo run`")
        config = config_from_dict(stored, where=f"{store.path} (stored config)",
                                  base_dir=store.attrs.get("base_dir", ""))
    else:
        old = store.attrs.get("config")
        if old and old["input"]["manifest"] and Path(config.base_dir, config.input.manifest).resolve() != Path(
                store.attrs.get("base_dir", ""), old["input"]["manifest"]).resolve():
            raise ConfigError(f"{store.path}: this store belongs to another dataset "
                              f"({old['input']['manifest']}); choose another --out")
        store.update_attrs(config=config_to_dict(config), base_dir=config.base_dir, chemtomo_version=__version__)
    return store, config


def run_pipeline(config: RunConfig | None, out: str | Path, *, only: tuple[str, ...] | None = None,
                 restart: bool = False, force: bool = False, progress=None,
                 say: Callable[[str], None] | None = None, client=None, command: str = "",
                 profile: str | Path | None = None, can_spawn: bool = False) -> RunStore:
    """Run (or resume) every stage, or only the named ones, and return the store.

    Parameters
    ----------
    config : the run configuration (None: the one stored in ``out``)
    out : the run store (``RUN.zarr``)
    only : run just these stages (their upstream results must be in the store)
    restart : forget stage records and partial work and start over
    force : redo the stages named in ``only`` even if they are up to date
    progress : ``progress(name) -> (done, total) callback`` for progress bars
    say : one-line messages (stage summaries)
    client : a ``distributed.Client`` to use (default: from ``compute.scheduler``)
    command : how this run was started, written into the store's lock for other processes' messages
    profile : write Dask's performance report (HTML) of the run to this file (``chemtomo run --profile``)
    can_spawn : this process may start worker processes, its main module starting the run under
        ``if __name__ == "__main__":`` (the ``chemtomo`` command's does): then ``compute.processes
        = "auto"`` makes the local cluster's workers processes where scans are reconstructed
        (``context.local_processes``); otherwise they are threads unless the config says "on"

    Raises
    ------
    StoreError
        Another process writes the store (its pid, host, start time and command are named), or
        a stage run alone needs an upstream group that is missing or damaged.
    ClusterError
        The Dask scheduler was lost, or a task killed every worker it ran on (pipeline/cluster.py);
        finished work is saved and the same call resumes.

    Only one process writes a store at a time (``RunStore.lock``). Groups changed on disk since
    they were committed (a deleted or overwritten chunk) are found at the start and their stage
    and everything downstream of it are redone.
    """
    if config is not None and config.compute.device != "cpu":
        raise ConfigError(f"compute.device = {config.compute.device!r}: the ptychography and tomography kernels run "
                          "on the CPU only in this version (compiled with numba); set compute.device = 'cpu'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --out must name a run store (a folder, created if missing)")
    # every input's header and shape are checked before the store is created or touched: a run that
    # fails its check changes nothing on disk
    inputs = _checked_inputs(config, say) if config is not None else None
    writer = RunStore(out, create=config is not None).lock(command or "chemtomo.pipeline.run_pipeline()")
    writer.acquire()  # before anything is written: a second writer stops here
    try:
        return _run_locked(config, out, writer, only=only, restart=restart, force=force, progress=progress,
                           say=say, client=client, profile=profile, inputs=inputs, can_spawn=can_spawn)
    except Exception as exc:  # a lost scheduler: one line and exit 1, not Dask's traceback (cluster.py)
        lost = cluster_error(exc, config.compute.scheduler if config is not None else "", out)
        if lost is None:
            raise
        raise lost from exc
    finally:
        writer.release()


def _checked_inputs(config: RunConfig, say) -> dict:
    """The manifest's inputs after the preflight check (chemtomo.pipeline.preflight) and ``exclude``."""
    unreadable: list[tuple[str, str]] = []  # files of an input folder without a readable angle or energy
    refs, refs_path, xas = resolve_inputs(config, check_files=False, problems=unreadable)
    i = config.input
    refs, excluded, kind, found = preflight(refs, kind=i.kind, on_bad_scan=i.on_bad_scan, exclude=i.exclude,
                                            exclude_angles=i.exclude_angles,
                                            manifest=config.path(i.manifest), say=say, unreadable=unreadable)
    if kind == "scans":
        no_angle = [r.path for r in refs if not math.isfinite(r.angle_deg)]
        if no_angle:
            raise InputError(f"{no_angle[0]}: no tilt angle (the manifest's angle_deg is empty); a scan needs its angle")
    return {"refs": refs, "refs_path": refs_path, "xas": xas, "kind": kind, "found": found, "excluded": excluded}


def _damaged_stages(store: RunStore) -> dict[str, tuple[str, str]]:
    """``{stage: (group, what is wrong)}`` for stages whose committed groups changed on disk."""
    damaged = store.damaged_groups()
    out: dict[str, tuple[str, str]] = {}
    for stage in STAGES:
        rec = store.stage_record(stage.name) or {}
        for key in rec.get("groups") or (stage.output,):
            if key in damaged and stage.name not in out:
                out[stage.name] = (key, damaged[key])
    return out


def _run_locked(config, out, writer, *, only, restart, force, progress, say, client, profile=None,
                inputs=None, can_spawn: bool = False) -> RunStore:
    say = say or (lambda m: None)
    store, config = open_run(out, config)  # with config None: reads the stored one, writes nothing
    if inputs is None:  # config stored in the store: check the inputs before writing anything
        inputs = _checked_inputs(config, say)
    if writer.stale:
        store.log(f"took over a stale lock: {writer.stale}")
        say(f"took over the store's stale lock ({writer.stale})")
    store.clean_temporaries()
    damaged = _damaged_stages(store)
    if restart:
        for s in STAGES:
            store.set_stage_record(s.name, None)
            store.clear_partial(s.name)
    refs, refs_path, xas = inputs["refs"], inputs["refs_path"], inputs["xas"]
    kind, found = inputs["kind"], inputs["found"]
    store.update_attrs(excluded_inputs=[e.as_dict() for e in inputs["excluded"]])
    for e in inputs["excluded"]:
        store.log(f"left out {e.path} ({e.angle_deg:g}°, {e.energy_ev:g} eV): {e.reason}")
    if inputs["excluded"]:
        say(f"left out    {len(inputs['excluded'])} input(s) (recorded in the store's excluded_inputs)")
    own_client = client is None
    names = only or tuple(s.name for s in STAGES)
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; stages are {', '.join(_BY_NAME)}")
    needs_client = any(n in ("ptycho", "recon") for n in names) or ("align" in names and config.compute.scheduler)
    if own_client and needs_client:
        client = make_client(config.compute.scheduler, config.compute.workers,
                             processes=local_processes(config.compute, kind, names, can_spawn))
    ctx = RunContext(config=config, store=store, refs=refs, references_path=refs_path, xas2d_path=xas,
                     client=client, progress=progress or (lambda name: (lambda d, t: None)), say=say, kind=kind)
    ctx.log(f"input: {found}")
    say(f"input       {found}")
    profiling = Profile(profile if client is not None else None)
    try:
        hashes: dict[str, str] = {}
        changed: set[str] = set()
        skipped: set[str] = set()
        for stage in STAGES:
            h = _stage_hash(ctx, stage, hashes)
            hashes[stage.name] = h
            rec = store.stage_record(stage.name)
            up_changed = any(u in changed for u in stage.upstream)
            current = (rec is not None and rec.get("hash") == h and store.has(stage.output) and not up_changed
                       and not (force and stage.name in names) and stage.name not in damaged)
            if stage.name in damaged and stage.name not in names and only is not None and any(
                    stage.name in s.upstream for s in STAGES if s.name in names):
                key, problem = damaged[stage.name]
                raise StoreError(f"{store.path}: group '{key}', written by stage '{stage.name}', is damaged "
                                 f"({problem}); run `chemtomo run` on the store to redo it first")
            if stage.name not in names:
                if not current and only is not None and any(s.requires(stage.name) for s in STAGES
                                                             if s.name in names) and not store.has(stage.output):
                    raise StoreError(f"{store.path}: stage '{stage.name}' has not run; run it (or the whole "
                                     "pipeline) first")
                continue
            if current:
                say(f"{stage.name:<11} up to date (skipped)")
                continue
            if any(stage.requires(u) for u in skipped):
                skipped.add(stage.name)
                say(f"{stage.name:<11} skipped (needs {', '.join(u for u in skipped if stage.requires(u))})")
                continue
            if stage.name in damaged and rec is not None and rec.get("hash") == h:
                key, problem = damaged[stage.name]
                ctx.log(f"{stage.name}: group '{key}' is damaged ({problem}); redoing the stage")
                say(f"{stage.name:<11} store group '{key}' is damaged ({problem}): redoing it")
            t0 = time.perf_counter()
            first_group = len(store.written_groups)
            ctx.log(f"{stage.name}: start")
            try:
                summary = stage.func(ctx)
            except StageSkipped as why:
                skipped.add(stage.name)
                store.set_stage_record(stage.name, {"hash": h, "skipped": str(why)})
                ctx.log(f"{stage.name}: skipped: {why}")
                say(f"{stage.name:<11} skipped: {why}")
                continue
            seconds = time.perf_counter() - t0
            store.set_stage_record(stage.name, {"hash": h, "seconds": seconds, "summary": summary,
                                                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                "groups": store.written_groups[first_group:]})
            store.clear_partial(stage.name)
            changed.add(stage.name)
            line = ", ".join(f"{k} {_short(v)}" for k, v in summary.items())
            ctx.log(f"{stage.name}: done in {seconds:.1f} s; {line}")
            say(f"{stage.name:<11} {seconds:7.1f} s  {line}")
    finally:
        profiling.close()
        if own_client and client is not None:
            close_client(client)
    return store
