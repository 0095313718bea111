"""A tiny simulated dataset shared by the pipeline tests (simulated once per session)."""

import pytest

from chemtomo.io.simulated import write_dataset
from chemtomo.io.store import RunStore
from chemtomo.simulate import simulate_dataset

from runcli import run_cli  # tests/pipeline is on sys.path (tests/conftest.py)

#: Small enough that a whole run takes seconds: 9 angles, 2 energies, a (21, 33, 33) volume with
#: 3 plates, frames of 32². Alignment, reconstruction and chemistry all run for real. SIRT runs 200
#: iterations so that each block of slices takes ~0.1 s: the resume test must be able to kill the
#: run between two finished blocks, whatever the machine's speed.
TINY = dict(shape=(21, 33, 33), n_particles=3, frame_px=32, probe_diameter_m=150e-9,
            angles_deg=[-80.0, -60.0, -40.0, -20.0, 0.0, 20.0, 40.0, 60.0, 77.0])

TINY_CONFIG = """
[input]
manifest = "manifest.csv"
[ptycho]
algorithm = "RAAR:30"
frc = false
frc_angles = 1
[align]
method = "coarse"
[tomo]
algorithm = "sirt"
iterations = 200
block_slices = 3
"""


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Folder with manifest.csv, references.csv, xas2d.h5, truth and run.toml of a tiny experiment."""
    d = tmp_path_factory.mktemp("tiny")
    write_dataset(d, simulate_dataset("demo", seed=3, **TINY))
    (d / "run.toml").write_text(TINY_CONFIG)
    return d


@pytest.fixture(scope="session")
def reference_run(tiny_dataset, tmp_path_factory):
    """An uninterrupted run of the tiny dataset with the default local scheduler."""
    out = tmp_path_factory.mktemp("ref") / "run.zarr"
    r = run_cli(["run", str(tiny_dataset / "run.toml"), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    return RunStore(out, create=False)


@pytest.fixture(scope="session")
def tiny_sim():
    """The tiny experiment in memory (chemtomo.simulate.Dataset), for tests that write it their own way."""
    return simulate_dataset("demo", seed=3, **TINY)
