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


@pytest.mark.parametrize("package", ["core", "io", "resolution", "chem", "particles", "pipeline", "report"])
def test_lazy_public_names_still_resolve(package):
    import importlib

    module = importlib.import_module(f"chemtomo.{package}")
    for name in module.__all__:
        assert getattr(module, name) is not None, f"chemtomo.{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


#: Loaded on the way to a one-scan reconstruction only if something imports too eagerly: the
#: probe-size match's zoom is NumPy (no scipy.ndimage), the split-half FRC's registration
#: (scikit-image) is off with --no-frc, and chemtomo.io loads its non-CXI formats on first use.
NOT_FOR_ONE_SCAN = HEAVY + ("scipy.ndimage", "skimage", "chemtomo.io.stxm", "chemtomo.io.mrc",
                            "chemtomo.io.manifest", "chemtomo.io.fullfield")


def test_a_one_scan_run_loads_only_what_it_uses(tmp_path):
    # a real `chemtomo ptycho` run (9 frames of 16², RAAR:1) in a fresh interpreter: afterwards
    # none of the modules above is loaded, and numba has compiled (or loaded from its cache) only
    # kernels that RAAR calls, never PIE's or ML's (no kernel is compiled at import). The file
    # holds a probe guess whose far field is like the data's (a point: flat, as the noise here),
    # so that no probe is estimated from the data (that runs LSQML, reconstruct._fit_data_probe)
    import numpy as np

    from chemtomo.core import Scan
    from chemtomo.io import write_scan

    rng = np.random.default_rng(0)
    yx = np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0), indexing="ij"), -1).reshape(-1, 2) * 4e-8
    point = np.zeros((1, 16, 16), np.complex64)
    point[0, 8, 8] = 1
    scan = Scan(frames=rng.poisson(50.0, (9, 16, 16)).astype(np.float32), positions_m=yx, energy_ev=708.2,
                distance_m=0.1, detector_pixel_m=1.75e-9 * 0.1 / (16 * 1e-8), probe=point)  # 10 nm pixels, 4 px steps
    cxi = write_scan(tmp_path / "scan.cxi", scan)
    probe = (f"import json, sys\n"
             f"sys.argv = ['chemtomo', '-q', 'ptycho', {str(cxi)!r}, '-o', {str(tmp_path / 'out.cxi')!r}, "
             f"'--algorithm', 'RAAR:1', '--no-frc']\n"
             f"from chemtomo import cli\n"
             f"try:\n    cli.app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
             f"from numba.core.registry import CPUDispatcher\n"
             f"from chemtomo.ptycho import _kernels as K\n"
             f"used = sorted(n for n, v in vars(K).items() if isinstance(v, CPUDispatcher) and v.signatures)\n"
             f"mods = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
             f"for h in {NOT_FOR_ONE_SCAN!r}))\n"
             f"print(json.dumps([mods, used]))")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    mods, used = json.loads(out.stdout.strip().splitlines()[-1])
    assert (tmp_path / "out.cxi").exists()
    assert mods == []
    assert used and set(used) <= {"exit_waves_1", "raar_fourier_1", "accumulate_1_waves", "accumulate_1_waves_rows",
                                  "regularized_ratio"}, used
