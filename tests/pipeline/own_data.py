"""Write a simulated experiment as users bring their own data (shared by pipeline and e2e tests).

- :func:`write_cxi_images`: reconstructed complex projections in the CXI image convention, one file
  per (angle, energy); even rows written by chemtomo's own writer, odd rows with plain h5py the
  way ALS COSMIC / PyNX files look (a leading mode axis of 1, ``x_pixel_size`` only, complex128).
- :func:`write_data_exchange`: full-field intensity, one Data Exchange file per energy, with
  flats, darks, Poisson noise and theta in radians.

Both start from the simulator's true object of each scan (``Dataset.scan_object``): the
misaligned transmission on the energy's own pixel grid (pixel ∝ wavelength, so the energies
differ), cropped to the scanned field: the truth volume plus the largest misalignment shift on
each side, as a ptychographic reconstruction of the raster would cover.
"""

from pathlib import Path

import h5py
import numpy as np

from chemtomo.core import Projection, ScanRef
from chemtomo.core.units import ev_to_joule
from chemtomo.io import write_manifest, write_projection, write_references


def scanned_objects(ds, i: int):
    """The true object of scan ``i`` cropped to the scanned field, and its pixel size."""
    obj, pixel = ds.scan_object(i)
    margin = int(ds.preset.shift_max_px)
    hy, hx = (ds.sample.shape[0] + 2 * margin) // 2, (ds.sample.shape[2] + 2 * margin) // 2
    cy, cx = obj.shape[0] // 2, obj.shape[1] // 2  # position 0 = the truth grid's centre
    return obj[cy - hy:cy + hy, cx - hx:cx + hx], pixel


def write_refs(ds, folder: Path) -> None:
    r = ds.references
    write_references(folder / "references.csv", r.energy_eV.to_numpy(),
                     {"LiFePO4": r.LiFePO4.to_numpy(), "FePO4": r.FePO4.to_numpy()})


def write_cxi_images(ds, folder: Path, *, noise: float, seed: int = 0) -> Path:
    """CXI images of every scan with complex Gaussian noise ``noise`` per component (relative)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    refs = []
    for i, (angle, energy) in enumerate(ds.scan_keys):
        obj, pixel = scanned_objects(ds, i)
        t = obj * (1 + noise * (rng.standard_normal(obj.shape) + 1j * rng.standard_normal(obj.shape)))
        path = folder / f"image_{i:04d}.cxi"
        if i % 2 == 0:
            write_projection(path, Projection(t.astype(np.complex64), pixel, float(energy), float(angle)))
        else:
            with h5py.File(path, "w") as f:
                f["entry_1/image_1/data"] = t[None].astype(np.complex128)
                f["entry_1/image_1/x_pixel_size"] = pixel
                f["entry_1/instrument_1/source_1/energy"] = ev_to_joule(float(energy))
        refs.append(ScanRef(str(path), float(angle), float(energy)))
    write_refs(ds, folder)
    return write_manifest(folder / "manifest.csv", refs)


def write_data_exchange(ds, folder: Path, *, flat_counts: float = 2.0e4, dark_counts: float = 100.0,
                        n_flats: int = 10, n_darks: int = 5, seed: int = 0) -> Path:
    """One Data Exchange file per energy: Poisson counts dark + flat·|T|², flats, darks, theta (rad)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_e = len(ds.energies_ev)
    rows = []
    for ie, energy in enumerate(ds.energies_ev):
        images, pixel = [], None
        for ia in range(len(ds.angles_deg)):
            obj, pixel = scanned_objects(ds, ia * n_e + ie)
            images.append(np.abs(obj) ** 2)
        intensity = dark_counts + flat_counts * np.stack(images)
        shape = intensity.shape[1:]
        path = folder / f"txm_{float(energy):.1f}eV.h5"
        with h5py.File(path, "w") as f:
            f["exchange/data"] = rng.poisson(intensity).astype(np.uint16)
            f["exchange/data_white"] = rng.poisson(dark_counts + flat_counts, (n_flats, *shape)).astype(np.uint16)
            f["exchange/data_dark"] = rng.poisson(dark_counts, (n_darks, *shape)).astype(np.uint16)
            f["exchange/theta"] = np.radians(np.asarray(ds.angles_deg, np.float64))
            f["exchange/theta"].attrs["units"] = b"rad"
            f["measurement/instrument/monochromator/energy"] = float(energy) / 1e3
            f["measurement/instrument/monochromator/energy"].attrs["units"] = "keV"
            f["measurement/instrument/detection_system/objective/resolution"] = pixel * 1e9
            f["measurement/instrument/detection_system/objective/resolution"].attrs["units"] = "nm"
        rows.append(f"{path.name},{float(energy):g}")
    write_refs(ds, folder)
    manifest = folder / "manifest.csv"
    manifest.write_text("path,energy_eV\n" + "\n".join(rows) + "\n")
    return manifest
