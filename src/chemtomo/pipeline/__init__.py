"""Run the whole flow from a config file into a resumable store, stage by stage."""

from .config import RunConfig, config_for_manifest, example_config, load_config
from .run import STAGES, open_run, run_pipeline
from .xas import XasResult, run_xas, xas_maps

__all__ = ["RunConfig", "config_for_manifest", "example_config", "load_config", "STAGES", "open_run",
           "run_pipeline", "run_xas", "xas_maps", "XasResult"]
