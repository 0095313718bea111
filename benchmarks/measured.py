"""chemtomo on measured data from the field's own repositories (README, "Measured data").

1. **Ptychography**: tike's measured Siemens-star scan (``tests/data/siemens-star-small.npz.bz2``
   of AdvancedPhotonSource/tike, BSD-3-Clause: "a real dataset that has been pre-processed to be
   smaller", APS Velociprobe; 516 frames of 128 × 128 photon counts, positions in pixels, zero
   frequency at the corner). Converted to a CXI scan (frames centred; positions written as tike
   documents them, ``scan[:, 0]`` along the frame rows), then ``guess_orientation`` (the eight
   conventions on the central 49 frames) and a full reconstruction under the winner with the
   split-half FRC.
2. **Full-field tomography**: TomoPy's measured tooth (``source/tomopy/data/tooth.h5`` of
   tomopy/tomopy, BSD-3-Clause-style UChicago licence; Data Exchange: 181 projections over
   0–179°, 2 rows × 640 columns, 10 flats, 10 darks) read with ``io.read_data_exchange``, binned
   2× along x (counts summed), made optical density with ``chem.flat_field_od``, centre of rotation from ``align``, reconstructed
   with ``tomo.reconstruct`` (FBP and SIRT), and run through ``chemtomo run`` from a manifest.

Neither file carries the photon energy, the detector distance or the pixel size, so the
ptychography scan is given a nominal geometry (8.8 keV, 75 µm detector pixels, distance set for
a 10 nm object pixel) and resolutions are quoted in pixels as well.

Usage::

    python benchmarks/measured.py [--data DIR] [--out benchmarks/out/measured] [--iterations 300]

DIR (default: $CHEMTOMO_MEASURED_DATA, else tests/data/measured) holds the two files.
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from chemtomo.core import Scan, energy_to_wavelength

ROOT = Path(__file__).resolve().parent.parent
STAR = "siemens-star-small.npz.bz2"
TOOTH = "tooth.h5"
#: Nominal geometry of the star scan (not in the file): Velociprobe-like energy and detector pixel.
STAR_ENERGY_EV = 8800.0
STAR_DETECTOR_PIXEL_M = 75e-6
STAR_OBJECT_PIXEL_M = 10e-9
#: Nominal energy and pixel of the tooth (not in the file) for `chemtomo run`.
TOOTH_ENERGY_EV = 25000.0
TOOTH_PIXEL_M = 1.3e-6


def data_dir(given: str | None) -> Path:
    for d in (given, os.environ.get("CHEMTOMO_MEASURED_DATA"), ROOT / "tests" / "data" / "measured"):
        if d and (Path(d) / STAR).exists():
            return Path(d)
    raise SystemExit(f"no {STAR} in --data, $CHEMTOMO_MEASURED_DATA or tests/data/measured (see its README)")


def star_scan(path: Path) -> Scan:
    """tike's measured Siemens-star scan as a chemtomo Scan (nominal geometry, see module notes)."""
    with bz2.open(path, "rb") as f:
        archive = np.load(f)
        data, scan_px = archive["data"][0], archive["scan"][0].astype(np.float64)
        probe = archive["probe"][0, 0, 0, :1].astype(np.complex64)  # tike's zone-plate model, (1, 128, 128)
    frames = np.fft.fftshift(data, axes=(1, 2)).astype(np.float32)  # zero frequency to the centre
    n = frames.shape[1]
    wavelength = energy_to_wavelength(STAR_ENERGY_EV)
    distance = STAR_OBJECT_PIXEL_M * n * STAR_DETECTOR_PIXEL_M / wavelength  # λz/(n p) = object pixel
    positions_px = scan_px - (scan_px.max(0) + scan_px.min(0)) / 2  # about the scanned field's centre
    return Scan(frames=frames, positions_m=positions_px * STAR_OBJECT_PIXEL_M, energy_ev=STAR_ENERGY_EV,
                distance_m=distance, detector_pixel_m=STAR_DETECTOR_PIXEL_M, probe=probe, source=str(path))


def run_ptycho(src: Path, out: Path, iterations: int) -> dict:
    from chemtomo.io import read_scan, write_projection, write_scan
    from chemtomo.ptycho import guess_orientation, reconstruct

    cxi = write_scan(out / "siemens_star.cxi", star_scan(src))
    scan = read_scan(cxi)
    t0 = time.perf_counter()
    guess = guess_orientation(scan)
    guess_s = time.perf_counter() - t0
    table = [{"swap_xy": t.swap_xy, "flip_x": t.flip_x, "flip_y": t.flip_y, "error": t.error,
              "mean_phase_rad": t.mean_phase_rad} for t in guess.trials]
    b = guess.best
    # the same scan as a writer with x and y exchanged and x negated would store it: reading it
    # back needs swap_xy = flip_x = true, which the guess must find
    p = scan.positions_m
    wrong = write_scan(out / "siemens_star_swapped.cxi",
                       dataclasses.replace(scan, positions_m=np.stack([-p[:, 1], p[:, 0]], axis=1)))
    wrong_guess = guess_orientation(read_scan(wrong))
    scan = read_scan(cxi, swap_xy=b.swap_xy, flip_x=b.flip_x, flip_y=b.flip_y)
    t0 = time.perf_counter()
    proj = reconstruct(scan, f"RAAR:{iterations}", frc=True)
    rec_s = time.perf_counter() - t0
    write_projection(out / "siemens_star_projection.cxi", proj)
    frc = proj.frc
    res_px = frc.resolution_m / proj.pixel_m
    _figures_ptycho(out, proj, guess)
    return {"file": STAR, "frames": scan.n_frames, "frame_px": scan.frame_shape[0],
            "photons_per_frame": float(scan.frames.sum(axis=(1, 2)).mean()),
            "guess_seconds": guess_s, "guess_table": table, "best": [b.swap_xy, b.flip_x, b.flip_y],
            "margin": guess.margin, "twin_ratio": guess.twin_ratio,
            "swapped_file_best": list(wrong_guess.best.flags), "swapped_file_margin": wrong_guess.margin,
            "iterations": iterations, "reconstruct_seconds": rec_s, "final_error": float(proj.errors[-1]),
            "frc_resolution_px": res_px, "frc_resolution_nm_nominal": frc.resolution_m * 1e9,
            "object_shape": list(proj.transmission.shape)}


def _figures_ptycho(out: Path, proj, guess) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.6))
    ax[0].imshow(np.angle(proj.transmission), cmap="gray")
    ax[0].set_title("phase (rad), measured Siemens star")
    ax[1].imshow(np.abs(proj.transmission), cmap="gray")
    ax[1].set_title("|T|")
    c = proj.frc
    ax[2].plot(c.frequency_per_m * proj.pixel_m, c.correlation, label="FRC")
    ax[2].plot(c.frequency_per_m * proj.pixel_m, c.threshold, label="½-bit")
    ax[2].set_xlabel("cycles / pixel")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(out / "siemens_star.png", dpi=110)
    plt.close(fig)


def run_tooth(src: Path, out: Path, bin_px: int = 2) -> dict:
    from chemtomo.align.coarse import centre_of_rotation_px
    from chemtomo.chem import flat_field_od
    from chemtomo.io.fullfield import read_data_exchange
    from chemtomo.tomo import project, reconstruct

    ff = read_data_exchange(src)

    def bin_x(a):  # sum counts over `bin_px` columns: a coarser detector, same photons
        return a.reshape(*a.shape[:-1], a.shape[-1] // bin_px, bin_px).sum(-1)

    od = np.asarray(flat_field_od(bin_x(ff.data), bin_x(ff.flats), bin_x(ff.darks)), np.float32)
    angles = ff.angles_deg
    cor = float(centre_of_rotation_px(od, angles))
    result = {"file": TOOTH, "shape": list(ff.data.shape), "angles_deg": [float(angles[0]), float(angles[-1])],
              "flats": int(ff.flats.shape[0]), "darks": int(ff.darks.shape[0]), "bin_px": bin_px,
              "od_range": [float(np.percentile(od, 1)), float(np.percentile(od, 99))],
              "cor_offset_px": cor, "cor_column_unbinned": (od.shape[2] / 2 + cor) * bin_px}
    vols = {}
    for name, kw in (("fbp", {}), ("sirt", {"iterations": 50})):
        t0 = time.perf_counter()
        v = reconstruct(od, angles, name, cor_offset_px=cor, **kw)
        seconds = time.perf_counter() - t0
        residual = project(v, angles, cor_offset_px=cor) - od
        result[name] = {"seconds": seconds, "relative_residual": float(np.linalg.norm(residual) / np.linalg.norm(od))}
        vols[name] = v
    v0 = reconstruct(od, angles, "fbp", cor_offset_px=0.0)
    result["fbp_without_cor"] = {"relative_residual": float(
        np.linalg.norm(project(v0, angles) - od) / np.linalg.norm(od))}
    _figures_tooth(out, od, vols)
    return result


def _figures_tooth(out: Path, od, vols) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 5))
    ax[0].imshow(od[:, 0, :], cmap="gray", aspect="auto")
    ax[0].set_title("OD sinogram, row 0")
    for a, (name, v) in zip(ax[1:], vols.items()):
        a.imshow(v[0], cmap="gray")
        a.set_title(f"{name}, slice 0")
    fig.tight_layout()
    fig.savefig(out / "tooth.png", dpi=110)
    plt.close(fig)


def run_tooth_pipeline(src: Path, out: Path) -> dict:
    """The tooth through ``chemtomo run``: a one-row manifest of the Data Exchange file."""
    work = out / "tooth_run"
    work.mkdir(parents=True, exist_ok=True)
    link = work / TOOTH
    if not link.exists():
        link.symlink_to(src.resolve())
    # The file has neither energy nor pixel: the manifest gives nominal ones (one energy, so
    # chemistry and particles are skipped; the volume is μ on that nominal pixel)
    (work / "manifest.csv").write_text(f"path,energy_eV,pixel_m\n{TOOTH},{TOOTH_ENERGY_EV},{TOOTH_PIXEL_M}\n")
    # a run requires reference spectra covering its energies; with one energy they are never used
    # (chemistry is skipped), so a flat placeholder pair stands in
    (work / "references.csv").write_text(f"energy_eV,LiFePO4,FePO4\n{TOOTH_ENERGY_EV - 1000},1,1\n"
                                         f"{TOOTH_ENERGY_EV + 1000},1,1\n")
    # alignment registers image pairs of at least 4 × 4 pixels and the FSC needs 4 slices; the
    # tooth has 2 rows, so both are off (and the rotation axis stays at the detector centre)
    (work / "run.toml").write_text('[input]\nmanifest = "manifest.csv"\nkind = "intensity"\n\n'
                                   '[align]\nmethod = "none"\n\n[tomo]\nalgorithm = "fbp"\n\n'
                                   '[resolution]\nfsc = false\n')  # FSC needs 4 slices or more
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "chemtomo.cli", "run", str(work / "run.toml"), "--out", str(work / "RUN.zarr")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return {"command": "chemtomo run run.toml --out RUN.zarr", "exit_code": p.returncode,
            "seconds": time.perf_counter() - t0, "last_lines": (p.stdout + p.stderr).strip().splitlines()[-6:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "measured"))
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--tooth-bin", type=int, default=2, help="bin the tooth's 640 columns by this factor")
    ap.add_argument("--part", choices=["all", "ptycho", "tooth", "tooth-run"], default="all")
    args = ap.parse_args()
    src, out = data_dir(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.part in ("all", "tooth"):
        results["tooth"] = run_tooth(src / TOOTH, out, args.tooth_bin)
        print(json.dumps(results["tooth"], indent=1), flush=True)
    if args.part in ("all", "tooth-run"):
        results["tooth_run"] = run_tooth_pipeline(src / TOOTH, out)
        print(json.dumps(results["tooth_run"], indent=1), flush=True)
    if args.part in ("all", "ptycho"):
        results["ptycho"] = run_ptycho(src / STAR, out, args.iterations)
        print(json.dumps(results["ptycho"], indent=1), flush=True)
    (out / f"measured_{args.part}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
