"""Exports: TIFF stacks that ImageJ/Fiji read, one HDF5 file, the particle table as CSV and Parquet."""

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile

from chemtomo.core import InputError, StoreError
from chemtomo.io.export import export, load_particle_table
from chemtomo.io.store import RunStore


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    rng = np.random.default_rng(0)
    vol = rng.random((6, 8, 10)).astype(np.float32)
    s.write_group("volumes", {"708.2": vol * 1e6}, attrs={"voxel_m": 6.7e-9})
    s.write_group("chem", {"fraction": vol, "density": vol, "labels": (vol * 3).astype(np.uint8)},
                  attrs={"voxel_m": 6.7e-9})
    labels = np.zeros(vol.shape, np.int32)
    labels[1:3, 2:5, 2:6] = 1
    labels[4:6, 5:8, 6:9] = 70000  # beyond uint16: stored as float32 in the TIFF
    table = pd.DataFrame({"label": [1.0, 70000.0], "volume_nm3": [7.2e3, 5.4e3], "active_15": [True, False]})
    s.write_group("particles", {"labels": labels, **{f"table_{c}": table[c].to_numpy() for c in table}},
                  attrs={"columns": list(table.columns), "voxel_m": 6.7e-9, "n_particles": 2})
    return s, vol, labels, table


def test_csv_and_parquet_hold_one_row_per_particle(store, tmp_path):
    s, _, _, table = store
    paths = export(s.path, "csv", tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "particles.csv")
    pq = pd.read_parquet(tmp_path / "out" / "particles.parquet")
    assert [p.name for p in paths] == ["particles.csv", "particles.parquet"]
    pd.testing.assert_frame_equal(csv, table)
    pd.testing.assert_frame_equal(pq, load_particle_table(s))


def test_tiff_stacks_are_imagej_with_nm_spacing(store, tmp_path):
    s, vol, labels, _ = store
    export(s.path, "tiff", tmp_path / "t")
    with tifffile.TiffFile(tmp_path / "t" / "chem_fraction.tif") as t:
        assert t.is_imagej and t.imagej_metadata["unit"] == "nm"
        assert t.imagej_metadata["spacing"] == pytest.approx(6.7)
        np.testing.assert_array_equal(t.asarray(), vol)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "t" / "particle_labels.tif"), labels.astype(np.float32))


def test_hdf5_export(store, tmp_path):
    s, vol, _, _ = store
    (path,) = export(s.path, "hdf5", tmp_path / "h")
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["volumes/chem_fraction"][()], vol)
        assert f["volumes/mu_708.2eV"].attrs["voxel_m"] == 6.7e-9
        assert list(f["particles/active_15"][()]) == [True, False]


def test_export_errors(store, tmp_path):
    s, *_ = store
    with pytest.raises(InputError, match="tiff, hdf5, csv"):
        export(s.path, "xlsx", tmp_path)
    empty = RunStore(tmp_path / "empty.zarr")
    with pytest.raises(StoreError, match="no particle table yet"):
        export(empty.path, "csv", tmp_path)
    with pytest.raises(StoreError, match="nothing to export yet"):
        export(empty.path, "tiff", tmp_path)
