"""Tests of writing a simulated TXM dataset as Data Exchange HDF5 (chemtomo.io.simulated)."""

import csv

import h5py
import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.io import read_references
from chemtomo.io.simulated import read_truth, txm_file_name, write_txm_dataset
from chemtomo.simulate import simulate_txm


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    ds = simulate_txm("txm", seed=5, soc=0.3, shape=(17, 25, 25), voxel_m=150e-9, n_particles=1,
                      angles_deg=[-45.0, 0.0, 45.0], energies_ev=[7100.0, 7123.5, 7150.0], pad_px=4)
    out = tmp_path_factory.mktemp("txm")
    calls = []
    manifest = write_txm_dataset(out, ds, progress=lambda d, t: calls.append((d, t)))
    return ds, out, manifest, calls


def test_one_data_exchange_file_per_energy(written):
    # the contract with the Data Exchange reader: names, paths, dtypes, shapes and unit attributes
    ds, out, _, calls = written
    assert calls[-1] == (4, 4) and len(calls) == 4
    assert sorted(p.name for p in out.glob("txm_*.h5")) == ["txm_7100.0eV.h5", "txm_7123.5eV.h5", "txm_7150.0eV.h5"]
    for i, e in enumerate(ds.energies_ev):
        with h5py.File(out / txm_file_name(e), "r") as f:
            assert f["exchange/data"].dtype == np.uint16
            np.testing.assert_array_equal(f["exchange/data"][()], ds.data[i])
            np.testing.assert_array_equal(f["exchange/data_white"][()], ds.flats[i])
            np.testing.assert_array_equal(f["exchange/data_dark"][()], ds.darks[i])
            assert f["exchange/data"].shape == (3, 25, 33)
            assert f["exchange/data_white"].shape == (ds.preset.n_flat, 25, 33)
            assert f["exchange/data_dark"].shape == (ds.preset.n_dark, 25, 33)
            np.testing.assert_array_equal(f["exchange/theta"][()], [-45.0, 0.0, 45.0])
            assert f["exchange/theta"].attrs["units"] == "degrees"
            energy = f["measurement/instrument/monochromator/energy"]
            assert energy.shape == () and float(energy[()]) == e and energy.attrs["units"] == "eV"
            res = f["measurement/instrument/detection_system/objective/resolution"]
            assert float(res[()]) == ds.pixel_m[i] and res.attrs["units"] == "m"


def test_manifest_and_references(written):
    ds, out, manifest, _ = written
    assert manifest == out / "manifest.csv"
    with open(manifest, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "energy_eV", "pixel_m"]
    assert [r[0] for r in rows[1:]] == [txm_file_name(e) for e in ds.energies_ev]
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], ds.energies_ev)
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], ds.pixel_m, rtol=1e-6)
    energies, spectra = read_references(out / "references.csv")
    assert list(spectra) == ["LiFePO4", "FePO4"]
    # the measured energies are rows of the table (7123.5 is off the 0.5 eV grid's integers)
    for i, e in enumerate(ds.energies_ev):
        j = int(np.argmin(np.abs(energies - e)))
        assert energies[j] == pytest.approx(e, abs=1e-4)
        assert spectra["LiFePO4"][j] == pytest.approx(ds.references.LiFePO4[i], rel=1e-5)
    assert energies[0] <= ds.energies_ev[0] - 10 and energies[-1] >= ds.energies_ev[-1] + 10


def test_truth_round_trip(written):
    ds, out, _, _ = written
    t = read_truth(out)
    assert t.kind == "txm" and t.preset == "txm" and t.seed == 5
    np.testing.assert_array_equal(t.sample.fraction, ds.sample.fraction)
    np.testing.assert_array_equal(t.sample.labels, ds.sample.labels)
    assert len(t.sample.table) == 1 and t.soc == 0.3
    np.testing.assert_allclose(t.alignment.shifts_px, ds.alignment.shifts_px)
    assert sorted(t.pixel_m) == list(ds.energies_ev)
    np.testing.assert_array_equal(t.detector["od"][7123.5], ds.od_detector[1])
    np.testing.assert_array_equal(t.od[7150.0], ds.od_truth(2))
    np.testing.assert_array_equal(t.mu[7100.0], ds.mu_volume(0))
    assert t.positions_m is None and t.probes == {}
    assert t.parameters["sizes"]["thickness_mean_nm"] == ds.preset.sizes.thickness_mean_nm
    readme = (out / "README.txt").read_text()
    assert "/exchange/data_white" in readme and "manifest.csv" in readme


def test_bad_input(tmp_path):
    with pytest.raises(InputError, match="TXMDataset"):
        write_txm_dataset(tmp_path, object())
    (tmp_path / "file").write_text("x")
    ds = simulate_txm("txm", seed=1, shape=(17, 25, 25), voxel_m=150e-9, n_particles=1, angles_deg=[0.0],
                      energies_ev=[7100.0, 7150.0], pad_px=0)
    with pytest.raises(InputError, match="not a folder"):
        write_txm_dataset(tmp_path / "file", ds)
    close = simulate_txm("txm", seed=1, shape=(17, 25, 25), voxel_m=150e-9, n_particles=1, angles_deg=[0.0],
                         energies_ev=[7100.0, 7100.04, 7150.0], pad_px=0)
    with pytest.raises(InputError, match="repeated file names"):
        write_txm_dataset(tmp_path / "close", close)
