"""Exports of a run store: TIFF stacks (Fiji, napari), one HDF5 file, CSV/Parquet tables; the report file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputError, StoreError
from ._h5 import atomic_path
from .store import RunStore
from .tables import load_particle_table  # re-exported: its home before io/tables.py

__all__ = ["export", "load_particle_table", "write_text", "FORMATS"]

FORMATS = ("tiff", "hdf5", "csv", "ome-zarr")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (temporary name, then rename)."""
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return p


def _volumes(store: RunStore) -> dict[str, tuple[np.ndarray, float, str]]:
    """Name → (array (ny, nz, nx), voxel size m, description) of every exportable volume."""
    out = {}
    if store.has("volumes"):
        a = store.group_attrs("volumes")
        for name in store.arrays("volumes"):
            out[f"mu_{name}eV"] = (store.read(f"volumes/{name}"), a["voxel_m"], f"linear absorption (1/m) at {name} eV")
    if store.has("chem"):
        a = store.group_attrs("chem")
        for name, desc in (("fraction", "FePO4 fraction (NaN outside)"), ("density", "C_LFP + C_FP"),
                           ("labels", "0 outside, 1 LFP-rich, 2 mixed, 3 FP-rich")):
            out[f"chem_{name}"] = (store.read(f"chem/{name}"), a["voxel_m"], desc)
    if store.has("particles"):
        a = store.group_attrs("particles")
        out["particle_labels"] = (store.read("particles/labels"), a["voxel_m"], "particle labels, 0 = background")
    return out


def _imagej_dtype(arr: np.ndarray) -> np.ndarray:
    """ImageJ stacks hold uint8, uint16 or float32: labels go to uint16 when they fit, else float32."""
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype == np.uint8:
        return arr
    if arr.size == 0 or (arr.min() >= 0 and arr.max() < 2 ** 16):
        return arr.astype(np.uint16)
    return arr.astype(np.float32)


def export(store_path: str | os.PathLike, fmt: str, out_dir: str | os.PathLike) -> list[Path]:
    """Export a run: ``tiff`` (one ImageJ stack per volume, z-slices along y), ``hdf5`` (one file with
    every volume and the particle table), ``csv`` (``particles.csv`` and ``particles.parquet``) or
    ``ome-zarr`` (one NGFF 0.5 image per volume, chemistry and aligned tilt series; io.ome_zarr).
    """
    if fmt not in FORMATS:
        raise InputError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "ome-zarr":
        from .ome_zarr import export_ome_zarr

        return export_ome_zarr(store_path, out_dir)
    store = RunStore(store_path, create=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fmt == "csv":
        if not store.has("particles"):
            raise StoreError(f"{store.path}: no particle table yet; run the particles stage first")
        table = load_particle_table(store)
        p = out / "particles.csv"
        with atomic_path(p) as tmp:
            table.to_csv(tmp, index=False)
        written.append(p)
        q = out / "particles.parquet"
        with atomic_path(q) as tmp:
            table.to_parquet(tmp, index=False)
        written.append(q)
        return written
    vols = _volumes(store)
    if not vols:
        raise StoreError(f"{store.path}: nothing to export yet; run the reconstruction first")
    if fmt == "tiff":
        import tifffile

        for name, (arr, voxel, desc) in vols.items():
            p = out / f"{name}.tif"
            data = _imagej_dtype(arr)
            with atomic_path(p) as tmp:
                tifffile.imwrite(tmp, data, imagej=True, resolution=(1 / (voxel * 1e9), 1 / (voxel * 1e9)),
                                 metadata={"spacing": voxel * 1e9, "unit": "nm", "axes": "ZYX", "Info": desc})
            written.append(p)
        return written
    p = out / f"{store.path.stem}.h5"
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        for name, (arr, voxel, desc) in vols.items():
            d = f.create_dataset(f"volumes/{name}", data=arr, compression="gzip")
            d.attrs["voxel_m"] = voxel
            d.attrs["description"] = desc
            d.attrs["axes"] = "y (rotation axis), z (beam at 0°), x"
        if store.has("particles"):
            table = load_particle_table(store)
            g = f.create_group("particles")
            for c in table.columns:
                g.create_dataset(c, data=table[c].to_numpy())
    written.append(p)
    return written
