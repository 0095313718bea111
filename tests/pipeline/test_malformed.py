"""Malformed inputs through ``chemtomo run``: each ends with exit 1 and one clear line (issue 23).

Almost every case is refused by the check before the run (chemtomo.pipeline.preflight), which
reads only HDF5 headers, so the cases run in-process with typer's CliRunner and take well under a
second each. Two cases need the real command in a fresh process (an input error raised inside a
Dask task; the message a second writer gets needs its own lock). A table of these cases and their
outcomes is in docs/howto/preflight.md.
"""

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from chemtomo.cli import app
from chemtomo.io.store import RunStore

from runcli import run_cli

FRAMES = "entry_1/data_1/data"
DETECTOR_FRAMES = "entry_1/instrument_1/detector_1/data"
POSITIONS = "entry_1/sample_1/geometry_1/translation"
ENERGY = "entry_1/instrument_1/source_1/energy"
PROBE = "entry_1/instrument_1/source_1/probe"


@pytest.fixture()
def data(tiny_dataset, tmp_path):
    """A fresh copy of the tiny dataset to break (18 small CXI files, copied in milliseconds)."""
    d = tmp_path / "data"
    shutil.copytree(tiny_dataset, d)
    return d


def scans(d: Path) -> list[Path]:
    return sorted((d / "scans").glob("*.cxi"))


def edit(path: Path, fn) -> None:
    with h5py.File(path, "a") as f:
        fn(f)


def replace(f, name, value):
    """Replace a dataset (and the soft link to the frames, which points at the detector's data)."""
    for p in (name, DETECTOR_FRAMES) if name == FRAMES else (name,):
        if p in f:
            del f[p]
    f[name] = value


def manifest_lines(d: Path) -> list[str]:
    return (d / "manifest.csv").read_text().splitlines()


def write_manifest(d: Path, lines: list[str]) -> None:
    (d / "manifest.csv").write_text("\n".join(lines) + "\n")


def add_config(d: Path, text: str) -> None:
    """Append keys to the [input] table of run.toml (it is the config's first table)."""
    t = (d / "run.toml").read_text()
    (d / "run.toml").write_text(t.replace('manifest = "manifest.csv"\n', 'manifest = "manifest.csv"\n' + text, 1))


def cli(args):
    r = CliRunner().invoke(app, args)
    return r.exit_code, " ".join(r.output.split())  # rich wraps long lines: compare on single spaces


def run(d: Path, *extra):
    return cli(["run", str(d / "run.toml"), "--out", str(d / "out.zarr"), "--no-report", *extra])


# --- each case: (id, how to break the copy, extra CLI args, expected message pattern) ---------------

def _garbage_manifest(d):
    (d / "manifest.csv").write_bytes(bytes(range(256)) * 4)


def _nul_manifest(d):
    (d / "manifest.csv").write_bytes(b"path,angle_deg,energy_eV\n\x00\x00,1,708\n")


def _truncate(d):
    p = scans(d)[2]
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])


def _not_hdf5(d):
    scans(d)[2].write_bytes(b"this is not an HDF5 file\n" * 100)


def _no_frames(d):
    edit(scans(d)[2], lambda f: (f.__delitem__(FRAMES), f.__delitem__(DETECTOR_FRAMES)))


def _rank2(d):
    edit(scans(d)[2], lambda f: replace(f, FRAMES, np.zeros((32, 32), np.float32)))


def _empty_frames(d):
    edit(scans(d)[2], lambda f: replace(f, FRAMES, np.zeros((0, 32, 32), np.float32)))


def _fewer_positions(d):
    def fn(f):
        t = f[POSITIONS][()]
        replace(f, POSITIONS, t[:-5])
    edit(scans(d)[2], fn)


def _positions_shape(d):
    def fn(f):
        n = f[FRAMES].shape[0]
        replace(f, POSITIONS, np.zeros((n, 4)))
    edit(scans(d)[2], fn)


def _other_frame_size(d):
    def fn(f):
        frames = f[FRAMES][()]
        replace(f, FRAMES, frames[:, :16, :16])
    edit(scans(d)[2], fn)


def _no_energy(d):
    edit(scans(d)[2], lambda f: f.__delitem__(ENERGY))


def _negative_energy(d):
    edit(scans(d)[2], lambda f: replace(f, ENERGY, -1.1e-16))


def _text_energy(d):
    edit(scans(d)[2], lambda f: replace(f, ENERGY, "seven hundred eV"))


def _array_energy(d):
    edit(scans(d)[2], lambda f: replace(f, ENERGY, np.array([1.1e-16, 1.2e-16])))


def _three_broken(d):
    _truncate(d)
    edit(scans(d)[5], lambda f: f.__delitem__(ENERGY))
    _fewer_positions_at(scans(d)[8])


def _fewer_positions_at(p):
    edit(p, lambda f: replace(f, POSITIONS, f[POSITIONS][()][:-1]))


def _missing_two(d):
    files = scans(d)
    files[3].unlink()
    files[6].unlink()


def _ragged_angles(d):
    lines = manifest_lines(d)
    write_manifest(d, lines[:3] + lines[4:])  # 710.2 eV loses -60°


def _config(text):
    def fn(d):
        (d / "run.toml").write_text(text)
    return fn


def _config_bytes(d):
    (d / "run.toml").write_bytes(b"\xff\xfe\x00garbage\x81\x82" * 20)


def _manifest_text(text):
    def fn(d):
        (d / "manifest.csv").write_text(text)
    return fn


def _manifest_row(i, new):
    def fn(d):
        lines = manifest_lines(d)
        lines[i] = new
        write_manifest(d, lines)
    return fn


def _all_skipped(d):
    for p in scans(d):
        p.write_bytes(b"x")


def _out_is_file(d):
    (d / "out.zarr").write_text("not a store")


def _no_references(d):
    (d / "references.csv").unlink()


S2 = "scan_0002_-060.00deg_708.20eV.cxi"
CASES = [
    ("manifest-missing", lambda d: (d / "manifest.csv").unlink(), (), r"manifest\.csv: manifest not found"),
    ("manifest-binary-garbage", _garbage_manifest, (), r"manifest\.csv: not a text \(UTF-8\) CSV file: byte \d+"),
    ("manifest-nul-bytes", _nul_manifest, (), r"manifest\.csv: line 2 holds NUL bytes; expected a text CSV manifest"),
    ("manifest-empty", _manifest_text(""), (), r"manifest\.csv: manifest is empty"),
    ("manifest-header-only", _manifest_text("path,angle_deg,energy_eV\n"), (), r"header but no scans"),
    ("manifest-bad-columns", _manifest_row(0, "file,angle,energy"), (), r"manifest header is 'file,angle,energy'"),
    ("manifest-short-row", _manifest_row(2, "scans/x.cxi,-80"), (), r"line 3 has 2 fields; expected 3"),
    ("manifest-angle-not-number", _manifest_row(1, f"scans/{S2},minus sixty,708.2"), (),
     r"line 2, column angle_deg: expected a number, found 'minus sixty'"),
    ("manifest-energy-negative", _manifest_row(1, f"scans/{S2},-60,-708.2"), (),
     r"line 2, column energy_eV: -708\.2 eV is not a photon energy"),
    ("manifest-duplicate-pair", _manifest_row(3, "scans/scan_0000_-080.00deg_708.20eV.cxi,-80,708.2"), (),
     r"line 4 repeats angle -80° at 708\.2 eV"),
    ("manifest-ragged-angles", _ragged_angles, (), r"energy 708\.2 eV has no scan at -60°"),
    ("scan-files-missing", _missing_two, (), r"2 of 18 input files have problems.*scan_0003.*file not found.*"
                                             r"scan_0006.*file not found"),
    ("cxi-truncated", _truncate, (), rf"{S2}: cannot be read as HDF5 \(unreadable or truncated file\)"),
    ("cxi-not-hdf5", _not_hdf5, (), rf"{S2}: cannot be read as HDF5"),
    ("cxi-no-frames", _no_frames, (), rf"{S2}: neither a CXI scan \(/{FRAMES}\), a CXI reconstructed image"),
    ("cxi-frames-rank-2", _rank2, (), rf"{S2}: /{FRAMES} has rank 2 \(shape \(32, 32\)\)"),
    ("cxi-no-frame", _empty_frames, (), rf"{S2}: /{FRAMES} is empty \(shape \(0, 32, 32\)\)"),
    ("cxi-fewer-positions", _fewer_positions, (), rf"{S2}: /{POSITIONS} has \d+ rows but /{FRAMES} has \d+ frames"),
    ("cxi-positions-shape", _positions_shape, (), rf"{S2}: /{POSITIONS} has shape \(\d+, 4\)"),
    ("cxi-other-frame-size", _other_frame_size, (),
     rf"{S2}: frames are 16×16 px but 8 other scan\(s\) at 708\.2 eV have 32×32"),
    ("cxi-no-energy", _no_energy, (), rf"{S2}: missing dataset /{ENERGY} \(photon energy in joules\)"),
    ("cxi-negative-energy", _negative_energy, (), rf"{S2}: /{ENERGY} is -1\.1e-16 J = -686\.6 eV; expected a photon energy"),
    ("cxi-text-energy", _text_energy, (), rf"{S2}: /{ENERGY} \(photon energy in joules\) is not numeric"),
    ("cxi-array-energy", _array_energy, (), rf"{S2}: /{ENERGY} \(photon energy in joules\) must be a scalar"),
    ("three-scans-broken-at-once", _three_broken, (),
     r"3 of 18 input files have problems.*scan_0002.*truncated.*scan_0005.*missing dataset.*scan_0008.*rows but"),
    ("all-scans-skipped", _all_skipped, ("--skip-bad-scans",), r"no input left to run \(18 left out"),
    ("config-binary-garbage", _config_bytes, (), r"run\.toml: not a text \(UTF-8\) TOML file: byte 0"),
    ("config-not-toml", _config("[input\nmanifest = 'manifest.csv'\n"), (), r"run\.toml: not valid TOML"),
    ("config-unknown-key", _config('[input]\nmanifest = "manifest.csv"\nmanifst = "x"\n'), (),
     r"unknown key\(s\) input\.manifst; valid keys in \[input\]"),
    ("config-unknown-section", _config('[input]\nmanifest = "manifest.csv"\n[ptychography]\n'), (),
     r"unknown section\(s\) \['ptychography'\]"),
    ("config-bad-value", _config('[input]\nmanifest = "manifest.csv"\n[tomo]\niterations = "many"\n'), (),
     r"tomo\.iterations must be an integer, got 'many'"),
    ("config-bad-on-bad-scan", _config('[input]\nmanifest = "manifest.csv"\non_bad_scan = "maybe"\n'), (),
     r"input\.on_bad_scan = 'maybe' is not allowed; choose one of 'fail', 'skip'"),
    ("config-exclude-not-list", _config('[input]\nmanifest = "manifest.csv"\nexclude = "scans/a.cxi"\n'), (),
     r"input\.exclude must be a list of non-empty strings"),
    ("config-exclude-unknown-scan", _config('[input]\nmanifest = "manifest.csv"\nexclude = ["scans/nope.cxi"]\n'),
     (), r"input\.exclude: 'scans/nope\.cxi' is not a scan of"),
    ("config-exclude-angles-bad-range", _config('[input]\nmanifest = "manifest.csv"\nexclude_angles = [[40, 30]]\n'),
     (), r"input\.exclude_angles must be a list of \[low, high\] angle ranges in degrees with low ≤ high"),
    ("config-exclude-angles-no-angle", _config('[input]\nmanifest = "manifest.csv"\nexclude_angles = [[41, 45]]\n'),
     (), r"input\.exclude_angles: \[41, 45\]° holds no tilt angle of"),
    ("config-no-manifest-key", _config("[tomo]\niterations = 3\n"), (), r"input\.manifest is required"),
    ("references-missing", _no_references, (), r"references\.csv: reference spectra not found"),
    ("out-is-a-file", _out_is_file, (), r"out\.zarr: is a file; --out must name a run store"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_clear_line_and_exit_1(data, case):
    _, breaker, extra, pattern = case
    breaker(data)
    before = set(data.iterdir())
    code, out = run(data, *extra)
    assert code == 1, out
    assert re.search(pattern, out), out
    assert "Traceback" not in out
    if "--skip-bad-scans" not in extra and not (data / "out.zarr").is_file():
        # refused before the store was created: nothing written beside the data
        assert not (data / "out.zarr").exists() and set(data.iterdir()) == before


def test_missing_config_file(tmp_path):
    code, out = cli(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o.zarr")])
    assert code == 1 and "nope.toml: config file not found" in out


def test_locked_store_is_refused(data):
    out = data / "out.zarr"
    holder = RunStore(out).lock("chemtomo run other.toml").acquire()  # another writer holds the store
    try:
        code, text = run(data)
    finally:
        holder.release()
    assert code == 1
    assert "in use by another chemtomo process" in text and "chemtomo run other.toml" in text


def test_input_error_inside_a_dask_task_is_one_line_without_worker_output(data):
    """A probe of the wrong shape is found only when a task reads the scan: one line, exit 1."""
    edit(scans(data)[2], lambda f: replace(f, PROBE, np.ones((5, 5), np.complex64)))
    r = run_cli(["run", str(data / "run.toml"), "--out", str(data / "out.zarr"), "--no-report"])
    err = " ".join(r.stderr.split())
    assert r.returncode == 1, r.stderr[-3000:]
    assert re.search(rf"error: \S*{S2}: /{PROBE} has shape \(5, 5\); expected the frame shape", err), err
    assert "Compute Failed" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "CancelledError" not in r.stderr, r.stderr


def _cheap(d: Path) -> None:
    """A config that finishes the tiny run in seconds (few iterations, no FSC, no alignment)."""
    (d / "run.toml").write_text('[input]\nmanifest = "manifest.csv"\n[ptycho]\nalgorithm = "RAAR:3"\nfrc = false\n'
                                'frc_angles = 1\n[align]\nmethod = "none"\n[tomo]\nalgorithm = "sirt"\n'
                                'iterations = 3\nblock_slices = 32\n[resolution]\nfsc = false\n')


def _snapshot(store: Path) -> dict:
    return {str(p.relative_to(store)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(store.rglob("*")) if p.is_file()}


def test_a_failing_run_never_changes_a_finished_store(data):
    _cheap(data)
    code, out = run(data)
    assert code == 0, out
    store = data / "out.zarr"
    before = _snapshot(store)
    _truncate(data)  # a scan damaged after the run: the rerun's check refuses it
    code, out = run(data)
    assert code == 1 and "truncated file" in out, out
    (data / "run.toml").write_text((data / "run.toml").read_text() + "[chem]\nmethod = 'magic'\n")
    code, out = run(data)
    assert code == 1 and "chem.method = 'magic' is not allowed" in out, out
    assert _snapshot(store) == before


def test_skip_bad_scans_and_exclude_record_what_was_left_out(data):
    """A skipped scan's angle is left out at the other energy too; alignment and tomography run on the rest."""
    _cheap(data)
    _truncate(data)  # scan_0002: -60° at 708.2 eV
    add_config(data, 'exclude = ["scans/scan_0010_+020.00deg_708.20eV.cxi"]\nexclude_angles = [[39.5, 40.5]]\n')
    code, out = run(data, "--skip-bad-scans")
    assert code == 0, out
    store = RunStore(data / "out.zarr", create=False)
    left = {Path(e["path"]).name: e for e in store.attrs["excluded_inputs"]}
    assert set(left) == {S2, "scan_0003_-060.00deg_710.20eV.cxi", "scan_0010_+020.00deg_708.20eV.cxi",
                         "scan_0011_+020.00deg_710.20eV.cxi", "scan_0012_+040.00deg_708.20eV.cxi",
                         "scan_0013_+040.00deg_710.20eV.cxi"}
    assert left["scan_0013_+040.00deg_710.20eV.cxi"]["reason"] == "angle 40° excluded by input.exclude_angles [39.5, 40.5]"
    assert "truncated" in left[S2]["reason"] and left[S2]["angle_deg"] == -60.0 and left[S2]["energy_eV"] == 708.2
    assert left["scan_0010_+020.00deg_708.20eV.cxi"]["reason"] == "excluded by input.exclude"
    assert "no usable scan at 708.2 eV" in left["scan_0003_-060.00deg_710.20eV.cxi"]["reason"]
    assert json.loads(json.dumps(store.attrs["excluded_inputs"])) == store.attrs["excluded_inputs"]
    assert store.stage_record("chem") is not None and store.has("chem")
    assert "ptycho" in out and "scans 12" in out  # 18 − 6 left out
    from chemtomo.report.html import _section_run

    run_html = _section_run(store)  # the report's "Run" section lists them too
    assert "Inputs left out (6)" in run_html and "excluded by input.exclude" in run_html


def test_worker_log_filter_drops_only_chemtomo_errors():
    """The filter that silences "Compute Failed" for input errors lets a real bug's record through."""
    import logging

    from chemtomo.pipeline.context import _QuietChemtomoErrors

    def record(exc_text):
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1,
                                 "Compute Failed\nKey:       %s\nState:     %s\nTask:  %s\nException: %r\nTraceback: %r\n",
                                 ("k", "executing", "task", exc_text, "tb"), None)

    f = _QuietChemtomoErrors()
    assert not f.filter(record("InputError('scan.cxi: /entry_1/... has shape (5, 5)')"))
    assert not f.filter(record("ConfigError('x')"))
    assert f.filter(record("ZeroDivisionError('division by zero')"))
    assert f.filter(record("ValueError('InputError(')"))


def test_frames_never_written_are_found_without_reading_them(tmp_path):
    """An uncompressed frames dataset whose chunks were never written (an acquisition that stopped)."""
    from chemtomo.pipeline.preflight import check_scan

    p = tmp_path / "stopped.cxi"
    with h5py.File(p, "w") as f:
        f.create_dataset(FRAMES, shape=(10, 8, 8), dtype="f4", chunks=(1, 8, 8))[:4] = 1.0  # 4 of 10 frames
        f[POSITIONS] = np.zeros((10, 3))
        f[ENERGY] = 1.1347e-16  # 708.2 eV in J
    problems, shape = check_scan(p)
    assert shape == (8, 8)
    assert len(problems) == 1 and "frames never written (storage 1024 of 2560 bytes" in problems[0], problems


def test_a_real_bug_is_still_an_internal_error(data, monkeypatch):
    """Not every exception becomes an input error: a bug ends with exit 2 and says so."""
    import chemtomo.pipeline.run as run_module

    def broken(*a, **k):
        return 1 / 0

    monkeypatch.setattr(run_module, "preflight", broken)
    code, out = run(data)
    assert code == 2 and "internal error: ZeroDivisionError: division by zero" in out, out


def test_folder_input_reports_every_unreadable_file(data):
    """A folder of CXI files stands in for a manifest: files whose angle or energy cannot be read are all listed."""
    files = scans(data)
    _truncate(data)  # scans[2]
    edit(files[5], lambda f: f.__delitem__(ENERGY))
    edit(files[7], lambda f: replace(f, ENERGY, "seven hundred eV"))
    (data / "run.toml").write_text('[input]\nmanifest = "scans"\nreferences = "references.csv"\n')
    code, out = run(data)
    assert code == 1, out
    assert re.search(r"3 of 18 input files have problems.*scan_0002\S*: cannot be read as HDF5.*scan_0005\S*: "
                     r"missing dataset /entry_1/instrument_1/source_1/energy.*scan_0007\S*: /entry_1/instrument_1/"
                     r"source_1/energy \(photon energy in joules\) is not a numeric scalar", out), out
