"""`[chem] method = "joint"` on the tiny dataset: the chem stage fits the phase volumes to the aligned
tilt series, keeps the two-step result beside it with `compare`, records its stage and resumes."""

import shutil

import numpy as np

from chemtomo.io.store import RunStore
from chemtomo.report.html import build_report

from runcli import run_cli  # tests/pipeline/runcli.py


def test_joint_chem_runs_compares_and_resumes(tiny_dataset, reference_run, tmp_path):
    out = tmp_path / "run.zarr"
    shutil.copytree(reference_run.path, out)          # the upstream stages are done: only chem onwards reruns
    config = tmp_path / "joint.toml"
    config.write_text((tiny_dataset / "run.toml").read_text().replace('manifest = "manifest.csv"',
                                          f'manifest = "{tiny_dataset / "manifest.csv"}"')
                      + '[chem]\nmethod = "joint"\ncompare = true\n')
    r = run_cli(["run", str(config), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    # the method is in the chem stage's hash: chem and particles rerun, the stages above do not
    for stage in ("ptycho", "tiltseries", "align", "recon"):
        assert f"{stage:<11} up to date" in r.stdout, r.stdout
    assert "chem " in r.stdout and "method joint" in r.stdout
    store = RunStore(out, create=False)
    a = store.group_attrs("chem")
    assert a["method"] == "joint" and a["joint"]["iterations"] == 10 and a["two_step"]["method"] == "exact"
    # the defaults of issue 24 part 4: TV weight chosen from the data, the SOC's source recorded
    j = a["joint"]
    assert j["tv_auto"] is True and j["tv"] >= 0 and j["soc_source"] in ("projections", "volumes")
    assert np.isfinite(j["soc_volumes"]) and j["fraction_weight"] >= 0
    frac, two, diff = (store.read(f"chem/{k}") for k in ("fraction", "two_step_fraction", "fraction_difference"))
    both = np.isfinite(frac) & np.isfinite(two)
    assert both.sum() > 0.5 * np.isfinite(two).sum()
    np.testing.assert_allclose(diff[both], (frac - two)[both], atol=1e-6)
    # the two methods see the same sample: their SOCs agree within the tiny run's noise and rims
    # (3 plates, 9 angles; the demo-size difference is < 0.01, benchmarks/joint.py)
    assert abs(a["soc"] - a["two_step"]["soc"]) < 0.05, (a["soc"], a["two_step"]["soc"])
    assert store.has("particles")
    html = build_report(store)
    assert "Joint spectral tomography" in html and "joint − two-step FePO4 fraction" in html
    assert ("from the projection totals through the sample" in html) == (j["soc_source"] == "projections")
    assert "could not be drawn" not in html

    again = run_cli(["run", str(config), "--out", str(out), "--no-report"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "chem        up to date" in again.stdout and "particles   up to date" in again.stdout, again.stdout
