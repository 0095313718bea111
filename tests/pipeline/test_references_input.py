"""References checked before any heavy work: the gap rule and Athena files named in the config."""

import pytest

from chemtomo.core.errors import InputError
from chemtomo.pipeline.config import load_config
from chemtomo.pipeline.context import resolve_inputs

from .runcli import run_cli


def dataset(tmp_path, refs: str):
    for name in ("a.cxi", "b.cxi"):
        (tmp_path / name).write_bytes(b"")  # never opened: the references are checked first
    (tmp_path / "manifest.csv").write_text("path,angle_deg,energy_eV\na.cxi,0,708.2\nb.cxi,0,710.2\n")
    (tmp_path / "references.csv").write_text(refs)


def test_missing_reference_row_is_an_input_error_before_any_work(tmp_path):
    # the case: rows at 706 and 710.2 eV, 708.2 eV measured: never interpolated across the L3 peak
    dataset(tmp_path, "energy_eV,LiFePO4,FePO4\n706,1,0.3\n710.2,0.5,1.2\n712,0.4,0.9\n")
    res = run_cli(["run", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "run.zarr")])
    assert res.returncode == 1, res.stderr
    assert "measured energy 708.2 eV lies between the reference rows at 706 and 710.2 eV" in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_athena_files_named_in_config(tmp_path):
    dataset(tmp_path, "energy_eV,LiFePO4,FePO4\n706,1,0.3\n710.2,0.5,1.2\n")
    grid = "\n".join(f"{707 + 0.5 * i:.1f} {1 + 0.1 * i:.2f}" for i in range(10))
    (tmp_path / "lfp.nor").write_text("# Athena\n#  energy  norm\n" + grid + "\n")
    (tmp_path / "fp.nor").write_text("# Athena\n#  e  norm\n" + grid + "\n")
    cfg_path = tmp_path / "run.toml"
    cfg_path.write_text('[input]\nmanifest = "manifest.csv"\n[chem]\n'
                        'reference_columns = {LiFePO4 = "lfp.nor:norm", FePO4 = "fp.nor:norm"}\n')
    refs, refs_path, _ = resolve_inputs(load_config(cfg_path))
    assert len(refs) == 2
    cfg_path.write_text('[input]\nmanifest = "manifest.csv"\n[chem]\nmax_reference_gap_ev = 0.1\n'
                        'reference_columns = {LiFePO4 = "lfp.nor:norm", FePO4 = "fp.nor:norm"}\n')
    with pytest.raises(InputError, match=r"reference spectrum of LiFePO4: measured energy 708.2 eV lies between "
                                         r"the reference rows at 708 and 708.5 eV"):
        resolve_inputs(load_config(cfg_path))
