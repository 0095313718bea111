"""napari sample data: the chemtomo demo run, simulated and reconstructed on first use.

File › Open Sample › chemtomo demo run makes what ``chemtomo demo`` makes (10 LiFePO4 plates,
31 angles, 2 energies, with known truth; about a minute on two cores the first time) in a cache
folder, then opens its store with the same reader as ``napari RUN.zarr``. Later calls reuse the
finished run: the pipeline resumes and finds every stage done.

The folder is ``$CHEMTOMO_DEMO_DIR`` if set, else ``~/.cache/chemtomo/napari-demo``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["demo_dir", "demo_sample", "make_demo_run"]


def demo_dir() -> Path:
    """Where the sample's dataset and run store live."""
    env = os.environ.get("CHEMTOMO_DEMO_DIR")
    return Path(env) if env else Path.home() / ".cache" / "chemtomo" / "napari-demo"


def make_demo_run(out: Path | None = None, *, seed: int = 0, say=None) -> Path:
    """Simulate the demo dataset (once) and run (or resume) the pipeline on it; return RUN.zarr."""
    from ..io.simulated import write_dataset
    from ..pipeline import config_for_manifest, run_pipeline
    from ..simulate import simulate_dataset

    out = Path(out) if out is not None else demo_dir()
    data = out / "data"
    if not (data / "manifest.csv").exists():
        write_dataset(data, simulate_dataset(preset="demo", seed=seed))
    store = out / "run.zarr"
    run_pipeline(config_for_manifest(data / "manifest.csv"), store, say=say or (lambda _msg: None))
    return store


def demo_sample() -> list[tuple]:
    """npe2 sample-data hook: the demo run's layers (made on first use)."""
    from ._reader import layer_data

    return layer_data(make_demo_run())
