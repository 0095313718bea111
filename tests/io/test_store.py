"""The run store: atomic group commits, stage records, partial work, and Zarr readability."""

import json
import os

import numpy as np
import pytest
import zarr

from chemtomo.core import StoreError
from chemtomo.io.store import RunStore, describe_store, energy_key


def test_groups_commit_whole_and_open_in_plain_zarr(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    s.write_group("volumes", {energy_key(708.2): vol}, attrs={"voxel_m": 6.7e-9})
    s.write_group("resolution/fsc", {"correlation": np.linspace(1, 0, 5)}, attrs={"resolution_m": 1.1e-8})
    g = zarr.open_group(str(tmp_path / "r.zarr/volumes"), mode="r")  # any Zarr reader, not our class
    np.testing.assert_array_equal(g["708.2"][...], vol)
    assert g.attrs["voxel_m"] == 6.7e-9
    assert s.group_attrs("resolution/fsc")["resolution_m"] == 1.1e-8
    # rewriting replaces the whole group, leaving no temporaries
    s.write_group("volumes", {energy_key(710.2): vol * 2})
    assert s.arrays("volumes") == ["710.2"]
    assert not list((tmp_path / "r.zarr").glob("*.tmp-*"))
    assert "volumes/710.2  float32 (4, 5, 6)" in describe_store(tmp_path / "r.zarr")


def test_stage_records_survive_in_root_json(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    s.update_attrs(config={"tomo": {"iterations": 20}}, nan=float("nan"))
    s.set_stage_record("recon", {"hash": "abc", "seconds": 1.5})
    doc = json.loads((tmp_path / "r.zarr/zarr.json").read_text())
    assert doc["zarr_format"] == 3 and doc["attributes"]["stages"]["recon"]["hash"] == "abc"
    assert doc["attributes"]["nan"] is None  # NaN is not JSON: stored as null
    s.set_stage_record("recon", None)
    assert RunStore(tmp_path / "r.zarr").stage_record("recon") is None


def test_partial_work_is_atomic_and_corrupt_files_are_redone(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    s.save_partial("ptycho", "k1", {"t": np.ones(3, np.complex64)}, {"angle": 5.0})
    arrays, meta = s.load_partial("ptycho", "k1")
    assert meta == {"angle": 5.0} and arrays["t"].dtype == np.complex64
    (s.partial_dir("ptycho") / "k2.npz").write_bytes(b"truncated")
    assert s.load_partial("ptycho", "k2") is None
    assert not (s.partial_dir("ptycho") / "k2.npz").exists()
    s.clear_partial("ptycho")
    assert s.load_partial("ptycho", "k1") is None


def test_temporaries_of_a_killed_run_are_cleaned(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    os.makedirs(tmp_path / "r.zarr/volumes.tmp-123/x")
    s.clean_temporaries()
    assert not (tmp_path / "r.zarr/volumes.tmp-123").exists()


def test_refuses_foreign_folders_and_missing_stores(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full/file.txt").write_text("x")
    with pytest.raises(StoreError, match="not a Zarr store"):
        RunStore(tmp_path / "full")
    with pytest.raises(StoreError, match="not a chemtomo run store"):
        RunStore(tmp_path / "none.zarr", create=False)
    s = RunStore(tmp_path / "r.zarr")
    with pytest.raises(StoreError, match="run the stage that makes it first"):
        s.group("volumes")
