"""The ``chemtomo xas`` output: a Zarr (v3) store of 2D component maps.

::

    MAPS.zarr/
      zarr.json            attributes: pixel_m, pixel_yx_m (metres), energies_ev (eV), names,
                           source, references, i0 region, energy shifts, fit summary, version
      <name>/              one (ny, nx) float32 array per reference column, named as the column
      r_factor/            (ny, nx) float32, Σ(OD − fit)² / Σ OD² per pixel
      od/                  (n_energies, ny, nx) float32, the aligned optical density that was fitted
      i0_mask/             (ny, nx) uint8, 1 in the I0 region

Any Zarr reader opens it (``zarr.open_group("maps.zarr")["FePO4"][...]``). The store is written
under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from chemtomo.core import InputError

from .store import jsonable

__all__ = ["write_xas_maps", "read_xas_maps", "RESERVED_NAMES"]

#: Array names the store uses itself; a reference column may not take them.
RESERVED_NAMES = ("r_factor", "od", "i0_mask")


def write_xas_maps(path: str | os.PathLike, maps: dict[str, np.ndarray], *, r_factor, od, i0_mask,
                   attrs: dict) -> Path:
    """Write component maps, R-factor, the fitted OD stack and attributes to ``path`` (a directory).

    ``attrs`` must hold ``pixel_m`` (metres) and ``energies_ev`` (eV); everything in it is stored
    as JSON in the root attributes. An existing store at ``path`` is replaced.
    """
    import zarr

    out = Path(path)
    for key in ("pixel_m", "energies_ev"):
        if key not in attrs:
            raise InputError(f"write_xas_maps: attrs must hold {key!r}")
    clash = [n for n in maps if n in RESERVED_NAMES or not n or "/" in n or n.startswith(".")]
    if clash:
        raise InputError(f"reference column name(s) {clash} cannot name a map (reserved: {list(RESERVED_NAMES)}, "
                         "no '/', no leading '.'); rename the column in the references file")
    if out.exists() and not (out / "zarr.json").exists():
        raise InputError(f"{out}: exists and is not a Zarr store; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        g = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        g.attrs.update(jsonable(attrs))
        arrays = dict(maps)
        arrays["r_factor"] = r_factor
        arrays["od"] = od
        arrays["i0_mask"] = np.asarray(i0_mask, dtype=np.uint8)
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            chunks = arr.shape if arr.ndim < 3 else (1,) + arr.shape[1:]
            a = g.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks, fill_value=None)
            a[...] = arr
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def read_xas_maps(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a store written by :func:`write_xas_maps`: ({array name: array}, root attributes)."""
    import zarr

    src = Path(path)
    if not (src / "zarr.json").exists():
        raise InputError(f"{src}: not a Zarr store (no zarr.json)")
    g = zarr.open_group(str(src), mode="r")
    return {name: np.asarray(a[...]) for name, a in g.arrays()}, dict(g.attrs)
