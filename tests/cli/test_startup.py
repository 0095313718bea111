"""Start-up cost of the command line (issue 22): what ``chemtomo ptycho SCAN.cxi`` imports.

Each check runs a fresh interpreter (``sys.modules`` of this pytest process already holds
everything) and lists which heavy libraries the imports pulled in. Dask, matplotlib, pandas,
Zarr and the report together cost about a second before the first iteration; none of them is
needed to read a scan, reconstruct it and write a CXI file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
#: Top-level modules that the ptycho command must not import (checked by prefix).
HEAVY = ("dask", "distributed", "matplotlib", "pandas", "zarr", "chemtomo.report", "chemtomo.pipeline.run")


def imported_after(statement: str) -> list[str]:
    """Heavy modules in ``sys.modules`` of a fresh interpreter after running ``statement``."""
    probe = (f"import json, sys\n{statement}\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
             f"or any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))))")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_import_pulls_in_no_dask_matplotlib_pandas_zarr_or_report():
    assert imported_after("import chemtomo.cli") == []


def test_the_ptycho_command_path_pulls_in_none_of_them():
    # what `chemtomo ptycho` imports: the CLI, the CXI reader/writer, the solvers and their FRC
    assert imported_after("import chemtomo.cli, chemtomo.io, chemtomo.ptycho, chemtomo.resolution\n"
                          "from chemtomo.ptycho.postprocess import split_half_frc") == []


def test_the_probe_sees_a_heavy_import():
    # the check above must be able to fail: a figure import is seen
    assert "matplotlib" in imported_after("import chemtomo.cli\nfrom chemtomo.resolution import plot_curve")


@pytest.mark.parametrize("package", ["core", "resolution", "chem", "particles", "pipeline", "report"])
def test_lazy_public_names_still_resolve(package):
    import importlib

    module = importlib.import_module(f"chemtomo.{package}")
    for name in module.__all__:
        assert getattr(module, name) is not None, f"chemtomo.{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
