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


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    with s.lock("chemtomo run a.toml"):
        # flock is per open file: a second open in this very process conflicts like another process
        with pytest.raises(StoreError, match=r"in use by another chemtomo process \(pid \d+ on .+, started .+, "
                                             r"command: chemtomo run a.toml\)") as err:
            RunStore(tmp_path / "r.zarr").lock("chemtomo recon r.zarr").acquire()
        assert str(tmp_path / "r.zarr") in str(err.value)
    # released on exit: the next writer gets it, and a clean release leaves no holder behind
    with s.lock("again") as second:
        assert second.stale is None


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    s = RunStore(tmp_path / "r.zarr")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a pid that has just exited
    s.lock_path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00",
                                       "command": "chemtomo run old.toml"}))
    with s.lock("new") as lock:
        assert lock.stale is not None and f"pid {pid}" in lock.stale and "process gone" in lock.stale
        assert json.loads(s.lock_path.read_text())["pid"] == os.getpid()


def test_deleted_truncated_and_overwritten_chunks_are_found(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    vol = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    s.write_group("volumes", {"708.2": vol})
    s.write_group("chem", {"fraction": vol})
    assert s.damaged_groups() == {} and s.written_groups == ["volumes", "chem"]
    chunk = tmp_path / "r.zarr/volumes/708.2/c/1/0/0"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    assert s.damaged_groups() == {"volumes": f"file 708.2/c/1/0/0 has {len(data) // 2} bytes, {len(data)} when written"}
    with pytest.raises(StoreError, match=r"array 'volumes/708.2' of group 'volumes' is damaged"):
        s.read("volumes/708.2")
    chunk.write_bytes(bytes(len(data)))  # same size, garbage: only the checksum tells
    assert "checksum differs" in s.damaged_groups()["volumes"]
    assert s.damaged_groups(checksums=False) == {}
    chunk.unlink()  # Zarr reads a missing chunk as the fill value, silently: only the record tells
    assert s.damaged_groups() == {"volumes": "file 708.2/c/1/0/0 is missing"}
    text = describe_store(tmp_path / "r.zarr")
    assert "DAMAGED" in text and "volumes: file 708.2/c/1/0/0 is missing" in text and "chem:" not in text
    s.write_group("volumes", {"708.2": vol})  # a rewrite commits a new record
    assert s.damaged_groups() == {}
