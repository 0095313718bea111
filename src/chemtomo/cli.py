"""The ``chemtomo`` command: thin; parses, calls pipeline/io, prints.

Exit codes: 0 success, 1 user error (one line, no traceback unless --verbose), 2 internal error.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import __version__
from .core.errors import ChemtomoError

app = typer.Typer(
    name="chemtomo",
    help="Soft X-ray ptychographic spectro-tomography: from CXI scans to 3D chemical-state maps, "
         "particle statistics and a report.\n\nExample: chemtomo demo demo-run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)
_state = {"verbose": False, "quiet": False}


def _version(value: bool):
    if value:
        console.print(f"chemtomo {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and full tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the final result."),
):
    """chemtomo: ptychography, alignment, tomography, chemistry and particles in one command."""
    _state.update(verbose=verbose, quiet=quiet)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def guarded(fn):
    """Turn chemtomo errors into exit code 1 with one line, other exceptions into exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except ChemtomoError as exc:
            if _state["verbose"]:
                err_console.print_exception()
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; rerun the same command to resume")
            raise typer.Exit(130) from None
        except Exception as exc:  # internal error: say so, show the traceback on --verbose
            if _state["verbose"]:
                err_console.print_exception()
            err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc} "
                              "(rerun with --verbose for the traceback)", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


class ProgressReporter:
    """Rich progress bars keyed by task name; a callable ``(name) -> progress(done, total)``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.progress = Progress(TextColumn("[bold]{task.description:<28}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=console, disable=quiet, transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, name: str):
        def update(done: int, total: int):
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=total)
            self.progress.update(self.tasks[name], completed=done, total=total)

        return update

    def log(self, message: str):
        if not self.quiet:
            self.progress.console.print(message, highlight=False)


def say(message: str):
    if not _state["quiet"]:
        console.print(message, highlight=False)


@app.command()
@guarded
def simulate(
    out: Path = typer.Argument(..., help="Folder to write the simulated dataset into."),
    preset: str = typer.Option("demo", help="demo (small, minutes) or paper (the paper's geometry)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same dataset."),
    soc: float = typer.Option(0.5, help="Overall state of charge: mean FePO4 fraction of the material."),
):
    """Simulate a ptychographic spectro-tomography experiment with known truth.

    Writes one CXI file per (angle, energy), manifest.csv, references.csv, xas2d.h5 and the
    ground truth (truth.h5, truth_particles.csv).\n\nExample: chemtomo simulate /tmp/x --preset demo --seed 1
    """
    from .io.simulated import write_dataset
    from .simulate import simulate_dataset

    t0 = time.perf_counter()
    with ProgressReporter(_state["quiet"]) as bars:
        ds = simulate_dataset(preset=preset, seed=seed, soc=soc, progress=bars("simulate " + preset))
        manifest = write_dataset(out, ds, progress=bars("write CXI files"))
    say(f"wrote {manifest} ({time.perf_counter() - t0:.1f} s)")


@app.command()
@guarded
def info(path: Path = typer.Argument(..., help="A CXI/HDF5 file or a run store (RUN.zarr).")):
    """Print what a CXI file or a run store holds.\n\nExample: chemtomo info scan_000.cxi"""
    from .io import describe

    console.print(describe(path), highlight=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
