"""A single-energy series is ordinary tomography: the run goes to volumes, FSC and the report,
and says why chemistry and particles are skipped instead of failing."""

import shutil

from chemtomo.io import read_manifest, write_manifest
from chemtomo.io.store import RunStore

from runcli import run_cli


def test_single_energy_runs_to_the_report_and_skips_chemistry(tiny_dataset, tmp_path):
    refs = [r for r in read_manifest(tiny_dataset / "manifest.csv") if r.energy_ev == 708.2]
    write_manifest(tmp_path / "manifest.csv", refs)
    shutil.copy(tiny_dataset / "references.csv", tmp_path / "references.csv")
    (tmp_path / "run.toml").write_text((tiny_dataset / "run.toml").read_text())
    r = run_cli(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run.zarr")])
    assert r.returncode == 0, r.stderr[-3000:]
    store = RunStore(tmp_path / "run.zarr", create=False)
    assert store.has("volumes") and store.has("resolution/fsc") and not store.has("chem")
    assert "1 energy for 2 reference phases" in store.stage_record("chem")["skipped"]
    assert "skipped: 1 energy for 2 reference phases" in (tmp_path / "run_report.html").read_text()
