"""A tiny simulated dataset shared by the pipeline tests (simulated once per session)."""

import pytest

from chemtomo.io.simulated import write_dataset
from chemtomo.io.store import RunStore
from chemtomo.simulate import simulate_dataset

from runcli import run_cli  # tests/pipeline is on sys.path (tests/conftest.py)

from tiny import TINY, TINY_CONFIG  # the dataset's definition, shared with tests that import it


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
