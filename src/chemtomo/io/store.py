"""The run store: one Zarr (v3) directory, ``RUN.zarr``, that any Zarr/xarray reader opens.

Layout (DESIGN.md, "The store")::

    RUN.zarr/
      zarr.json                 root attributes: config, chemtomo version, per-stage records
      projections/{energy}      complex64 (n_angles, ny, nx) reconstructed transmissions (float32
                                optical density, group attribute quantity = "od", for full-field input)
      tiltseries/{energy}       float32 (n_angles, ny, nx) optical density, one grid for all energies
      alignment/                shifts_px, rotation_deg, scale, energy_offsets_px, history
      volumes/{energy}          float32 (ny, nz, nx) linear absorption μ, 1/m
      resolution/               FRC and FSC curves and numbers
      chem/                     fraction, density, polar, labels (+ statistics in attributes)
      particles/                labels and the particle table (one 1D array per column)
      .chemtomo/                run log and partial results of unfinished stages (not Zarr)

A stage writes its group under a temporary name and renames it into place when complete; its
record (input hash, time, summary) is then written to the root attributes with an atomic file
replace. Partial work inside a stage (one scan, one block of slices) is saved as it finishes,
each file atomically, so a killed run resumes without redoing it.

One process writes a store at a time: :meth:`RunStore.lock` takes an advisory lock
(``fcntl.flock``) on ``.chemtomo/lock``, which the kernel releases when the process exits or
crashes, and writes the holder's pid, host, start time and command into it, so that a second
writer is told who holds the store and a lock left by a dead process is recognised and taken
over. Read-only uses (info, report, export) take no lock.

Damage done by hand (a deleted or overwritten chunk) is found cheaply: when a group is committed,
the size and CRC-32 of each of its files go to ``.chemtomo/integrity/GROUP.json``;
:meth:`RunStore.damaged_groups` compares them (sizes by ``stat``, then checksums), and
:meth:`RunStore.read` turns a decoding error into a :class:`StoreError` naming the array.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..core.errors import StoreError

__all__ = ["RunStore", "StoreLock", "describe_store", "energy_key", "jsonable", "write_partial_file"]

_META = ".chemtomo"


def energy_key(energy_ev: float) -> str:
    """The store key of an energy: '708.2' for 708.2 eV."""
    return f"{float(energy_ev):.6g}"


def jsonable(v: Any) -> Any:
    """Plain JSON data from nested dicts, lists, NumPy values and DataFrames (NaN becomes null)."""
    if hasattr(v, "to_dict") and hasattr(v, "columns"):  # a pandas DataFrame: one list per column
        return {str(c): jsonable(v[c].tolist()) for c in v.columns}
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if np.isfinite(f) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if v is None or isinstance(v, (int, str, bool)):
        return v
    return str(v)


class RunStore:
    """A run's Zarr v3 directory store with atomic stage commits and resumable partial work."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            if not create:
                raise StoreError(f"{self.path}: not a chemtomo run store (no zarr.json)")
            if self.path.exists() and any(self.path.iterdir()):
                raise StoreError(f"{self.path}: exists and is not empty, but is not a Zarr store; "
                                 "choose another --out")
            zarr.open_group(str(self.path), mode="w", zarr_format=3)
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self.written_groups: list[str] = []  # groups committed through this object, in order

    # -- root attributes -------------------------------------------------------------------
    @property
    def meta_dir(self) -> Path:
        return self.path / _META

    @property
    def log_path(self) -> Path:
        return self.meta_dir / "run.log"

    def _root_json(self) -> dict:
        try:
            return json.loads((self.path / "zarr.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.path}/zarr.json: unreadable root metadata: {exc}") from exc

    @property
    def attrs(self) -> dict:
        return self._root_json().get("attributes", {})

    def update_attrs(self, **values: Any) -> None:
        """Set root attributes with an atomic replace of zarr.json (safe against kill -9)."""
        doc = self._root_json()
        doc.setdefault("attributes", {}).update(jsonable(values))
        tmp = self.path / f".zarr.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.path / "zarr.json")

    def stage_record(self, stage: str) -> dict | None:
        return self.attrs.get("stages", {}).get(stage)

    def set_stage_record(self, stage: str, record: dict | None) -> None:
        stages = dict(self.attrs.get("stages", {}))
        if record is None:
            stages.pop(stage, None)
        else:
            stages[stage] = record
        self.update_attrs(stages=stages)

    # -- groups ----------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return (self.path / key / "zarr.json").exists()

    def write_group(self, key: str, arrays: dict[str, np.ndarray], attrs: dict | None = None,
                    array_attrs: dict[str, dict] | None = None, chunks: dict[str, tuple] | None = None) -> None:
        """Write a whole group under a temporary name, then rename it to ``key`` (replacing it)."""
        final = self.path / key
        tmp = self.path / f"{key}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        g = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        if attrs:
            g.attrs.update(jsonable(attrs))
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            ch = (chunks or {}).get(name) or (arr.shape if arr.ndim < 3 else (1,) + arr.shape[1:])
            a = g.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=ch, fill_value=None)
            a[...] = arr
            if array_attrs and name in array_attrs:
                a.attrs.update(jsonable(array_attrs[name]))
        manifest = _file_manifest(tmp)  # relative paths: the same after the rename
        old = self.path / f"{key}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
        self._write_json(self._integrity_path(key), {"group": key, "files": manifest})
        self.written_groups.append(key)

    def group(self, key: str):
        if not self.has(key):
            raise StoreError(f"{self.path}: no '{key}' in the store; run the stage that makes it first")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return zarr.open_group(str(self.path / key), mode="r")

    def read(self, key: str) -> np.ndarray:
        """Read a whole array, e.g. ``store.read("volumes/708.2")``."""
        parent, _, name = key.rpartition("/")
        g = self.group(parent) if parent else None
        if g is None or name not in g:
            raise StoreError(f"{self.path}: no array '{key}' in the store")
        try:
            return np.asarray(g[name][...])
        except Exception as exc:  # a chunk that does not decode: damaged on disk, not a bug
            raise StoreError(f"{self.path}: array '{key}' of group '{parent}' is damaged and cannot be read "
                             f"({type(exc).__name__}: {exc}); rerun `chemtomo run` on the store to redo "
                             "the stage that wrote it") from exc

    def group_attrs(self, key: str) -> dict:
        return dict(self.group(key).attrs)

    def array_attrs(self, key: str) -> dict:
        parent, _, name = key.rpartition("/")
        return dict(self.group(parent)[name].attrs)

    def arrays(self, key: str) -> list[str]:
        g = self.group(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sorted(g.array_keys())

    def clean_temporaries(self) -> None:
        """Remove groups left half-written by a killed run (``*.tmp-*``, ``*.old-*``)."""
        for p in list(self.path.glob("**/*.tmp-*")) + list(self.path.glob("**/*.old-*")):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()

    # -- partial work inside a stage ---------------------------------------------------------
    def partial_dir(self, stage: str) -> Path:
        d = self.meta_dir / "partial" / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def save_partial(self, stage: str, key: str, arrays: dict[str, np.ndarray], meta: dict | None = None) -> None:
        """Save one finished unit of a stage (atomically: temporary file, then rename)."""
        write_partial_file(self.partial_dir(stage), key, arrays, meta)

    def load_partial(self, stage: str, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        p = self.partial_dir(stage) / f"{key}.npz"
        if not p.exists():
            return None
        crc_path = p.with_name(p.name + ".crc32")
        if crc_path.exists():  # written beside it (write_partial_file): a file that changed is redone
            try:
                expected = int(crc_path.read_text())
            except ValueError:
                expected = None
            if expected is None or zlib.crc32(p.read_bytes()) != expected:
                p.unlink(missing_ok=True)
                crc_path.unlink(missing_ok=True)
                return None
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
                meta = json.loads(str(z["__meta__"]))
        except Exception:  # a corrupt partial file is redone, not trusted
            p.unlink(missing_ok=True)
            return None
        return arrays, meta

    def clear_partial(self, stage: str) -> None:
        shutil.rmtree(self.meta_dir / "partial" / stage, ignore_errors=True)

    # -- one writer at a time --------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.meta_dir / "lock"

    def lock(self, command: str = "") -> StoreLock:
        """Take the store's writer lock or raise StoreError naming the process that holds it.

        Use as a context manager (``with store.lock("chemtomo run ..."):``); it is released on
        exit, and by the kernel if the process dies. ``StoreLock.stale`` describes a lock left
        by a process that is gone, which was taken over.
        """
        return StoreLock(self.lock_path, self.path, command)

    # -- damage done by hand ---------------------------------------------------------------
    def _integrity_path(self, key: str) -> Path:
        return self.meta_dir / "integrity" / (key.replace("/", "__") + ".json")

    def _write_json(self, path: Path, doc: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    def damaged_groups(self, *, checksums: bool = True) -> dict[str, str]:
        """``{group: what is wrong}`` for each committed group whose files differ from the commit.

        Checks every file recorded at commit time: present, same size, and (``checksums``) the
        same CRC-32. Groups committed before this check existed (no record) and groups no longer
        in the store (a stage will rewrite them) are not reported.
        """
        out: dict[str, str] = {}
        folder = self.meta_dir / "integrity"
        for rec_path in sorted(folder.glob("*.json")) if folder.exists() else []:
            try:
                doc = json.loads(rec_path.read_text())
                key, files = doc["group"], doc["files"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an unreadable record: nothing to compare against
            if not self.has(key):
                continue
            problem = _check_files(self.path / key, files, checksums)
            if problem:
                out[key] = problem
        return out

    # -- logging ---------------------------------------------------------------------------
    def log(self, message: str) -> None:
        import time

        with open(self.log_path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def write_partial_file(folder: str | os.PathLike, key: str, arrays: dict[str, np.ndarray],
                       meta: dict | None = None) -> tuple[int, int]:
    """Write one finished unit of a stage as ``folder/KEY.npz``, atomically, with its CRC-32.

    The arrays and the JSON ``meta`` go to a hidden temporary file that is flushed to disk and
    renamed into place; the checksum goes to ``KEY.npz.crc32`` (also atomically), which
    :meth:`RunStore.load_partial` checks. Any process that sees the folder may call it: a Dask
    worker on shared storage writes its own result this way (``compute.shared_storage``).

    Returns
    -------
    (size in bytes, CRC-32) of the file written
    """
    import io

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.array(json.dumps(jsonable(meta or {})))
    buf = io.BytesIO()
    np.savez(buf, **payload)
    data = buf.getvalue()
    crc = zlib.crc32(data)
    host = socket.gethostname().replace("/", "_")
    for name, content in ((f"{key}.npz.crc32", str(crc).encode()), (f"{key}.npz", data)):
        tmp = d / f".{name}.tmp-{host}-{os.getpid()}.npz"  # unique per process on a shared file system
        with open(tmp, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, d / name)
    return len(data), crc


def _file_manifest(folder: Path) -> dict[str, list[int]]:
    """``{relative path: [size, crc32]}`` of every file under ``folder`` (a committed group)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            out[p.relative_to(folder).as_posix()] = [len(data), zlib.crc32(data)]
    return out


def _check_files(folder: Path, files: dict, checksums: bool) -> str | None:
    """The first difference between ``folder`` and its commit-time manifest, in words."""
    for rel, (size, crc) in files.items():
        p = folder / rel
        try:
            actual = p.stat().st_size
        except OSError:
            return f"file {rel} is missing"
        if actual != size:
            return f"file {rel} has {actual} bytes, {size} when written"
    if checksums:
        for rel, (size, crc) in files.items():
            try:
                if zlib.crc32((folder / rel).read_bytes()) != crc:
                    return f"file {rel} has changed since it was written (checksum differs)"
            except OSError as exc:
                return f"file {rel} cannot be read ({exc})"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return False
    return True


class StoreLock:
    """The writer lock of a run store: ``fcntl.flock`` on ``.chemtomo/lock`` plus who holds it.

    The flock is the authority (the kernel drops it when the holder exits or dies); the JSON
    inside (pid, host, start time, command) is for the messages. A file with content whose
    flock is free was left by a process that ended without releasing it (killed, crashed):
    it is taken over and described in :attr:`stale`.
    """

    def __init__(self, path: Path, store: Path, command: str):
        self.path, self.store, self.command = Path(path), Path(store), command
        self.fd: int | None = None
        self.stale: str | None = None

    def acquire(self) -> StoreLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks; the store is not guarded
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder_text(_read_holder(fd))
            os.close(fd)
            raise StoreError(f"{self.store}: in use by another chemtomo process ({holder}); only one run or "
                             "stage command may write a store at a time: wait for it to finish or stop it, "
                             f"or use another --out. Read-only commands (info, report, export) work meanwhile. "
                             f"Lock file: {self.path}") from None
        previous = _read_holder(fd)
        if previous:
            pid, host = previous.get("pid"), previous.get("host")
            gone = ("process gone" if host == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)
                    else "it no longer holds the lock")
            self.stale = f"{_holder_text(previous)}; {gone}"
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Empty the file (a clean exit leaves no holder to report) and drop the lock."""
        if self.fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self.fd, 0)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        size = os.fstat(fd).st_size
        text = os.pread(fd, max(size, 1), 0).decode(errors="replace").strip()
        doc = json.loads(text) if text else {}
        return doc if isinstance(doc, dict) else {"command": str(doc)}
    except (OSError, ValueError):
        return {"command": "unreadable lock file"}


def _holder_text(h: dict) -> str:
    if not h:
        return "holder unknown"
    return (f"pid {h.get('pid', '?')} on {h.get('host', '?')}, started {h.get('started', '?')}, "
            f"command: {h.get('command') or '?'}")


def describe_store(path: str | os.PathLike) -> str:
    """A summary of a run store: stages done, arrays and their shapes."""
    store = RunStore(path, create=False)
    attrs = store.attrs
    lines = [f"{store.path}  (chemtomo run store, Zarr v3, chemtomo {attrs.get('chemtomo_version', '?')})"]
    stages = attrs.get("stages", {})
    if stages:
        lines.append("  stages:")
        for name, rec in stages.items():
            summary = ", ".join(f"{k}={v}" for k, v in (rec.get("summary") or {}).items())
            lines.append(f"    {name:<12} done in {rec.get('seconds', 0):.1f} s  {summary}")
    damaged = store.damaged_groups()
    if damaged:
        lines.append("  DAMAGED (changed on disk since it was written):")
        for key, problem in damaged.items():
            by = [n for n, rec in stages.items() if key in (rec.get("groups") or ())]
            redo = f"; the next `chemtomo run` redoes stage {by[0]} and what follows" if by else ""
            lines.append(f"    {key}: {problem}{redo}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = zarr.open_group(str(store.path), mode="r")

        def walk(g, prefix=""):
            for name, node in sorted(g.members(), key=lambda kv: kv[0]):
                if ".tmp-" in name or ".old-" in name:
                    continue
                if isinstance(node, zarr.Array):
                    lines.append(f"  {prefix}{name}  {node.dtype} {node.shape}")
                else:
                    walk(node, prefix + name + "/")

        try:
            walk(root)
        except Exception as exc:  # metadata damaged by hand: say so, the damage list above says where
            lines.append(f"  (the remaining arrays cannot be listed: {type(exc).__name__}: {exc})")
    return "\n".join(lines)
