"""Run the whole flow from a config file into a resumable store, stage by stage."""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports
from .config import RunConfig, config_for_manifest, example_config, load_config

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .run import STAGES, open_run, run_pipeline
    from .xas import XasResult, run_xas, xas_maps

__all__ = ["RunConfig", "config_for_manifest", "example_config", "load_config", "STAGES", "open_run",
           "run_pipeline", "run_xas", "xas_maps", "XasResult"]

# the runner (Dask, the Zarr store) and the STXM flow on first use: reading or checking a config
# needs neither
__getattr__, __dir__ = lazy_exports(__name__, {**{name: ".run" for name in ("STAGES", "open_run", "run_pipeline")},
                                               **{name: ".xas" for name in ("XasResult", "run_xas", "xas_maps")}})
