"""The command line: version, info, config, exit codes (1 for bad input, with one line, no traceback)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from chemtomo import __version__
from chemtomo.cli import app
from chemtomo.core import Scan
from chemtomo.io import write_scan

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.stdout


def test_info_on_a_scan(tmp_path):
    frames = np.full((3, 8, 8), 4, np.float32)
    scan = Scan(frames=frames, positions_m=np.zeros((3, 2)), energy_ev=708.2, distance_m=0.05,
                detector_pixel_m=25e-6, angle_deg=12.0)
    path = write_scan(tmp_path / "s.cxi", scan)
    r = runner.invoke(app, ["info", str(path)])
    assert r.exit_code == 0, r.output
    assert "/entry_1/instrument_1/detector_1/data  float32 (3, 8, 8)" in r.stdout
    assert "3 frames of 8×8 px, 708.20 eV, angle 12.00°" in r.stdout


def test_bad_input_exits_1_with_one_line(tmp_path):
    bad = tmp_path / "bad.cxi"
    bad.write_text("not hdf5")
    r = runner.invoke(app, ["info", str(bad)])
    assert r.exit_code == 1
    assert "bad.cxi" in r.output and "Traceback" not in r.output


def test_config_example_and_bad_config(tmp_path):
    r = runner.invoke(app, ["config", "--example"])
    assert r.exit_code == 0 and "[tomo]" in r.stdout and 'algorithm = "art"' in r.stdout
    cfg = tmp_path / "run.toml"
    cfg.write_text('[input]\nmanifest = "m.csv"\n[tomo]\niterations = -3\n')
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 1 and "tomo.iterations = -3 must be ≥ 1" in r.output


def test_export_needs_a_store(tmp_path):
    r = runner.invoke(app, ["export", str(tmp_path / "none.zarr"), "--format", "csv", "-o", str(tmp_path)])
    assert r.exit_code == 1 and "not a chemtomo run store" in r.output


def test_simulate_txm_preset_writes_data_exchange(tmp_path):
    # the preset's contract: one Data Exchange file per energy (16), their manifest and references
    r = runner.invoke(app, ["--quiet", "simulate", str(tmp_path), "--preset", "txm", "--seed", "2"])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "manifest.csv").read_text().splitlines()
    assert rows[0] == "path,energy_eV,pixel_m" and len(rows) == 17
    assert (tmp_path / "txm_7125.0eV.h5").is_file() and (tmp_path / "references.csv").is_file()
    assert (tmp_path / "truth.h5").is_file() and (tmp_path / "README.txt").is_file()


def test_simulate_noise_seed_is_recorded_and_refused_for_txm(tmp_path):
    import h5py

    r = runner.invoke(app, ["--quiet", "simulate", str(tmp_path / "d"), "--seed", "2", "--noise-seed", "7"])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "d" / "truth.h5", "r") as f:
        assert int(f.attrs["seed"]) == 2 and int(f.attrs["noise_seed"]) == 7
    assert "seed 2, noise seed 7" in (tmp_path / "d" / "README.txt").read_text()
    r = runner.invoke(app, ["simulate", str(tmp_path / "t"), "--preset", "txm", "--noise-seed", "7"])
    assert r.exit_code != 0 and "--noise-seed is for the ptychography presets" in r.output


def test_ptycho_says_when_it_started_over_from_a_guess_carried_to_the_focus(tmp_path):
    # the scan of tests/ptycho/test_default.py on which the defocus check restarts the low-dose
    # chain (a Gaussian probe, its guess out of focus, 10⁵ photons on 64² frames)
    from tests.ptycho.test_default import _scan

    scan, _, _ = _scan("gaussian", "defocus", 1e5, seed=0, n=64, side=7)
    path = write_scan(tmp_path / "s.cxi", scan)
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 0, r.output
    line = " ".join(r.output.split())
    assert "out of focus: the run started over at iteration 50" in line, line


def test_ptycho_says_when_it_weighted_the_object_by_the_split_half_frc(tmp_path):
    # 10⁴ photons on 32² frames, ~10 counts per pixel: the default's low-dose chain, whose object
    # is weighted by its halves' FRC (PtychoOptions.frc_weighting = "auto") even with --no-frc
    from tests.ptycho.test_default import _scan

    scan, _, _ = _scan("pinhole", "defocus", 1e4, seed=0)
    path = write_scan(tmp_path / "s.cxi", scan)
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 0, r.output
    line = " ".join(r.output.split())
    assert "weighted ring by ring by its split-half FRC (the default's low-dose chain" in line, line
    assert "FRC resolution nan nm" not in line  # the halves ran: the FRC is reported too
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "--frc-weighting", "off", "-o", str(tmp_path / "q.cxi")])
    assert r.exit_code == 0, r.output
    assert "split-half FRC (" not in " ".join(r.output.split())
    r = runner.invoke(app, ["ptycho", str(path), "--frc-weighting", "maybe", "-o", str(tmp_path / "q.cxi")])
    assert r.exit_code != 0 and "frc_weighting must be 'auto', 'on' or 'off'" in " ".join(r.output.split())


def test_ptycho_says_when_it_estimated_the_probe_from_the_data(tmp_path):
    # a flat-disc guess of a zone plate's beam (tests/ptycho/test_default.py): its far field is
    # unlike the data's, so the probe comes from the mean diffraction pattern, carried out of focus
    from tests.ptycho.test_default import _scan

    scan, _, _ = _scan("zone plate", "disc", 1e5, seed=0, n=64, side=7)
    path = write_scan(tmp_path / "s.cxi", scan)
    r = runner.invoke(app, ["ptycho", str(path), "--algorithm", "ePIE:3", "--no-frc", "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 0, r.output
    line = " ".join(r.output.split())
    assert "is not the beam that made these data (its far field has a similarity of 0.3" in line, line
    assert "the probe was estimated from the mean diffraction pattern" in line and "µm out of focus" in line, line


def test_ptycho_runs_the_default_chain_and_refuses_iterations_without_a_name(tmp_path):
    from tests.ptycho.conftest import make_scan

    path = write_scan(tmp_path / "s.cxi", make_scan().scan)
    r = runner.invoke(app, ["ptycho", str(path), "--iterations", "10", "--no-frc", "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 1 and "--iterations needs an --algorithm NAME" in r.output
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 0, r.output
    from chemtomo.io import read_projection
    from chemtomo.ptycho import MID_DOSE_ALGORITHM

    proj = read_projection(tmp_path / "p.cxi")
    # the default's counts are maxima (issue 22): it stops at convergence and says so; 10⁵ photons
    # on 32² frames is ~100 counts per pixel, its mid-dose chain
    assert 0 < len(proj.errors) <= sum(int(stage.split(":")[1]) for stage in MID_DOSE_ALGORITHM.split(","))
    assert MID_DOSE_ALGORITHM in " ".join(r.output.split())
    assert f"stopped after {len(proj.errors)} iterations (converged)" in " ".join(r.output.split())
    # its last stage (ePIE) converged: the object is the average of its last iterates, and it says so
    assert "the object is the average of the last stage's last iterates" in " ".join(r.output.split())
    # positions are refined in the last stage by default, and the summary says by how much
    assert "positions refined by" in " ".join(r.output.split())
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "--no-refine-positions", "-o", str(tmp_path / "q.cxi")])
    assert r.exit_code == 0 and "positions refined" not in " ".join(r.output.split())
    # this scan has no background: the projection subtracts and the line says nothing of it; one
    # with 0.5 photons per pixel of background shares, and the line says so
    assert "share of the counts" not in " ".join(r.output.split())
    bg = write_scan(tmp_path / "bg.cxi", make_scan(background_counts=0.5).scan)
    r = runner.invoke(app, ["ptycho", str(bg), "--algorithm", "ePIE:3", "--no-frc", "-o", str(tmp_path / "b.cxi")])
    assert r.exit_code == 0 and "the background takes its share of the counts" in " ".join(r.output.split())


def test_the_summary_line_says_what_an_frc_without_a_crossing_means():
    # a bright scan's halves can agree above the ½-bit threshold in every ring: the resolution is
    # then the pixel (the Nyquist limit), which the line says instead of "nan nm"; an undefined
    # correlation (no signal) or no halves at all are said as such
    from types import SimpleNamespace

    from chemtomo.cli import _frc_phrase
    from chemtomo.resolution.frc import Curve

    def proj(correlation, resolution_m):
        c = np.asarray(correlation, float)
        curve = Curve(frequency_per_m=np.arange(1, len(c) + 1) * 1e6, correlation=c, threshold=np.full(len(c), 0.2),
                      resolution_m=resolution_m, n_per_shell=np.full(len(c), 50), threshold_name="half-bit")
        return SimpleNamespace(frc=curve, pixel_m=20e-9)

    assert _frc_phrase(proj([0.9, 0.5, 0.1], 30e-9)) == "FRC resolution 30.0 nm (½-bit)"
    assert _frc_phrase(proj([0.99, 0.9, 0.6], float("nan"))).startswith("FRC resolution ≤ 20.0 nm, the pixel")
    assert "not measured" in _frc_phrase(proj([np.nan, np.nan, np.nan], float("nan")))
    assert _frc_phrase(SimpleNamespace(frc=None, pixel_m=20e-9)) == "no split-half FRC"


def test_ptycho_says_when_a_bright_scan_takes_finer_sub_pixel_bins(tmp_path):
    # ~3,000 signal counts per pixel with positions off the grid: 1/8-px bins (reconstruct.
    # subpixel_for_counts), which the summary line names with the counts that chose them; ~10
    # counts per pixel keep the 1/4-px bins, which it leaves unsaid
    from tests.ptycho.test_default import _scan

    bright, _, _ = _scan("zone plate", "exact", 3e6, off_grid=True)
    dim, _, _ = _scan("zone plate", "exact", 1e4, off_grid=True)
    for scan, said in ((bright, True), (dim, False)):
        path = write_scan(tmp_path / "s.cxi", scan)
        r = runner.invoke(app, ["ptycho", str(path), "--algorithm", "LSQML:2", "--no-frc", "-o", str(tmp_path / "p.cxi")])
        assert r.exit_code == 0, r.output
        line = " ".join(r.output.split())
        assert ("positions to 1/8 px bins (" in line and "signal counts per detector pixel)" in line) is said, line


def test_ptycho_oversample_runs_on_a_finer_grid_and_says_so(tmp_path):
    from tests.ptycho.test_finegrid import alias_free_scan

    scan, obj = alias_free_scan(1e7, seed=0)
    path = write_scan(tmp_path / "s.cxi", scan)
    r = runner.invoke(app, ["ptycho", str(path), "--algorithm", "ePIE:3", "--no-frc", "--oversample", "2",
                            "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 0, r.output
    assert "the model on a grid 2× finer than the detector's" in " ".join(r.output.split())
    from chemtomo.io import read_projection

    proj = read_projection(tmp_path / "p.cxi")
    assert proj.pixel_m == pytest.approx(scan.pixel_yx_m[0], rel=1e-9)  # the detector's grid
    r = runner.invoke(app, ["ptycho", str(path), "--oversample", "5", "-o", str(tmp_path / "q.cxi")])
    assert r.exit_code != 0 and "oversample" in r.output.lower()


def test_ptycho_says_how_far_above_its_noise_floor_it_ended_and_when_the_model_limits_it(tmp_path):
    # 10⁹ photons per frame recorded without the one grid's aliasing: the one-grid default ends
    # ~300× above the Poisson floor (tests/ptycho/test_finegrid.py), and the line says what to try
    from tests.ptycho.test_finegrid import alias_free_scan

    scan, _ = alias_free_scan(1e9, seed=0)
    path = write_scan(tmp_path / "s.cxi", scan)
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "--oversample", "1", "-o", str(tmp_path / "p.cxi")])
    assert r.exit_code == 0, r.output
    line = " ".join(r.output.split())
    assert "× its Poisson floor)" in line, line
    assert "the model, not the photon noise, limits this scan (very bright frames: try --oversample 2" in line, line
    # the default (--oversample 0) runs the finer grid as well there, and says which it kept
    r = runner.invoke(app, ["ptycho", str(path), "--no-frc", "-o", str(tmp_path / "q.cxi")])
    assert r.exit_code == 0, r.output
    line = " ".join(r.output.split())
    assert "×: model-limited), a grid 2× finer (from its refined positions) at" in line and "the finer grid kept" in line, line
