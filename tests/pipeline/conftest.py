"""The tiny experiment's reference run and its in-memory dataset, for the pipeline tests (the
dataset's folder, ``tiny_dataset``, is in tests/conftest.py: the end-to-end tests run it too)."""

import pytest

from chemtomo.io.store import RunStore
from chemtomo.simulate import simulate_dataset

from runcli import run_cli  # tests/pipeline is on sys.path (tests/conftest.py)

from tiny import TINY  # the dataset's definition, shared with tests that import it


@pytest.fixture(scope="session")
def reference_run(tiny_dataset, tmp_path_factory):
    """An uninterrupted run of the tiny dataset on the local scheduler (worker threads, tiny.py)."""
    out = tmp_path_factory.mktemp("ref") / "run.zarr"
    r = run_cli(["run", str(tiny_dataset / "run.toml"), "--out", str(out), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    return RunStore(out, create=False)


@pytest.fixture(scope="session")
def tiny_sim():
    """The tiny experiment in memory (chemtomo.simulate.Dataset), for tests that write it their own way."""
    return simulate_dataset("demo", seed=3, **TINY)
