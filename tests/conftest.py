"""Shared test configuration: non-interactive matplotlib, test folders importable, and the tiny
simulated experiment that the pipeline and end-to-end tests run."""

import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

# with --import-mode=importlib, test helpers in one folder import each other by module name
for d in Path(__file__).parent.iterdir():
    if d.is_dir() and not d.name.startswith((".", "_")):
        sys.path.insert(0, str(d))

from tiny import TINY, TINY_CONFIG  # tests/pipeline/tiny.py, importable once the loop above ran


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Folder with manifest.csv, references.csv, xas2d.h5, truth and run.toml of a tiny experiment."""
    from chemtomo.io.simulated import write_dataset
    from chemtomo.simulate import simulate_dataset

    d = tmp_path_factory.mktemp("tiny")
    write_dataset(d, simulate_dataset("demo", seed=3, **TINY))
    (d / "run.toml").write_text(TINY_CONFIG)
    return d
