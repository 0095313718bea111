"""napari reader for chemtomo run stores: ``napari RUN.zarr`` and File › Open.

A store is recognised by its root metadata (``zarr.json`` with the ``chemtomo_version``
attribute that ``chemtomo run`` writes) and a ``volumes`` group; anything else is left to other
readers (the function returns None, as npe2 asks). The layers are those of
:func:`chemtomo.report.napari_layers.layer_specs` (μ per energy, FePO4 fraction, density, voxel
classes, particles; (z, y, x) order, voxel size in nm, lazy Dask arrays), with the particle table
attached to the particle labels as layer features, so napari's status bar shows a particle's
measurements under the cursor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..report.napari_layers import AXIS_LABELS, LayerSpec, layer_specs

__all__ = ["layer_data", "napari_get_reader", "read_store"]

#: layer metadata key holding the store's path (the particle widget reads spectra through it)
STORE_KEY = "chemtomo_store"


def _is_run_store(path: Path) -> bool:
    try:
        doc = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    attrs = doc.get("attributes", {}) if isinstance(doc, dict) else {}
    return isinstance(attrs, dict) and "chemtomo_version" in attrs and (path / "volumes").is_dir()


def napari_get_reader(path):
    """npe2 reader hook: :func:`read_store` when ``path`` is one chemtomo run store, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(os.fspath(path))
    return read_store if p.is_dir() and _is_run_store(p) else None


def _features(store_path: Path):
    """The particle table (one row per particle, ``index`` = the label value), or None."""
    from ..io.export import load_particle_table
    from ..io.store import RunStore

    store = RunStore(store_path, create=False)
    if not store.has("particles") or "columns" not in store.group_attrs("particles"):
        return None
    table = load_particle_table(store)
    if "label" in table:
        table.insert(0, "index", table["label"].astype(int))
    return table


def _kwargs(spec: LayerSpec, store_path: Path) -> dict:
    kw = dict(name=spec.name, scale=spec.scale_nm, units=("nm",) * len(spec.scale_nm), blending=spec.blending,
              opacity=spec.opacity, visible=spec.visible, axis_labels=AXIS_LABELS,
              metadata={**spec.metadata, STORE_KEY: str(store_path)})
    if spec.kind == "labels":
        if spec.colors:
            kw["colormap"] = {None: (0.0, 0.0, 0.0, 0.0), **spec.colors}
    else:
        if spec.colormap:
            kw["colormap"] = spec.colormap
        if spec.contrast_limits:
            kw["contrast_limits"] = spec.contrast_limits
    return kw


def layer_data(path) -> list[tuple]:
    """napari LayerData tuples ``(data, kwargs, "image" | "labels")`` of a run store.

    Built without napari. Raises StoreError when the store has no volumes yet.
    """
    store_path = Path(os.fspath(path)).resolve()
    out = []
    for spec in layer_specs(store_path):
        kw = _kwargs(spec, store_path)
        if spec.name == "particles":
            table = _features(store_path)
            if table is not None:
                kw["features"] = table
        out.append((spec.data, kw, spec.kind))
    return out


def read_store(path) -> list[tuple]:
    """The reader napari calls: the layers of one store (``path`` a path or a one-item list)."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    return layer_data(path)
