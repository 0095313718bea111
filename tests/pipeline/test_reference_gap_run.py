"""A run whose reference table lacks a row near a measured energy stops before any work (issue 23)."""

import shutil

from runcli import run_cli


def test_a_run_refuses_a_gap_before_any_reconstruction(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    (data / "references.csv").write_text("energy_eV,LiFePO4,FePO4\n700,1e6,1e6\n706,2e6,1.5e6\n"
                                         "710.2,3e6,4e6\n720,1e6,1e6\n")
    r = run_cli(["run", str(data / "run.toml"), "--out", str(tmp_path / "r.zarr"), "--no-report"])
    assert r.returncode == 1, r.stderr[-2000:]
    assert "708.2 eV lies between rows 706 and 710.2 eV" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.zarr" / "projections").exists()  # nothing reconstructed
    r = run_cli(["config", "--example"])  # the key and its default are documented
    assert "max_reference_gap_ev = 1.0" in r.stdout
