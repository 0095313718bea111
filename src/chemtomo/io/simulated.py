"""Write a simulated dataset (``chemtomo.simulate.Dataset``) to disk, and read its truth back.

A folder written by :func:`write_dataset` holds (README.txt in the folder says the same):

- ``scans/scan_NNNN_<angle>deg_<energy>eV.cxi``: one CXI file per (angle, energy) scan
- ``manifest.csv``: ``path,angle_deg,energy_eV`` (paths relative to the manifest)
- ``references.csv``: ``energy_eV,LiFePO4,FePO4``, μ of each pure phase in 1/m
- ``xas2d.h5``: the 2D XAS stack at 0°: ``/energies_eV`` (n_e,), ``/od`` (n_e, ny, nx),
  ``/pixel_m``
- ``truth.h5``: the ground truth (layout in :data:`TRUTH_LAYOUT`)
- ``truth_particles.csv``: one row per particle (units in the column names)

A full-field TXM dataset (:func:`write_txm_dataset`, ``chemtomo simulate --preset txm``) holds
instead one Data Exchange HDF5 file per energy (layout in :data:`TXM_FILE_LAYOUT`), a
``manifest.csv`` ``path,energy_eV,pixel_m``, the K-edge ``references.csv``, ``truth.h5``
(:data:`TXM_TRUTH_LAYOUT`, attribute ``kind = "txm"``), ``truth_particles.csv`` and README.txt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..core.containers import ScanRef
from ..core.errors import InputError
from ..simulate import AlignmentTruth, Dataset, Sample
from ..simulate.kedge import KEDGE_RANGE_EV, kedge_reference_spectra
from ..simulate.txm import TXMDataset
from ._h5 import atomic_path, open_h5
from .cxi import write_scan
from .manifest import write_manifest, write_references

__all__ = ["TRUTH_LAYOUT", "TXM_FILE_LAYOUT", "TXM_TRUTH_LAYOUT", "SimulatedTruth", "read_truth", "txm_file_name",
           "write_dataset", "write_txm_dataset"]

#: Datasets of ``truth.h5`` (all lengths in metres, energies eV, angles degrees).
TRUTH_LAYOUT = {
    "/occupancy": "(ny, nz, nx) float32 material fraction of each voxel, 0–1",
    "/fraction": "(ny, nz, nx) float32 FePO4 fraction of the material, NaN outside",
    "/labels": "(ny, nz, nx) int32 particle label, 0 = background",
    "/mu/<energy>": "(ny, nz, nx) float32 linear absorption coefficient per voxel, 1/m",
    "/od/<energy>": "(n_angles, ny, nx) float32 aligned noise-free OD tilt series, truth grid",
    "/voxel_m": "voxel size = truth-grid pixel, m",
    "/soc": "requested state of charge (mean FePO4 fraction of the material)",
    "/soc_measured": "occupancy-weighted mean FePO4 fraction of the truth volume",
    "/angles_deg": "(n_angles,) tilt angles in acquisition order",
    "/energies_eV": "(n_energies,) tomography energies",
    "/pixel_m/<energy>": "object pixel size of the scans at each energy, m",
    "/alignment/shifts_px": "(n_angles, 2) (dy, dx) truth-grid pixels, DESIGN.md convention",
    "/alignment/rotation_deg": "(n_angles,)",
    "/alignment/scale": "(n_angles,)",
    "/alignment/energy_offsets_px": "(n_energies, 2) (dy, dx), first energy (0, 0)",
    "/alignment/energies_eV": "(n_energies,) energies of the offsets",
    "/positions": "(n_scans, n_frames, 2) actual probe positions (y, x), m, scan order of manifest",
    "/positions_recorded": "(n_scans, n_frames, 2) positions written in the CXI files, m",
    "/positions_nominal": "(n_frames, 2) the nominal square raster, m",
    "/probes/<energy>": "(h, w) complex64 true probe, sum |P|^2 = photons per frame",
    "/background": "(h, w) float32 true static background, counts per pixel per frame",
    "/mask": "(h, w) bool detector mask, True = valid",
}

_README = """Simulated ptychographic spectro-tomography dataset (chemtomo.simulate; Yu et al. 2018)

preset {preset}, seed {seed}, noise seed {noise_seed}, state of charge {soc}
{n_angles} angles from {a0} to {a1} deg, energies {energies} eV, {n_scans} scans of {n_frames} frames of {frame}x{frame}

Conventions: lengths in metres, energies in eV, angles in degrees. Positions (y, x) are the probe
centre relative to the centre of the object array. The truth grid is the volume's (ny, nx) with
pixel voxel_m; its centre ((ny-1)/2, (nx-1)/2) is position 0. The object pixel of a scan is
lambda z / (n p): voxel_m at the first energy, slightly different at the others.

Files
  scans/*.cxi          one CXI file per (angle, energy): frames (photon counts, zero frequency at the
                       centre), translation (x, y, 0) m, energy (J), distance, pixel sizes, mask
                       (CXI: non-zero = bad pixel), probe guess, orientation (tilt angle)
  manifest.csv         path,angle_deg,energy_eV (paths relative to this folder)
  references.csv       energy_eV,LiFePO4,FePO4: linear absorption coefficient mu = 4 pi beta / lambda
                       of each pure phase at full density, 1/m
  xas2d.h5             2D XAS stack at 0 deg on the truth grid: /energies_eV, /od (n_e, ny, nx), /pixel_m
  truth.h5             ground truth:
{layout}
  truth_particles.csv  one row per particle: label, length_nm, width_nm, thickness_nm, facet_area_nm2,
                       volume_nm3, fp_fraction, pattern (lithiated, delithiated, edges, facet, split),
                       orientation_deg, tilt_deg, centroid_{{y,z,x}}_px (voxel indices)

Misalignment (DESIGN.md): the content at p in the aligned projection sits in the raw one at
c + scale R(rotation)(p - c) + shift + energy offset, R = [[cos, -sin], [sin, cos]] on (y, x).
"""


def _ekey(energy_ev: float) -> str:
    return f"{float(energy_ev):g}"


def _scan_name(i: int, angle: float, energy: float) -> str:
    return f"scan_{i:04d}_{angle:+07.2f}deg_{energy:.2f}eV.cxi"


def write_dataset(out_dir: str | os.PathLike, dataset: Dataset,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Write every scan, the manifest, references, the 2D XAS stack and the ground truth.

    Parameters
    ----------
    out_dir : folder (created if missing)
    dataset : chemtomo.simulate.Dataset
    progress : callable(done, total), optional; called after each scan and after the truth

    Returns
    -------
    Path of ``manifest.csv``.
    """
    if not isinstance(dataset, Dataset):
        raise InputError(f"write_dataset: dataset must be a chemtomo.simulate.Dataset, got {type(dataset).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; write_dataset needs a folder")
    (out / "scans").mkdir(parents=True, exist_ok=True)
    n = len(dataset.scans)
    total = n + 1
    refs = []
    for i, (angle, energy) in enumerate(dataset.scan_keys):
        rel = Path("scans") / _scan_name(i, angle, energy)
        write_scan(out / rel, dataset.scans[i])
        refs.append(ScanRef(path=str(rel), angle_deg=float(angle), energy_ev=float(energy)))
        if progress is not None:
            progress(i + 1, total)
    write_references(out / "references.csv", dataset.references.energy_eV.to_numpy(),
                     {"LiFePO4": dataset.references.LiFePO4.to_numpy(), "FePO4": dataset.references.FePO4.to_numpy()})
    with atomic_path(out / "xas2d.h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("energies_eV", data=np.asarray(dataset.xas_energies_ev, np.float64))
        f.create_dataset("od", data=np.asarray(dataset.xas_od, np.float32), compression="gzip")
        f.create_dataset("pixel_m", data=float(dataset.voxel_m))
    _write_truth(out / "truth.h5", dataset)
    dataset.sample.table.to_csv(out / "truth_particles.csv", index=False, float_format="%.6g")
    p = dataset.preset
    layout = "\n".join(f"                         {k:28s} {v}" for k, v in TRUTH_LAYOUT.items())
    (out / "README.txt").write_text(_README.format(
        preset=dataset.preset_name, seed=dataset.seed, soc=dataset.soc, n_angles=len(dataset.angles_deg),
        noise_seed=dataset.seed if dataset.noise_seed is None else dataset.noise_seed,
        a0=dataset.angles_deg[0], a1=dataset.angles_deg[-1], energies=", ".join(_ekey(e) for e in dataset.energies_ev),
        n_scans=n, n_frames=dataset.nominal_positions_m.shape[0], frame=p.frame_px, layout=layout))
    manifest = write_manifest(out / "manifest.csv", refs)
    if progress is not None:
        progress(total, total)
    return manifest


def _write_truth(path: Path, ds: Dataset) -> None:
    s = ds.sample
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["preset"] = ds.preset_name
        f.attrs["seed"] = ds.seed
        f.attrs["noise_seed"] = ds.seed if ds.noise_seed is None else ds.noise_seed
        f.attrs["parameters"] = json.dumps(asdict(ds.preset))
        for name, arr in (("occupancy", s.occupancy), ("fraction", s.fraction), ("labels", s.labels)):
            f.create_dataset(name, data=arr, compression="gzip")
        for e in ds.energies_ev:
            f.create_dataset(f"mu/{_ekey(e)}", data=ds.mu_volume(float(e)), compression="gzip")
            f.create_dataset(f"od/{_ekey(e)}", data=ds.od_truth(float(e)), compression="gzip")
            f.create_dataset(f"pixel_m/{_ekey(e)}", data=float(ds.pixel_m[float(e)]))
            f.create_dataset(f"probes/{_ekey(e)}", data=ds.probes[float(e)])
        _write_shared_truth(f, ds, s)
        f.create_dataset("positions", data=ds.positions_m)
        f.create_dataset("positions_recorded", data=ds.recorded_positions_m)
        f.create_dataset("positions_nominal", data=ds.nominal_positions_m)
        f.create_dataset("background", data=ds.background)
        f.create_dataset("mask", data=ds.mask)
        for key, text in TRUTH_LAYOUT.items():
            f.attrs["doc:" + key] = text


#: Datasets of each ``txm_<energy>eV.h5`` (Data Exchange, the APS/TomoPy convention).
TXM_FILE_LAYOUT = {
    "/exchange/data": "(n_angles, ny, nx) uint16 (float32 if counts exceed 65535) projection counts",
    "/exchange/data_white": "(n_flat, ny, nx) flat (open beam) counts, same dtype",
    "/exchange/data_dark": "(n_dark, ny, nx) dark counts, same dtype",
    "/exchange/theta": "(n_angles,) float64 tilt angles, attribute units = 'degrees'",
    "/measurement/instrument/monochromator/energy": "scalar photon energy, attribute units = 'eV'",
    "/measurement/instrument/detection_system/objective/resolution":
        "scalar effective sample pixel size, attribute units = 'm'",
}

#: Datasets of a TXM ``truth.h5`` (attribute ``kind = "txm"``; lengths m, energies eV, angles degrees).
TXM_TRUTH_LAYOUT = {
    "/occupancy": "(ny, nz, nx) float32 material fraction of each voxel, 0-1 (= density C_LFP + C_FP)",
    "/fraction": "(ny, nz, nx) float32 FePO4 fraction of the material, NaN outside",
    "/labels": "(ny, nz, nx) int32 particle label, 0 = background",
    "/phase_volumes/LiFePO4": "(ny, nz, nx) float32 volume fraction of LiFePO4 per voxel",
    "/phase_volumes/FePO4": "(ny, nz, nx) float32 volume fraction of FePO4 per voxel",
    "/mu/<energy>": "(ny, nz, nx) float32 linear absorption coefficient per voxel, 1/m",
    "/od/<energy>": "(n_angles, ny, nx) float32 aligned noise-free OD tilt series, truth grid",
    "/od_detector/<energy>": "(n_angles, ny_d, nx_d) float32 noise-free OD as recorded (misaligned, "
                             "that energy's pixel)",
    "/voxel_m": "voxel size = truth-grid pixel = detector pixel at the first energy, m",
    "/soc": "requested state of charge (mean FePO4 fraction of the material)",
    "/soc_measured": "occupancy-weighted mean FePO4 fraction of the truth volume",
    "/angles_deg": "(n_angles,) tilt angles in acquisition order",
    "/energies_eV": "(n_energies,) energies",
    "/pixel_m/<energy>": "effective sample pixel size at each energy, m",
    "/alignment/shifts_px": "(n_angles, 2) (dy, dx) truth-grid pixels, DESIGN.md convention",
    "/alignment/rotation_deg": "(n_angles,)",
    "/alignment/scale": "(n_angles,)",
    "/alignment/energy_offsets_px": "(n_energies, 2) (dy, dx), first energy (0, 0)",
    "/alignment/energies_eV": "(n_energies,) energies of the offsets",
    "/beam/<energy>": "(ny_d, nx_d) float32 mean incident counts B at drift 1",
    "/drift/<energy>": "(n_angles,) incident intensity of each projection relative to B",
    "/flat_drift/<energy>": "(n_flat,) incident intensity of each flat relative to B",
    "/dark_level": "(ny_d, nx_d) float32 mean dark counts per pixel (read noise rms in attribute read_noise_counts)",
}

_TXM_README = """Simulated full-field TXM XANES tomography at the Fe K-edge (chemtomo.simulate.simulate_txm)

preset {preset}, seed {seed}, state of charge {soc}
{n_angles} angles from {a0} to {a1} deg, {n_energies} energies from {e0} to {e1} eV, detector {ny}x{nx} pixels,
{n_flat} flats and {n_dark} darks per energy, {photons:g} photons per pixel at the beam peak, counts as {dtype}

Conventions: lengths in metres, energies in eV, angles in degrees. The rotation axis is the
detector's y axis (rows), through the detector centre ((ny-1)/2, (nx-1)/2). The effective pixel
grows with energy (zone-plate magnification, pixel_m column of manifest.csv); it is voxel_m at the
first energy. OD = -ln((I - dark)/(flat - dark)).

Files
  txm_<energy>eV.h5    one Data Exchange file per energy:
{file_layout}
  manifest.csv         path,energy_eV,pixel_m (paths relative to this folder)
  references.csv       energy_eV,LiFePO4,FePO4: Fe K-edge linear absorption coefficient mu of each pure
                       phase at full density, 1/m (chemtomo.simulate.kedge), on a 0.5 eV grid plus the
                       measured energies
  truth.h5             ground truth (attribute kind = "txm"):
{layout}
  truth_particles.csv  one row per particle: label, length_nm, width_nm, thickness_nm, facet_area_nm2,
                       volume_nm3, fp_fraction, pattern (lithiated, delithiated, edges, facet, split),
                       orientation_deg, tilt_deg, centroid_{{y,z,x}}_px (voxel indices)

Misalignment (DESIGN.md): the content at p in the aligned projection sits in the raw one at
c + scale R(rotation)(p - c) + shift + energy offset, R = [[cos, -sin], [sin, cos]] on (y, x), in
truth-grid pixels; the raw detector pixel r of energy E sees the truth-grid point
c + (r - c_d) pixel_m(E) / voxel_m.
"""


def txm_file_name(energy_ev: float) -> str:
    """File name of one energy's Data Exchange file: ``txm_{energy_eV:.1f}eV.h5``."""
    return f"txm_{float(energy_ev):.1f}eV.h5"


def _write_exchange(path: Path, ds: TXMDataset, i: int) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["implements"] = "exchange:measurement"
        for name, arr in (("data", ds.data[i]), ("data_white", ds.flats[i]), ("data_dark", ds.darks[i])):
            f.create_dataset(f"exchange/{name}", data=arr, compression="gzip", shuffle=True,
                             chunks=(1,) + arr.shape[1:])
        theta = f.create_dataset("exchange/theta", data=np.asarray(ds.angles_deg, np.float64))
        theta.attrs["units"] = "degrees"
        energy = f.create_dataset("measurement/instrument/monochromator/energy", data=float(ds.energies_ev[i]))
        energy.attrs["units"] = "eV"
        res = f.create_dataset("measurement/instrument/detection_system/objective/resolution",
                               data=float(ds.pixel_m[i]))
        res.attrs["units"] = "m"
        f.create_dataset("measurement/sample/name", data=f"chemtomo TXM phantom, seed {ds.seed}")


def write_txm_dataset(out_dir: str | os.PathLike, dataset: TXMDataset,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Write a simulated TXM dataset: one Data Exchange file per energy, manifest, references, truth.

    Parameters
    ----------
    out_dir : folder (created if missing)
    dataset : chemtomo.simulate.TXMDataset
    progress : callable(done, total), optional; called after each file and after the truth

    Returns
    -------
    Path of ``manifest.csv`` (header ``path,energy_eV,pixel_m``, one row per energy).

    Notes
    -----
    File layout: :data:`TXM_FILE_LAYOUT`; truth: :data:`TXM_TRUTH_LAYOUT`; README.txt in the
    folder says the same. The references cover a 0.5 eV grid from 10 eV below the first to
    10 eV above the last energy (within the K-edge model's range) and the measured energies.
    """
    if not isinstance(dataset, TXMDataset):
        raise InputError(f"write_txm_dataset: dataset must be a chemtomo.simulate.TXMDataset, "
                         f"got {type(dataset).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; write_txm_dataset needs a folder")
    ds = dataset
    names = [txm_file_name(e) for e in ds.energies_ev]
    if len(set(names)) != len(names):
        raise InputError(f"write_txm_dataset: energies {list(ds.energies_ev)} eV give repeated file names "
                         f"(one decimal: {names}); energies must differ by at least 0.1 eV")
    out.mkdir(parents=True, exist_ok=True)
    n_e = len(ds.energies_ev)
    total = n_e + 1
    rows = []
    for i, e in enumerate(ds.energies_ev):
        name = txm_file_name(e)
        _write_exchange(out / name, ds, i)
        rows.append((name, float(e), float(ds.pixel_m[i])))
        if progress is not None:
            progress(i + 1, total)
    lo, hi = KEDGE_RANGE_EV
    grid = np.arange(max(lo, ds.energies_ev[0] - 10.0), min(hi, ds.energies_ev[-1] + 10.0) + 1e-9, 0.5)
    energies = np.unique(np.round(np.concatenate([grid, ds.energies_ev]), 4))
    refs = kedge_reference_spectra(energies)
    write_references(out / "references.csv", energies, {"LiFePO4": refs.LiFePO4.to_numpy(),
                                                        "FePO4": refs.FePO4.to_numpy()})
    _write_txm_truth(out / "truth.h5", ds)
    ds.sample.table.to_csv(out / "truth_particles.csv", index=False, float_format="%.6g")
    p = ds.preset
    pad = " " * 25
    (out / "README.txt").write_text(_TXM_README.format(
        preset=ds.preset_name, seed=ds.seed, soc=ds.soc, n_angles=len(ds.angles_deg), a0=ds.angles_deg[0],
        a1=ds.angles_deg[-1], n_energies=n_e, e0=_ekey(ds.energies_ev[0]), e1=_ekey(ds.energies_ev[-1]),
        ny=ds.detector_shape[0], nx=ds.detector_shape[1], n_flat=p.n_flat, n_dark=p.n_dark,
        photons=p.photons_per_pixel, dtype=ds.data.dtype.name,
        file_layout="\n".join(f"{pad}{k:62s} {v}" for k, v in TXM_FILE_LAYOUT.items()),
        layout="\n".join(f"{pad}{k:28s} {v}" for k, v in TXM_TRUTH_LAYOUT.items())))
    manifest = out / "manifest.csv"
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as fh:
        fh.write("path,energy_eV,pixel_m\n")
        for name, e, px in rows:
            fh.write(f"{name},{e:.4f},{px:.6e}\n")
    if progress is not None:
        progress(total, total)
    return manifest


def _write_txm_truth(path: Path, ds: TXMDataset) -> None:
    s = ds.sample
    lfp, fp = s.phase_volumes()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["kind"] = "txm"
        f.attrs["preset"] = ds.preset_name
        f.attrs["seed"] = ds.seed
        f.attrs["parameters"] = json.dumps(asdict(ds.preset))
        for name, arr in (("occupancy", s.occupancy), ("fraction", s.fraction), ("labels", s.labels),
                          ("phase_volumes/LiFePO4", lfp), ("phase_volumes/FePO4", fp)):
            f.create_dataset(name, data=arr, compression="gzip")
        for i, e in enumerate(ds.energies_ev):
            k = _ekey(e)
            f.create_dataset(f"mu/{k}", data=ds.mu_volume(i), compression="gzip")
            f.create_dataset(f"od/{k}", data=ds.od_truth(i), compression="gzip")
            f.create_dataset(f"od_detector/{k}", data=ds.od_detector[i], compression="gzip")
            f.create_dataset(f"pixel_m/{k}", data=float(ds.pixel_m[i]))
            f.create_dataset(f"beam/{k}", data=ds.beam[i], compression="gzip")
            f.create_dataset(f"drift/{k}", data=ds.drift[i])
            f.create_dataset(f"flat_drift/{k}", data=ds.flat_drift[i])
        dark = f.create_dataset("dark_level", data=ds.dark_level, compression="gzip")
        dark.attrs["read_noise_counts"] = float(ds.preset.read_noise_counts)
        _write_shared_truth(f, ds, s)
        for key, text in TXM_TRUTH_LAYOUT.items():
            f.attrs["doc:" + key] = text


@dataclass(frozen=True)
class SimulatedTruth:
    """Ground truth of a simulated dataset, as read back from its folder.

    sample        : Sample (occupancy, fraction, labels, particle table from truth_particles.csv)
    mu            : {energy_eV: (ny, nz, nx) float32 μ per voxel, 1/m}
    od            : {energy_eV: (n_angles, ny, nx) float32 aligned noise-free OD}
    alignment     : AlignmentTruth
    angles_deg, energies_ev : acquisition angles and tomography energies
    pixel_m       : {energy_eV: object pixel size, m}
    positions_m, recorded_positions_m : (n_scans, n_frames, 2); nominal_positions_m (n_frames, 2)
    probes        : {energy_eV: (h, w) complex64}; background (h, w) float32; mask (h, w) bool
                    (positions, probes, background and mask are None/empty for a TXM dataset)
    soc           : requested state of charge; soc_measured the truth volume's
    preset, seed, parameters : how it was made
    kind          : "ptychography" or "txm"
    detector      : TXM only: {"od": {energy: (n_angles, ny_d, nx_d) recorded noise-free OD},
                    "beam": {energy: (ny_d, nx_d)}, "drift": {energy: (n_angles,)},
                    "flat_drift": {energy: (n_flat,)}, "dark_level": (ny_d, nx_d),
                    "read_noise_counts": float}; None for ptychography
    """

    sample: Sample
    mu: dict
    od: dict
    alignment: AlignmentTruth
    angles_deg: np.ndarray
    energies_ev: np.ndarray
    pixel_m: dict
    positions_m: np.ndarray
    recorded_positions_m: np.ndarray
    nominal_positions_m: np.ndarray
    probes: dict
    background: np.ndarray
    mask: np.ndarray
    soc: float
    soc_measured: float
    preset: str
    seed: int
    parameters: dict
    kind: str = "ptychography"
    detector: dict | None = None

    @property
    def voxel_m(self) -> float:
        return self.sample.voxel_m


def read_truth(folder: str | os.PathLike) -> SimulatedTruth:
    """Load the ground truth written by :func:`write_dataset` or :func:`write_txm_dataset`."""
    d = Path(folder)
    path = d / "truth.h5"
    csv = d / "truth_particles.csv"
    if not csv.exists():
        raise InputError(f"{csv}: file not found; read_truth needs a folder written by write_dataset")
    with open_h5(path) as f:
        kind = str(f.attrs.get("kind", "ptychography"))
        for key in ("occupancy", "fraction", "labels", "voxel_m", "alignment/shifts_px", "mu") + (
                ("positions",) if kind == "ptychography" else ()):
            if key not in f:
                raise InputError(f"{path}: missing /{key}; not a chemtomo simulation truth file")

        def per_energy(group):
            return {float(k): f[group][k][()] for k in f[group]} if group in f else {}

        def optional(key):
            return f[key][()] if key in f else None

        detector = None
        if kind == "txm":
            detector = {"od": per_energy("od_detector"), "beam": per_energy("beam"), "drift": per_energy("drift"),
                        "flat_drift": per_energy("flat_drift"), "dark_level": f["dark_level"][()],
                        "read_noise_counts": float(f["dark_level"].attrs["read_noise_counts"])}

        table = pd.read_csv(csv)
        sample = Sample(occupancy=f["occupancy"][()], fraction=f["fraction"][()], labels=f["labels"][()],
                        table=table, voxel_m=float(f["voxel_m"][()]))
        al = AlignmentTruth(f["alignment/shifts_px"][()], f["alignment/rotation_deg"][()], f["alignment/scale"][()],
                            f["alignment/energy_offsets_px"][()], f["alignment/energies_eV"][()])
        return SimulatedTruth(
            sample=sample, mu=per_energy("mu"), od=per_energy("od"), alignment=al,
            angles_deg=f["angles_deg"][()], energies_ev=f["energies_eV"][()], pixel_m=per_energy("pixel_m"),
            positions_m=optional("positions"), recorded_positions_m=optional("positions_recorded"),
            nominal_positions_m=optional("positions_nominal"), probes=per_energy("probes"),
            background=optional("background"), mask=optional("mask"), soc=float(f["soc"][()]),
            soc_measured=float(f["soc_measured"][()]), preset=str(f.attrs["preset"]), seed=int(f.attrs["seed"]),
            parameters=json.loads(f.attrs["parameters"]), kind=kind, detector=detector)


def _write_shared_truth(f: h5py.File, ds, sample) -> None:
    """The truth every preset writes alike: voxel, SOC, angles, energies, the true misalignment."""
    f.create_dataset("voxel_m", data=float(sample.voxel_m))
    f.create_dataset("soc", data=float(ds.soc))
    f.create_dataset("soc_measured", data=float(sample.soc))
    f.create_dataset("angles_deg", data=np.asarray(ds.angles_deg, np.float64))
    f.create_dataset("energies_eV", data=np.asarray(ds.energies_ev, np.float64))
    a = ds.alignment
    f.create_dataset("alignment/shifts_px", data=a.shifts_px)
    f.create_dataset("alignment/rotation_deg", data=a.rotation_deg)
    f.create_dataset("alignment/scale", data=a.scale)
    f.create_dataset("alignment/energy_offsets_px", data=a.energy_offsets_px)
    f.create_dataset("alignment/energies_eV", data=a.energies_ev)
