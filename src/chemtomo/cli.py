"""The ``chemtomo`` command: thin; parses, calls pipeline/io, prints.

Exit codes: 0 success, 1 user error (one line, no traceback unless --verbose), 2 internal error.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
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
    if not verbose:  # Dask's own INFO lines (scheduler start, worker close) are not for users
        os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "warning")
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
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; rerun the same command to resume")
            raise typer.Exit(130) from None
        except Exception as exc:  # internal error: say so, show the traceback on --verbose
            if _state["verbose"]:
                err_console.print_exception()
            err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))} "
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
    preset: str = typer.Option("demo", help="demo (small, minutes), paper (the paper's geometry) or txm (full-field "
                                        "TXM XANES at the Fe K-edge, Data Exchange HDF5)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same dataset."),
    soc: float = typer.Option(0.5, help="Overall state of charge: mean FePO4 fraction of the material."),
    noise_seed: Optional[int] = typer.Option(None, "--noise-seed",
                                             help="Seed of the photon noise only (default: --seed): the same --seed "
                                                  "with another --noise-seed is another noise realisation of the same "
                                                  "sample and measurement (ptychography presets)."),
):
    """Simulate a ptychographic spectro-tomography experiment with known truth.

    Writes one CXI file per (angle, energy), manifest.csv, references.csv, xas2d.h5 and the
    ground truth (truth.h5, truth_particles.csv). With --preset txm: one Data Exchange HDF5 file per
    energy (txm_<energy>eV.h5), manifest.csv (path,energy_eV,pixel_m), K-edge references.csv and
    the truth.\n\nExample: chemtomo simulate /tmp/x --preset demo --seed 1
    """
    from .io.simulated import write_dataset, write_txm_dataset
    from .simulate import TXM_PRESETS, simulate_dataset, simulate_txm

    t0 = time.perf_counter()
    if preset in TXM_PRESETS:
        if noise_seed is not None:
            raise typer.BadParameter("--noise-seed is for the ptychography presets (demo, paper), not txm")
        with ProgressReporter(_state["quiet"]) as bars:
            ds = simulate_txm(preset=preset, seed=seed, soc=soc, progress=bars("simulate " + preset))
            manifest = write_txm_dataset(out, ds, progress=bars("write Data Exchange files"))
        say(f"wrote {manifest} ({time.perf_counter() - t0:.1f} s)")
        return
    with ProgressReporter(_state["quiet"]) as bars:
        ds = simulate_dataset(preset=preset, seed=seed, soc=soc, progress=bars("simulate " + preset),
                              noise_seed=noise_seed)
        manifest = write_dataset(out, ds, progress=bars("write CXI files"))
    say(f"wrote {manifest} ({time.perf_counter() - t0:.1f} s)")


@app.command()
@guarded
def info(path: Path = typer.Argument(..., help="A CXI/HDF5 file or a run store (RUN.zarr).")):
    """Print what a CXI file or a run store holds.\n\nExample: chemtomo info scan_000.cxi"""
    from .io import describe

    console.print(describe(path), highlight=False, soft_wrap=True)


def _report_path(store: Path) -> Path:
    return store.parent / f"{store.stem}_report.html"


def _write_report(store_path: Path, out: Optional[Path] = None) -> Path:
    from .io.export import write_text
    from .io.store import RunStore
    from .report import build_report

    store = RunStore(store_path, create=False)
    return write_text(out or _report_path(store_path), build_report(store))


def _command_line() -> str:
    """This command as typed (for the store lock's message to a second writer)."""
    import shlex

    return shlex.join(["chemtomo"] + sys.argv[1:])


def _run(config, out: Path, *, only=None, restart=False, force=False, profile=None):
    from .pipeline import run_pipeline

    t0 = time.perf_counter()
    with ProgressReporter(_state["quiet"]) as bars:
        run_pipeline(config, out, only=only, restart=restart, force=force, progress=bars, say=bars.log,
                     command=_command_line(), profile=profile, can_spawn=True)
    return time.perf_counter() - t0


@app.command()
@guarded
def run(
    source: Path = typer.Argument(..., help="CONFIG.toml, or a MANIFEST.csv / folder of CXI files run with defaults."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run store (default: RUN.zarr beside the input)."),
    resume: bool = typer.Option(True, "--resume/--restart",
                                help="Resume a stopped run (default) or forget earlier results and start over."),
    scheduler: str = typer.Option("", help="Dask scheduler address, tcp://HOST:PORT (default: local)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report at the end."),
    kind: str = typer.Option("", "--kind", help="Input kind: scans, projections, intensity or od "
                                                "(default: [input] kind of the config, else detected from the files)."),
    profile: bool = typer.Option(False, "--profile", help="Save Dask's performance report (task stream, worker "
                                                          "profiles, bandwidth) as RUN_dask-profile.html beside "
                                                          "the run's report."),
    skip_bad_scans: bool = typer.Option(False, "--skip-bad-scans",
                                        help="Leave out scans that fail the check before the run (recorded in the store) "
                                             "instead of stopping ([input] on_bad_scan = \"skip\")."),
):
    """Run the whole flow: ptychography → alignment → tomography → chemistry → particles → report.

    Rerunning the same command after a crash or kill resumes: finished scans, blocks and stages
    are not redone; stages whose inputs or settings changed are.\n\nExample: chemtomo run data/manifest.csv --out run.zarr
    """
    from .pipeline import config_for_manifest, load_config

    overrides = {"compute": {"scheduler": scheduler}} if scheduler else None
    if kind:
        overrides = {**(overrides or {}), "input": {"kind": kind}}
    if skip_bad_scans:
        overrides = overrides or {}
        overrides["input"] = {**overrides.get("input", {}), "on_bad_scan": "skip"}
    if source.suffix.lower() == ".toml":
        from .pipeline.config import config_from_dict, config_to_dict

        cfg = load_config(source)
        if overrides:
            data = config_to_dict(cfg)
            for section, values in overrides.items():
                data[section].update(values)
            cfg = config_from_dict(data, where=f"{source} (with command-line options)", base_dir=cfg.base_dir)
    else:
        cfg = config_for_manifest(source, overrides)
    out = out or (source.parent if source.is_file() else source) / "RUN.zarr"
    profile_path = out.parent / f"{out.stem}_dask-profile.html" if profile else None
    seconds = _run(cfg, out, restart=not resume, profile=profile_path)
    say(f"run complete in {seconds:.1f} s: {out}")
    if profile_path is not None:
        say(f"Dask performance report: {profile_path}")
    if report:
        say(f"report: {_write_report(out)}")


def _stage_command(name: str, doc: str):
    def command(store: Path = typer.Argument(..., help="An existing run store (RUN.zarr).")):
        seconds = _run(None, store, only=(name,), force=True)
        say(f"{name} done in {seconds:.1f} s: {store}")

    command.__doc__ = f"{doc}\n\nExample: chemtomo {name} RUN.zarr"
    app.command(name=name)(guarded(command))


_stage_command("align", "Rerun the tilt-series alignment on an existing run store.")
_stage_command("recon", "Rerun the tomographic reconstruction on an existing run store.")
_stage_command("fsc", "Rerun the split-half FSC on an existing run store.")
_stage_command("chem", "Rerun the chemical-state mapping on an existing run store.")
_stage_command("particles", "Rerun particle segmentation and statistics on an existing run store.")


def _frc_phrase(proj) -> str:
    """The summary line's words for a projection's split-half FRC: the ½-bit resolution; where
    the halves' correlation stays above the threshold in every ring, that the resolution is the
    pixel's (the halves agree up to the Nyquist frequency); otherwise that there is none."""
    import numpy as np

    curve = proj.frc
    if curve is None:
        return "no split-half FRC"
    if math.isfinite(curve.resolution_m):
        return f"FRC resolution {curve.resolution_m * 1e9:.1f} nm (½-bit)"
    c, t = np.asarray(curve.correlation, float), np.asarray(curve.threshold, float)
    if c.size and np.isfinite(c).all() and (c >= t).all():
        return (f"FRC resolution ≤ {proj.pixel_m * 1e9:.1f} nm, the pixel (the halves agree above the ½-bit "
                f"threshold up to the Nyquist frequency)")
    return "FRC resolution not measured (the halves' correlation is undefined)"


@app.command()
@guarded
def ptycho(
    scan: Path = typer.Argument(..., help="A CXI ptychography scan."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output CXI file (reconstructed image convention)."),
    algorithm: Optional[str] = typer.Option(None, help="Algorithm or chain, e.g. RAAR (the paper, with --iterations 500), "
                                                        "DM:100,RAAR:300,ML:100; default: chemtomo.ptycho's default, a chain chosen from the counts (LSQML:50,rPIE:300,ePIE:200 from 50 counts per pixel up; LSQML:300 below; RAAR:200 with background; maxima: it stops at convergence)."),
    iterations: Optional[int] = typer.Option(None, help="Iterations, for an algorithm given without counts (default 500)."),
    modes: int = typer.Option(1, help="Incoherent probe modes."),
    background: bool = typer.Option(True, "--background/--no-background", help="Retrieve a static background."),
    refine_positions: Optional[bool] = typer.Option(
        None, "--refine-positions/--no-refine-positions",
        help="Refine scan positions, in the chain's last PIE or LSQML stage (default: on; ptycho.PositionOptions)."),
    background_projection: str = typer.Option(
        "auto", help="How the modulus projection treats the background: auto (share where the data show a "
                     "detector background, else subtract), subtract, or share (ptycho.BackgroundOptions)."),
    frc: bool = typer.Option(True, "--frc/--no-frc", help="Split-half FRC (doubles the time)."),
    frc_weighting: str = typer.Option(
        "auto", help="Weight the object ring by ring by its split-half FRC, √(2 FRC / (1 + FRC)): auto (where the "
                     "default runs its low-dose chain, below 50 counts per pixel, the halves reconstructed even "
                     "with --no-frc), on (any chain), off (ptycho.PtychoOptions.frc_weighting)."),
    oversample: int = typer.Option(
        0, min=0, max=4, help="The model's grid in object pixels per detector-grid pixel: 1 (the one-grid model of "
                              "every far-field code), 2-4 (no aliasing of the exit wave; m² the time; for very bright "
                              "data) or 0, the default (1, and 2 as well where 1 converges ≥ 20× the Poisson floor, the better fit kept; "
                              "ptycho.PtychoOptions.oversample). The image comes back on the detector's grid."),
    guess_orientation: bool = typer.Option(
        False, "--guess-orientation",
        help="Instead of reconstructing: try the 8 position conventions (swap_xy, flip_x, flip_y) on the "
             "central frames and print the [input] flags that fit the data best."),
    swap_xy: bool = typer.Option(False, "--swap-xy", help="The file's translation columns are (y, x)."),
    flip_x: bool = typer.Option(False, "--flip-x", help="Negate the x positions."),
    flip_y: bool = typer.Option(False, "--flip-y", help="Negate the y positions."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Detector mask file (TIFF, .npy, HDF5; 0 = good pixel), "
                                                               "combined with the file's own mask."),
    saturation: float = typer.Option(0.0, "--saturation", help="Counts at or above which a pixel is saturated and "
                                                                "masked (0: no check)."),
):
    """Reconstruct one ptychography scan into a complex projection.

    Detector defects are handled, not refused: non-finite, saturated and masked pixels float free,
    negative counts are clipped to 0, lost frames are dropped; the line printed says what was done.

    Example: chemtomo ptycho scan_000.cxi --algorithm RAAR --iterations 500 -o proj.cxi\n\nExample: chemtomo ptycho scan_000.cxi --guess-orientation
    """
    from .core.errors import InputError
    from .io import read_scan, write_projection
    from .ptycho import DEFAULT_ALGORITHM, PtychoOptions, reconstruct
    from .ptycho.algorithms import is_default

    if guess_orientation:
        _guess_orientation(scan)
        return
    if out is None:
        raise InputError("give the output file with --out (or use --guess-orientation)")
    if algorithm is None:
        algorithm = DEFAULT_ALGORITHM
    if is_default(algorithm):
        if iterations is not None:
            raise InputError("--iterations needs an --algorithm NAME, not the default (it picks a chain from "
                             "the data, each carrying its own counts)")
    elif ":" in algorithm and iterations is not None:
        raise InputError("give iteration counts in --algorithm (e.g. RAAR:500) or --iterations, not both")
    elif ":" not in algorithm and "," not in algorithm:
        algorithm = f"{algorithm}:{iterations or 500}"
    from .io import read_detector_mask
    from .ptycho.detector import DetectorReport

    extra = read_detector_mask(mask) if mask is not None else None
    s = read_scan(scan, swap_xy=swap_xy, flip_x=flip_x, flip_y=flip_y, extra_mask=extra)
    with ProgressReporter(_state["quiet"]) as bars:
        proj = reconstruct(s, algorithm=algorithm, n_modes=modes, background=background,
                           refine_positions=refine_positions, background_projection=background_projection,
                           frc=frc, progress=bars(f"ptycho {algorithm}"),
                           options=PtychoOptions(frc_weighting=frc_weighting.strip().lower(), oversample=oversample),
                           saturation=saturation or None, warn_detector=False)
    det = DetectorReport.from_dict(proj.info["detector"])
    if not det.clean:
        say(f"{scan}: detector: {det.summary()}")
    write_projection(out, proj)
    err = float(proj.errors[-1]) if proj.errors is not None and len(proj.errors) else float("nan")
    resolution = _frc_phrase(proj)
    moves = proj.info.get("position_changes")
    moved = (f"; positions refined by {moves['rms_px']:.2f} px RMS ({moves['non_affine_rms_px']:.2f} px without a "
             f"common affine change), largest {moves['max_px']:.2f} px" if moves else "")
    evidence = proj.info.get("background_evidence")
    shared = (f"; the background takes its share of the counts (it explains {evidence['background_fraction']:.0%} of "
              f"the dimmest pixels')" if proj.info.get("background_projection") == "share" and evidence else "")
    averaged = "; the object is the average of the last stage's last iterates" if proj.info.get("object_averaged") else ""
    weighting = proj.info.get("frc_weighting")
    weighted = (f"; the object weighted ring by ring by its split-half FRC ({weighting['rule']})" if weighting else "")
    defocus = proj.info.get("probe_defocus")
    restarted = (f"; the probe guess was {abs(defocus['z_m']) * 1e6:.3g} µm out of focus: the run started over at "
                 f"iteration {defocus['iteration']} from the guess carried to the focus the data show"
                 if defocus and defocus.get("restarted") else "")
    data_probe = proj.info.get("probe_from_data")
    unlike = data_probe.get("guess_similarity") if data_probe else None
    estimated = ((f"; the file's probe guess is not the beam that made these data (its far field has a similarity "
                  f"of {unlike:.2f} to theirs)" if unlike is not None else "; the file holds no probe guess")
                 + f": the probe was estimated from the mean diffraction pattern, "
                   f"{abs(data_probe['z_m']) * 1e6:.3g} µm out of focus" if data_probe else "")
    from .ptycho.reconstruct import MODEL_LIMITED_FLOORS, SUBPIXEL_LOW

    rule = proj.info.get("subpixel_rule")  # said where the counts chose bins finer than dimmer scans'
    binned = f"; positions to {rule}" if rule and proj.info["subpixel"] > SUBPIXEL_LOW else ""
    m = proj.info.get("oversample", 1)
    finer = f"; the model on a grid {m}× finer than the detector's (object band-limited)" if m > 1 else ""
    over = proj.info.get("error_over_floor")
    floors = f" ({over:.3g}× its Poisson floor)" if over is not None else ""
    grid_rule = proj.info.get("oversample_rule") or ""
    if "model-limited" in grid_rule:  # --oversample 0 ran the scan on both grids
        finer += f"; {grid_rule}"
    elif over is not None and over >= MODEL_LIMITED_FLOORS and proj.info.get("stop_reason") == "converged":
        finer += ("; the model, not the photon noise, limits this scan" +
                  ("" if m > 1 else " (very bright frames: try --oversample 2; also position errors, probe modes)"))
    console.print(f"{out}: error {err:.4g}{floors}, {resolution}, pixel {proj.pixel_m * 1e9:.2f} nm; "
                  f"{proj.info.get('algorithm')} stopped after {proj.info.get('iterations')} iterations "
                  f"({proj.info.get('stop_reason')}){averaged}{weighted}{estimated}{restarted}{moved}{binned}{shared}"
                  f"{finer}",
                  highlight=False)


def _guess_orientation(path: Path) -> None:
    """Print the eight conventions' data errors and the [input] flags of the best."""
    from .io import read_scan
    from .ptycho import guess_orientation

    s = read_scan(path)
    t0 = time.perf_counter()
    with ProgressReporter(_state["quiet"]) as bars:
        g = guess_orientation(s, progress=bars("8 conventions"))
    console.print(f"{path}: {g.frames_used} central frames, {g.frame_px}-px frames, RAAR:40 each "
                  f"({time.perf_counter() - t0:.1f} s)", highlight=False)
    console.print("swap_xy  flip_x  flip_y   data error   mean phase (rad)", highlight=False)
    for t in g.trials:
        mark = "  <- best" if t is g.best else ("  (twin of best)" if t.flags == g.best.twin else "")
        console.print(f"{str(t.swap_xy).lower():7s}  {str(t.flip_x).lower():6s}  {str(t.flip_y).lower():6s}"
                      f"   {t.error:10.4g}   {t.mean_phase_rad:+.3f}{mark}", highlight=False)
    from .ptycho.orientation import TWIN_TOLERANCE

    degenerate = g.twin_ratio < TWIN_TOLERANCE
    console.print(f"margin {g.margin:.2f} (next convention's error / best's); twin ratio {g.twin_ratio:.3f} "
                  + ("(a convention and its twin, both axes negated, fit far-field data equally; the twin is "
                     "ruled out by its positive mean phase)" if degenerate else
                     "(the file's probe guess separates the twin)"), highlight=False, soft_wrap=True)
    if g.margin < 1.5:
        console.print("[yellow]warning:[/yellow] the margin is small: the data do not single out one "
                      "convention; try more frames or check the scan", highlight=False)
    console.print("put in the run config:\n[input]\n"
                  f"swap_xy = {str(g.best.swap_xy).lower()}\nflip_x = {str(g.best.flip_x).lower()}\n"
                  f"flip_y = {str(g.best.flip_y).lower()}", highlight=False, markup=False)


@app.command()
@guarded
def report(
    store: Path = typer.Argument(..., help="A run store (RUN.zarr)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default: RUN_report.html beside the store)."),
):
    """Write the self-contained HTML report of a run.\n\nExample: chemtomo report run.zarr"""
    say(f"report: {_write_report(store, out)}")


@app.command()
@guarded
def export(
    store: Path = typer.Argument(..., help="A run store (RUN.zarr)."),
    fmt: str = typer.Option(..., "--format", "-f", help="tiff, hdf5, csv or ome-zarr."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
):
    """Export volumes (TIFF stacks, HDF5, OME-Zarr for napari/neuroglancer) or the particle table (CSV + Parquet).

    Example: chemtomo export run.zarr --format csv -o out/   (writes out/particles.csv)
    Example: chemtomo export run.zarr --format ome-zarr -o out/   (out/mu_708.2eV.ome.zarr, ...)
    """
    from .io.export import export as do_export

    for p in do_export(store, fmt, out):
        say(str(p))


@app.command()
@guarded
def xas(
    stack: Path = typer.Argument(..., help="A STXM stack: BASE.hdr (with BASE_a000.xim, ...) or a NeXus NXstxm file."),
    references: Path = typer.Argument(..., help="Reference spectra, energy_eV,<phase>,... (one map per column)."),
    out: Path = typer.Option(..., "--out", "-o", help="Maps store to write (MAPS.zarr); the figure goes beside it."),
    i0_box: Optional[tuple[int, int, int, int]] = typer.Option(
        None, "--i0-box", help="I0 region as pixel box Y0 Y1 X0 X1 (half-open); default: chosen automatically."),
    align_energies: bool = typer.Option(True, "--align/--no-align", help="Register the energies to each other."),
    method: str = typer.Option("nnls", help="nnls (non-negative, default) or lstsq."),
    position_unit: Optional[str] = typer.Option(
        None, help="NeXus only: unit of sample_x/sample_y when the file does not say (default um; mm for Diamond I08)."),
):
    """Fit a 2D STXM spectral stack with reference spectra: one map per reference column + R-factor.

    Transmission -> optical density (I0 region) -> energy alignment -> per-pixel non-negative
    linear-combination fit (the fit of the pipeline's 2D validation).

    Example: chemtomo xas sample.hdr references.csv -o maps.zarr --i0-box 0 10 0 64
    """
    from .pipeline.xas import run_xas

    extra = {} if position_unit is None else {"position_unit": position_unit}
    res, store, fig = run_xas(stack, references, out, i0_box=i0_box, align=align_energies, method=method, **extra)
    s = res.summary
    say(f"{stack}: {res.od.shape[0]} energies, {res.od.shape[1]} x {res.od.shape[2]} pixels of "
        f"{res.pixel_m * 1e9:.1f} nm; I0 region {s['i0_pixels']} pixels ({s['i0_source']}, OD spread "
        f"{s['i0_od_spread']:.3f}, shot noise {s['i0_shot_noise_od']:.3f}); largest energy shift {s['max_shift_px']:.2f} px "
        f"(pairwise misfit {s['registration_residual_px']:.3f} px)")
    say(f"fit ({method}): R < 0.15 in {s['share_r_below_0.15']:.1%} of {s['n_sample']} sample pixels, median R "
        f"{s['median_r_factor']:.3g}; maps: {', '.join(res.fit.names)}, r_factor")
    say(f"store: {store}" + (f"\nfigure: {fig}" if fig else ""))


@app.command()
@guarded
def view(store: Path = typer.Argument(..., help="A run store (RUN.zarr).")):
    """Open a run's volumes, chemistry and labels in napari, with their voxel size in nm.

    The same as `napari RUN.zarr` with the chemtomo plugin (its reader). Needs napari:
    pip install 'chemtomo\\[view]'.

    Example: chemtomo view demo-run/run.zarr
    """
    from .report.napari_layers import INSTALL_HINT, napari_available

    if not napari_available():
        err_console.print(INSTALL_HINT, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    from .viewer import read_store

    layers = read_store(store)  # the plugin's own reader: the same layers as `napari RUN.zarr`
    import napari

    viewer = napari.Viewer(title="chemtomo")
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    say(f"napari: {len(layers)} layers from {store}")
    napari.run()


@app.command()
@guarded
def config(example: bool = typer.Option(False, "--example", help="Print a commented default config.")):
    """Print a commented example run configuration (TOML).\n\nExample: chemtomo config --example > run.toml"""
    from .pipeline import example_config

    if not example:
        raise typer.BadParameter("use --example")
    console.print(example_config(), highlight=False, markup=False, soft_wrap=True)


@app.command()
@guarded
def demo(
    out: Path = typer.Argument(Path("demo-run"), help="Folder for the simulated data, the run store and the report."),
    seed: int = typer.Option(0, help="Random seed of the simulation."),
):
    """Simulate the demo dataset, run the whole pipeline on it and write the report.

    Example: chemtomo demo demo-run
    """
    from .io.simulated import write_dataset
    from .pipeline import config_for_manifest
    from .simulate import simulate_dataset

    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "manifest.csv").exists():
        with ProgressReporter(_state["quiet"]) as bars:
            ds = simulate_dataset(preset="demo", seed=seed, progress=bars("simulate demo"))
            write_dataset(data, ds, progress=bars("write CXI files"))
    store = out / "run.zarr"
    _run(config_for_manifest(data / "manifest.csv"), store)
    path = _write_report(store)
    say(f"demo complete in {time.perf_counter() - t0:.0f} s")
    say(f"report: {path.resolve()}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
