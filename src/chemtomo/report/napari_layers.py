"""The layers ``chemtomo view RUN.zarr`` and the napari plugin (:mod:`chemtomo.viewer`) show: built
here without napari, so that what a user sees (data, physical scale, names, colours) is tested
headless.

Every volume is shown in the axis order of the OME-Zarr export (io.ome_zarr): the store's
``(y, z, x)`` transposed to ``(z, y, x)`` (z the beam at 0°, y the rotation axis), lazily (Dask
over the Zarr arrays, nothing is read until napari draws a slice), with the voxel size in nm as
the layer scale, so napari's scale bar and coordinates are in nanometres.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from ..core.errors import StoreError
from ..io.ome_zarr import CLASS_NAMES, STORE_TO_NGFF, class_colours_rgba
from ..io.store import RunStore, energy_key

__all__ = ["LayerSpec", "layer_specs", "napari_available", "INSTALL_HINT"]

INSTALL_HINT = "napari is not installed; install it with: pip install 'chemtomo[view]'"
AXIS_LABELS = ("z (beam at 0°)", "y (rotation axis)", "x")


@dataclass(frozen=True)
class LayerSpec:
    """One napari layer: ``kind`` "image" or "labels", its data (z, y, x) and how to draw it.

    ``scale_nm`` is the voxel size per axis (napari's ``scale``); ``colors`` maps label values to
    RGBA in 0–1 (labels only, None lets napari pick); ``colormap`` and ``contrast_limits`` are for
    images; ``blending`` and ``opacity`` are napari's.
    """

    kind: str
    name: str
    data: object
    scale_nm: tuple[float, float, float]
    colormap: str | None = None
    contrast_limits: tuple[float, float] | None = None
    colors: dict[int, tuple[float, float, float, float]] | None = None
    blending: str = "translucent"
    opacity: float = 1.0
    visible: bool = True
    metadata: dict = field(default_factory=dict)


def _lazy(store: RunStore, key: str):
    """A store volume (y, z, x) as a lazy Dask array in (z, y, x) order."""
    import dask.array as da

    parent, _, name = key.rpartition("/")
    return da.from_zarr(store.group(parent)[name]).transpose(STORE_TO_NGFF)


def layer_specs(store_path) -> list[LayerSpec]:
    """The layers of a run: μ per energy, FePO4 fraction, density, the class map and the particles.

    Raises StoreError when the run has no volumes yet.
    """
    store = RunStore(store_path, create=False)
    if not store.has("volumes"):
        raise StoreError(f"{store.path}: no volumes to view yet; run the reconstruction first")
    va = store.group_attrs("volumes")
    s = (round(float(va["voxel_m"]) * 1e9, 6),) * 3
    specs = []
    ref = store.group_attrs("tiltseries").get("reference_energy_eV") if store.has("tiltseries") else None
    for i, e in enumerate(va["energies_eV"]):
        visible = (ref is None and i == 0) or (ref is not None and abs(float(e) - float(ref)) < 1e-3)
        specs.append(LayerSpec("image", f"μ {float(e):g} eV (1/m)", _lazy(store, f"volumes/{energy_key(e)}"), s,
                               colormap="gray", blending="additive", visible=visible,
                               metadata={"energy_eV": float(e), "units": "1/m"}))
    if store.has("chem"):
        specs.append(LayerSpec("image", "FePO4 fraction", _lazy(store, "chem/fraction"), s, colormap="coolwarm",
                               contrast_limits=(0.0, 1.0), blending="translucent", visible=False,
                               metadata={"units": "1", "outside": "NaN"}))
        specs.append(LayerSpec("image", "density", _lazy(store, "chem/density"), s, colormap="magma",
                               blending="additive", visible=False))
        rgba = class_colours_rgba()
        colours = {0: (0.0, 0.0, 0.0, 0.0), **{v: tuple(c / 255 for c in rgba[v]) for v in CLASS_NAMES}}
        specs.append(LayerSpec("labels", "classes (1 LFP-rich, 2 mixed, 3 FP-rich)", _lazy(store, "chem/labels"), s,
                               colors=colours, opacity=0.6, metadata={"classes": CLASS_NAMES}))
    if store.has("particles"):
        specs.append(LayerSpec("labels", "particles", _lazy(store, "particles/labels"), s, opacity=0.5,
                               visible=False))
    return specs


def napari_available() -> bool:
    """Whether napari can be imported (the ``view`` extra)."""
    return importlib.util.find_spec("napari") is not None
