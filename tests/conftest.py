"""Shared test configuration: non-interactive matplotlib, test folders importable."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

# with --import-mode=importlib, test helpers in one folder import each other by module name
for d in Path(__file__).parent.iterdir():
    if d.is_dir() and not d.name.startswith((".", "_")):
        sys.path.insert(0, str(d))
