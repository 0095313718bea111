"""Tests of writing a simulated dataset and reading its truth back (chemtomo.io.simulated)."""

import h5py
import numpy as np
import pandas as pd
import pytest

from chemtomo.core import InputError
from chemtomo.io import read_manifest, read_references, read_scan
from chemtomo.io.simulated import read_truth, write_dataset
from chemtomo.simulate import simulate_dataset


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    ds = simulate_dataset("demo", seed=2, soc=0.4, angles_deg=[-70.0, 10.0])
    out = tmp_path_factory.mktemp("sim")
    calls = []
    manifest = write_dataset(out, ds, progress=lambda d, t: calls.append((d, t)))
    return ds, out, manifest, calls


def test_manifest_and_scans_round_trip(written):
    ds, out, manifest, calls = written
    assert manifest == out / "manifest.csv"
    assert calls[-1] == (5, 5) and len(calls) == 5  # 4 scans + the truth
    refs = read_manifest(manifest)
    assert [(r.angle_deg, r.energy_ev) for r in refs] == [tuple(k) for k in ds.scan_keys]
    for i, ref in enumerate(refs):
        scan = read_scan(ref.path)
        want = ds.scans[i]
        np.testing.assert_array_equal(scan.frames, want.frames)
        np.testing.assert_allclose(scan.positions_m, want.positions_m, rtol=0, atol=1e-18)
        assert scan.energy_ev == pytest.approx(want.energy_ev, rel=1e-12)
        assert scan.pixel_m == pytest.approx(want.pixel_m, rel=1e-12)
        assert scan.angle_deg == pytest.approx(want.angle_deg, abs=1e-9)
        np.testing.assert_array_equal(scan.mask, want.mask)


def test_references_and_xas(written):
    ds, out, _, _ = written
    e, spectra = read_references(out / "references.csv")
    np.testing.assert_allclose(e, ds.references.energy_eV, atol=1e-4)
    np.testing.assert_allclose(spectra["LiFePO4"], ds.references.LiFePO4, rtol=1e-6)
    np.testing.assert_allclose(spectra["FePO4"], ds.references.FePO4, rtol=1e-6)
    with h5py.File(out / "xas2d.h5", "r") as f:
        np.testing.assert_array_equal(f["od"][()], ds.xas_od)
        np.testing.assert_array_equal(f["energies_eV"][()], ds.xas_energies_ev)
        assert f["pixel_m"][()] == ds.voxel_m
    assert "truth.h5" in (out / "README.txt").read_text()


def test_truth_round_trip(written):
    ds, out, _, _ = written
    t = read_truth(out)
    np.testing.assert_array_equal(t.sample.occupancy, ds.sample.occupancy)
    np.testing.assert_array_equal(t.sample.labels, ds.sample.labels)
    np.testing.assert_array_equal(np.isnan(t.sample.fraction), np.isnan(ds.sample.fraction))
    pd.testing.assert_frame_equal(t.sample.table[["label", "pattern"]], ds.sample.table[["label", "pattern"]])
    np.testing.assert_allclose(t.sample.table.fp_fraction, ds.sample.table.fp_fraction, rtol=1e-5)
    np.testing.assert_array_equal(t.alignment.shifts_px, ds.alignment.shifts_px)
    np.testing.assert_array_equal(t.alignment.energy_offsets_px, ds.alignment.energy_offsets_px)
    np.testing.assert_array_equal(t.positions_m, ds.positions_m)
    np.testing.assert_array_equal(t.mu[708.2], ds.mu_volume(708.2))
    np.testing.assert_array_equal(t.od[710.2], ds.od_truth(710.2))
    assert t.pixel_m[710.2] == ds.pixel_m[710.2]
    assert t.soc == 0.4 and abs(t.soc_measured - 0.4) < 0.01
    assert t.preset == "demo" and t.seed == 2 and t.parameters["step_m"] == 70e-9


def test_errors(tmp_path):
    with pytest.raises(InputError, match="truth_particles.csv: file not found"):
        read_truth(tmp_path)
    with pytest.raises(InputError, match="must be a chemtomo.simulate.Dataset"):
        write_dataset(tmp_path, object())
    (tmp_path / "file").write_text("x")
    ds = simulate_dataset("demo", seed=0, angles_deg=[0.0])
    with pytest.raises(InputError, match="is not a folder"):
        write_dataset(tmp_path / "file", ds)
