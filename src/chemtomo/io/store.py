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
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..core.errors import StoreError

__all__ = ["RunStore", "describe_store", "energy_key", "jsonable"]

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
        old = self.path / f"{key}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)

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
        return np.asarray(g[name][...])

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
        d = self.partial_dir(stage)
        tmp = d / f".{key}.tmp-{os.getpid()}.npz"
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        payload["__meta__"] = np.array(json.dumps(jsonable(meta or {})))
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, d / f"{key}.npz")

    def load_partial(self, stage: str, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        p = self.partial_dir(stage) / f"{key}.npz"
        if not p.exists():
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

    # -- logging ---------------------------------------------------------------------------
    def log(self, message: str) -> None:
        import time

        with open(self.log_path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


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

        walk(root)
    return "\n".join(lines)
