"""Run the parts of chemtomo with discrete outputs on small cases and save everything to an npz.

``python thread_probe.py OUT.npz`` — run by ``test_thread_count.py`` under different
``NUMBA_NUM_THREADS`` (and BLAS/OpenMP thread counts); the results must not depend on them.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

TESTS = Path(__file__).resolve().parents[1]
for sub in ("align", "chem", "particles", "ptycho"):
    sys.path.insert(0, str(TESTS / sub))


def _ptycho_scans():
    spec = importlib.util.spec_from_file_location("ptycho_scans", TESTS / "ptycho" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ptycho_scans"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(out: str) -> None:
    import numba

    from chemtomo import chem, tomo
    from chemtomo.align import Alignment, align, reprojection_align
    from chemtomo.align.reprojection import ReprojectionOptions
    from chemtomo.particles import segment
    from chemtomo.ptycho import reconstruct

    res: dict[str, np.ndarray] = {"numba_threads": np.array(numba.get_num_threads())}
    times = {}

    t0 = time.perf_counter()  # ptychography: 36 frames of 32², object and probe refined
    truth = _ptycho_scans().make_scan(seed=0)
    proj = reconstruct(truth.scan, "RAAR:15,ML:5", frc=False)
    res["ptycho_object"] = proj.transmission
    res["ptycho_probe"] = proj.probe
    res["ptycho_errors"] = np.asarray(proj.errors)
    times["ptycho"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # tomography: SIRT and ART of a 32 x 48 x 48 phantom
    from align_testdata import misaligned_series, phantom

    vol = phantom(seed=0)[0]
    angles = np.linspace(-70, 70, 36)
    tilt = tomo.project(vol, angles)
    res["tomo_sirt"] = tomo.reconstruct(tilt, angles, "sirt", 20)
    res["tomo_art"] = tomo.reconstruct(tilt, angles, "art", 3)
    times["tomo"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # alignment: exclusions and iteration counts (test_reprojection's case)
    data = misaligned_series(n_angles=36, seed=1)
    e1 = min(data.raw)
    raw = data.raw[e1].copy()
    junk = ndimage.gaussian_filter(np.random.default_rng(5).random(raw[20].shape), 2.0)
    raw[20] = (junk - junk.min()) / np.ptp(junk) * raw[20].max()
    raw[7] = 0.0
    raw[9] = np.minimum(raw[9] + 2.0, 2.0)
    coarse = align({e1: raw}, data.angles_deg, method="coarse")
    out_al = reprojection_align(raw, data.angles_deg, init=Alignment(*data.truth), exclude=coarse.excluded,
                                options=ReprojectionOptions(iterations=2, recon_iterations=30))
    res["align_excluded"] = np.array(sorted(out_al.excluded))
    res["align_iterations"] = np.array(len(out_al.history))
    res["align_shifts"] = out_al.shifts_px
    times["align"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # chemistry: unmixing, classes, bimodal fit (iterations)
    from chem_sim import ENERGIES, VOXEL_M, od_volumes, references, sample

    ods = od_volumes(sample(), sigma=0.02, seed=1)
    conc = chem.unmix(ods, references(ENERGIES), voxel_m=VOXEL_M)
    frac = chem.fraction(conc, density_threshold=0.5)
    res["chem_classes"] = chem.classify(frac)
    fit = chem.fit_bimodal(frac[np.isfinite(frac)])
    res["chem_fit_iterations"] = np.array(fit.n_iterations)
    res["chem_fit_centres"] = np.asarray(fit.centres)
    times["chem"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # particles: labels of touching rotated plates in noise
    from particle_plates import VOXEL_M as PVOX
    from particle_plates import make_plates

    plates = make_plates(seed=0)
    res["particle_labels"] = segment(plates.density, PVOX, resolution_m=11e-9)
    times["particles"] = time.perf_counter() - t0

    res["times"] = np.array([times[k] for k in sorted(times)])
    np.savez(out, **res)


if __name__ == "__main__":
    main(sys.argv[1])
