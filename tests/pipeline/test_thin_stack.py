"""A full-field stack of two rows (TomoPy's measured tooth is one) runs to volumes: the FSC stage
is skipped with the reason instead of failing, and `[resolution] fsc = false` is honoured."""

import h5py
import numpy as np

from chemtomo.pipeline import config_for_manifest, run_pipeline


def write_thin_dx(path, n_angles=24, rows=2, cols=24):
    """A disc of OD 0.5 per 10 px seen at n_angles angles over 180°, two rows, with flats and darks."""
    angles = np.linspace(0, 180, n_angles, endpoint=False)
    x = np.arange(cols) - cols / 2 + 0.5
    chord = 2 * np.sqrt(np.clip(6.0 ** 2 - x ** 2, 0, None))  # centred disc of radius 6 px
    od = np.broadcast_to(0.05 * chord, (n_angles, rows, cols))
    flat, dark = 4000.0, 100.0
    with h5py.File(path, "w") as f:
        f["exchange/data"] = (dark + (flat - dark) * np.exp(-od)).astype(np.float32)
        f["exchange/data_white"] = np.full((3, rows, cols), flat, np.float32)
        f["exchange/data_dark"] = np.full((3, rows, cols), dark, np.float32)
        f.create_dataset("exchange/theta", data=angles).attrs["units"] = "degrees"
    return path


def test_two_row_stack_runs_and_skips_the_fsc(tmp_path):
    write_thin_dx(tmp_path / "thin.h5")
    (tmp_path / "manifest.csv").write_text("path,energy_eV,pixel_m\nthin.h5,25000,1e-6\n")
    (tmp_path / "references.csv").write_text("energy_eV,LiFePO4,FePO4\n24000,1,1\n26000,1,1\n")
    cfg = config_for_manifest(tmp_path / "manifest.csv", {"input": {"kind": "intensity"},
                                                          "align": {"method": "none"},
                                                          "tomo": {"algorithm": "fbp"}})
    store = run_pipeline(cfg, tmp_path / "run.zarr")
    assert "needs at least 4" in store.stage_record("fsc")["skipped"]
    vol = store.read("volumes/25000")
    assert vol.shape == (2, 24, 24)
    # the disc's μ = 0.05 per pixel / 1e-6 m = 5e4 1/m, within FBP's ramp-filter ringing (~10 %)
    # and the edge blur of 24 angles on a 6-px radius
    centre = vol[:, 10:14, 10:14]
    assert abs(float(centre.mean()) - 5e4) < 0.1 * 5e4


def test_fsc_false_skips_the_stage(tmp_path):
    write_thin_dx(tmp_path / "thin.h5", rows=8)
    (tmp_path / "manifest.csv").write_text("path,energy_eV,pixel_m\nthin.h5,25000,1e-6\n")
    (tmp_path / "references.csv").write_text("energy_eV,LiFePO4,FePO4\n24000,1,1\n26000,1,1\n")
    cfg = config_for_manifest(tmp_path / "manifest.csv", {"input": {"kind": "intensity"},
                                                          "align": {"method": "none"},
                                                          "tomo": {"algorithm": "fbp"},
                                                          "resolution": {"fsc": False}})
    store = run_pipeline(cfg, tmp_path / "run.zarr", only=("ptycho", "tiltseries", "align", "recon", "fsc"))
    assert store.stage_record("fsc")["skipped"] == "[resolution] fsc = false"
