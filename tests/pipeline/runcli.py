"""Run the ``chemtomo`` command in a fresh process, as a user would (shared by the pipeline tests)."""

import subprocess
import sys

CLI = [sys.executable, "-c", "from chemtomo.cli import app; app()"]


def run_cli(args, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=900, **kw)
