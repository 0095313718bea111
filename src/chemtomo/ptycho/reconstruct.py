"""One entry point for ptychographic reconstruction: ``reconstruct(scan, "rPIE:300,ePIE:200") -> Projection``.

Flow (DESIGN.md, "The flow"): io.read_scan → **ptycho.reconstruct** → complex projection T(y, x).

1. Validate everything before any work: the algorithm string, the options, the frames
   (``detector.clean_scan``: bad pixels masked, negative counts clipped, lost or empty frames
   dropped, too many lost an error naming the file and frames), positions (finite, inside the
   object array), the probe's shape.
2. Pixel size from the scan geometry (``scan.pixel_yx_m``); positions in object pixels relative
   to the object array's centre pixel ``(oy // 2, ox // 2)``, the centre of the scanned area.
3. Initial object: ones (unit transmission, air). Initial probe: given array, the file's guess,
   the zone plate, or the mean diffraction pattern (carried to the distance the data favour
   where the file has no guess, or one whose far field is unlike the data's), scaled to the
   data's photon count.
4. Run the solver chain on all frames; with ``frc=True`` also on each of two interleaved halves
   of the frames (even / odd), register the half reconstructions and correlate them.
5. Reference to air (linear phase ramp, global phase, amplitude removed); where photon noise
   limits the image (the default's low-dose chain, ``PtychoOptions.frc_weighting``), weight it
   ring by ring by the split-half FRC, √(2 FRC / (1 + FRC)) (the halves are then reconstructed
   whether or not ``frc`` asked for them). Return a ``Projection`` carrying probe modes,
   background, errors per iteration and the FRC.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..core import energy_to_wavelength
from ..core.containers import Projection, Scan
from ..core.errors import InputError
from ..core.fft import fft2, one_core
from .algorithms import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    LOW_DOSE_ALGORITHM,
    default_chain,
    is_default,
    parse_algorithm,
    run_chain,
)
from .detector import clean_scan
from .engine import Run, affine_free_steps
from .finegrid import detector_window, fine_shape, finer_scan, to_detector_grid, upsampled
from .noise import dim_background, dose_summary
from .operators import FarFieldModel, State, object_shape_for
from .options import PtychoOptions, validate_options
from .postprocess import air_reference, air_region, frc_weighted, split_half_frc
from .probe import (
    fit_probe_defocus,
    match_probe_scale,
    probe_from_diffraction,
    propagate_probe,
    zone_plate_probe,
)

__all__ = ["reconstruct", "reconstruct_many"]

log = logging.getLogger(__name__)

#: Excluding up to this fraction of a scan's frames is a warning; more is an error.
#: Fewest frames in each half of a split-half FRC.
MIN_HALF_FRAMES = 4
#: Extra object margin (pixels) when positions are refined, room for them to move.
POSITION_MARGIN_PX = 8
#: A run that converges at this many times the data's Poisson floor or more is limited by its
#: model, not by the photon noise, and says so (``info["error_over_floor"]``); with
#: ``PtychoOptions.oversample = 0`` (the default) it is run again on a grid twice as fine and the
#: lower misfit kept (``_grid_from_fit``). A run limited by the noise ends at about 1 F. The
#: default over seeds 0–19 of the regime matrix (one grid): 1.0–1.2 F at 10⁴–10⁶ photons per frame,
#: up to 7 F on chemtomo's own frames at 10⁹ on the pixel grid, 21–57 F off it (cell 27) and
#: 28–176 F with 1 px position errors (cell 20); on frames made without the one grid's aliasing or
#: from shifted object patches at 10⁹, 31 F on 128² (cell 37) and 210–590 F on 64² (cells 35, 39),
#: where the finer grid lowers the error 1.4–3.8×. 20 reaches all of those; on cells 20 and 27 the
#: finer grid's misfit was the higher in every run where its image was the worse (docs/results/
#: ptychography.md, "Session 36"), so the rule costs them time, not accuracy.
MODEL_LIMITED_FLOORS = 20.0


def _owner(scan: Scan) -> str:
    return scan.source or "scan"


def _weighs(option: str, low_dose_default: bool) -> bool:
    """Whether the object is weighted by its split-half FRC (``PtychoOptions.frc_weighting``):
    "on" always, "off" never, "auto" where the default chose its low-dose chain."""
    return option == "on" or (option == "auto" and low_dose_default)


#: ``PtychoOptions.subpixel = 0`` (``subpixel_for_counts``): (signal counts per valid detector
#: pixel from which, sub-pixel bins per pixel), in rising order.
SUBPIXEL_COUNTS = ((100.0, 8), (1e4, 16))
#: Bins per pixel below ``SUBPIXEL_COUNTS[0][0]`` counts per pixel.
SUBPIXEL_LOW = 4


def subpixel_for_counts(signal_counts: float) -> int:
    """Sub-pixel bins per pixel (``PtychoOptions.subpixel``) for a scan with ``signal_counts``
    photons per valid detector pixel and frame above its background.

    A position rounded to the nearest of 1/s-pixel bins is off by up to 1/(2s) px: a model
    error that the photon noise hides at few counts and that dominates at many. Measured on the
    regime matrix's cells with true positions off the pixel grid (cells 24–31, seeds 0–5,
    docs/results/ptychography.md, "Session 32"): at 10⁹ photons per frame the OD error is
    0.035–0.055 with s = 4, 0.017–0.027 with 8 and 0.009–0.018 with 16; at 10⁷ photons on 64²
    (2,440 counts per pixel) 8 takes it from 0.087 to 0.057 on three seeds' mean (16: 0.052).
    At 10⁶ photons on 64² (216–244 counts per pixel) 8 lowers the twenty seeds' mean by 3–7 %
    on the three off-grid cells there, and pty-chi, handed the positions as recorded, shifts
    every frame exactly and ended 9 % below the ¼-px default on the star probe's cell (session
    33); on the whole-pixel cells and the demo's scans 8 changes the error by −0.6 to +0.6 %. A
    frame in a bin of its own costs two more probe transforms per iteration (about 1.2× the time
    on the paper's scans, 1,200 counts per pixel, and on the demo). Below 100 counts per pixel
    (at 10⁴ photons 8 did worse, at 10⁵ it gained 2 %) ¼ px stays; 16 from 10⁴, where its 1 %
    over 8 at 10⁶ photons would not pay for 1.8× the time.

    >>> subpixel_for_counts(28.0), subpixel_for_counts(1200.0), subpixel_for_counts(2440.0), subpixel_for_counts(2.4e5)
    (4, 8, 8, 16)
    """
    bins = SUBPIXEL_LOW
    for counts, s in SUBPIXEL_COUNTS:
        if signal_counts >= counts:
            bins = s
    return bins


def _initial_probe(scan: Scan, probe, options: PtychoOptions, frames_used: np.ndarray,
                   pixel_m: float, background: float = 0.0) -> tuple[np.ndarray, str]:
    """Initial probe (n_modes_given, h, w) complex64, not yet scaled, and where it came from;
    ``background`` (counts per pixel) is taken off the mean diffraction pattern first."""
    shape = scan.frame_shape
    owner = _owner(scan)
    if probe is None:
        probe = "file" if scan.probe is not None else "diffraction"
    source = "array"
    if isinstance(probe, str):
        source = probe
        if probe == "file":
            if scan.probe is None:
                raise InputError(f"{owner}: probe='file' but the scan holds no probe guess")
            probe = scan.probe
        elif probe == "diffraction":
            frames = scan.frames[frames_used]
            if scan.mask is not None:
                frames = np.where(np.asarray(scan.mask, bool)[None], frames, 0)
            return probe_from_diffraction(frames, mask=scan.mask, background=background)[None], source
        elif probe == "zone_plate":
            zp = options.zone_plate
            return zone_plate_probe(shape, pixel_m, scan.energy_ev, outer_zone_m=zp.outer_zone_m,
                                    diameter_m=zp.diameter_m, central_stop=zp.central_stop,
                                    defocus_m=zp.defocus_m)[None], source
        else:
            raise InputError(f"{owner}: probe must be an array, 'file', 'zone_plate' or 'diffraction', "
                             f"got {probe!r}")
    probe = np.asarray(probe)
    if probe.ndim == 2:
        probe = probe[None]
    if probe.ndim != 3 or probe.shape[1:] != shape:
        what = "the scan's probe" if source == "file" else "probe"
        raise InputError(f"{owner}: {what} has shape {probe.shape}; expected (ny, nx) or (n_modes, ny, nx) "
                         f"with (ny, nx) = frame shape {shape}")
    if not np.isfinite(probe).all() or not np.any(probe != 0):
        raise InputError(f"{owner}: probe must be finite and not all zero")
    return probe.astype(np.complex64), source


def _scaled_modes(probe: np.ndarray, n_modes: int, counts: np.ndarray, valid: np.ndarray,
                  mode_power: float) -> np.ndarray:
    """Probe with ``n_modes`` modes whose total far-field power on valid pixels matches the
    brighter frames (90th percentile of the frames' valid counts; bright frames see most air).

    Missing modes are the first mode times x, y, xy, x², ... (orthogonal-ish, smooth), each with
    ``mode_power`` of the first mode's power."""
    h, w = probe.shape[1:]
    modes = list(probe[:n_modes])
    y, x = np.indices((h, w), dtype=np.float32)
    y = (y - h // 2) / (h / 4)
    x = (x - w // 2) / (w / 4)
    shapes = [x, y, x * y, x * x - 1, y * y - 1]
    base = modes[0]
    base_power = float(np.sum(np.abs(base) ** 2))
    for k in range(len(modes), n_modes):
        extra = base * shapes[(k - 1) % len(shapes)] * (1 + (k - 1) // len(shapes))
        extra *= np.sqrt(mode_power * base_power / max(float(np.sum(np.abs(extra) ** 2)), 1e-30))
        modes.append(extra.astype(np.complex64))
    probe = np.stack(modes).astype(np.complex64)
    target = float(np.percentile(counts, 90))
    far = np.sum(np.abs(fft2(probe)) ** 2, axis=0)
    on_valid = float(np.sum(far * valid))
    if on_valid <= 0:
        raise InputError("probe: the initial probe has no power on the valid detector pixels")
    return (probe * np.sqrt(target / on_valid)).astype(np.complex64)


#: Standard errors by which a background must be told from diffraction (``noise.dim_background``)
#: before ``BackgroundOptions.projection = "auto"`` shares.
BACKGROUND_SEPARATION = 3.0


def _background_projection(options: PtychoOptions, amplitude: np.ndarray,
                           valid: np.ndarray) -> tuple[PtychoOptions, str | None, dict | None]:
    """Options whose ``background.projection`` is "subtract" or "share", "auto" resolved from the
    data (``BackgroundOptions``), a sentence saying why and the evidence (``noise.dim_background``;
    both None where nothing was resolved)."""
    b = options.background
    if not b.retrieve or b.projection != "auto":
        return options, None, None
    dim_counts, fraction, separation = dim_background(amplitude, valid)
    evidence = {"dim_counts": dim_counts, "background_fraction": fraction, "separation": separation}
    told = separation >= BACKGROUND_SEPARATION
    chosen = "share" if told and fraction >= b.share_evidence else "subtract"
    if told:
        why = (f"a constant background explains {fraction:.0%} of the counts of the dimmest quarter of the "
               f"detector pixels ({dim_counts:.3g} per frame; {'≥' if chosen == 'share' else '<'} "
               f"{b.share_evidence:.0%})")
    elif separation == 0 and dim_counts > 0:  # dim_background's answer for frames that are not counts
        why = "the frames are not photon counts, whose statistics would tell a background from diffraction"
    else:
        why = (f"the dimmest quarter of the detector pixels holds too few counts ({dim_counts:.3g} per frame) "
               f"to tell a background from diffraction")
    rule = f"{why}: the modulus projection {'shares the counts with' if chosen == 'share' else 'subtracts'} the background"
    log.info("ptycho: %s", rule)
    return dataclasses.replace(options, background=dataclasses.replace(b, projection=chosen)), rule, evidence


def _two_cores_free() -> bool:
    """True when this call may use two cores or more for two threads at once: scipy.fft and numba
    both allowed ≥ 2 threads here (not inside ``core.fft.one_core``, as the pipeline's per-scan
    tasks run), and numba's threading layer takes calls from several threads (OpenMP or TBB;
    its "workqueue" fallback does not)."""
    import numba

    from ..core.fft import fft_workers
    from . import _kernels as K

    if fft_workers() < 2 or numba.get_num_threads() < 2:
        return False
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process yet: run a tiny one
        K.momentum_step(*(np.zeros((1, 2), np.float32) for _ in range(3)), np.float32(0), np.float32(0))
        layer = numba.threading_layer()
    return layer in ("omp", "tbb")


#: Pixels (frames × h × w) of a PIE/LSQML mini-batch (``pie.default_batch_size``) below which a
#: scan is reconstructed on one core even where more are free: its kernels and transforms are
#: then too small to pay for the threads' synchronisation. Measured on two cores (rPIE:30, LSQML:30
#: and the default, frc off, one core against two): 49 frames of 64² (batches of 20,480 px) 0.13
#: against 0.34 s, 0.15 against 0.35 s, 0.93 against 2.6 s; 36 of 128² (65,536 px) 0.29 against
#: 0.40 s, 0.38 against 0.55 s, 3.1 against 4.5 s; 25 of 256² (262,144 px) even (0.70 s each for
#: rPIE), the default 6.8 against 5.7 s; the measured star (52 frames of 128², 851,968 px) 12 against
#: 8.8 s for the full scan. RAAR, whose chunks are not these batches, is even at 64² and 10 % slower
#: on one core at 128². Results are the same bits either way.
ONE_CORE_BATCH_PIXELS = 2 ** 18


def _one_core_suffices(n_frames: int, h: int, w: int) -> bool:
    """True when a scan of ``n_frames`` frames of h × w runs faster on one core than on more
    (``ONE_CORE_BATCH_PIXELS``)."""
    from .pie import default_batch_size

    return default_batch_size(n_frames) * h * w < ONE_CORE_BATCH_PIXELS


def _thread_safe_count(progress: Callable[[int, int], None] | None):
    """A progress callback for solvers in several threads: reports the iterations done so far over
    all of them (one call per iteration, as each solver makes), under a lock."""
    if progress is None:
        return None
    import threading

    lock = threading.Lock()
    done = [0]

    def update(_done: int, total: int) -> None:
        with lock:
            done[0] += 1
            progress(done[0], total)
    return update


class _CoreHandover:
    """Two threads on one core each, the full scan in one and the two halves one after the other
    in the other: the first to finish hands its core over, and the other runs the rest of its
    iterations on both (``core.fft.use_threads``), instead of leaving a core idle. Whichever
    thread finishes first, and whichever iteration the other is at, the bits are the same: every
    kernel and transform gives the same result whatever its thread count
    (tests/ptycho/test_frc_halves_threads.py). Made in the caller's thread, whose thread counts
    (``fft_workers()``, numba's) are what a widened thread gets. ``handed_over`` records (which,
    iteration) of the run that took the core, for the log and the tests."""

    def __init__(self, widen: bool = True) -> None:
        import numba

        from ..core.fft import fft_workers

        self._threads = (fft_workers(), numba.get_num_threads())
        self._free = threading.Event()
        #: False: the waiting thread stays on its core (a scan too small to gain from two,
        #: ``_one_core_suffices``)
        self.widen = widen
        self.handed_over: list[tuple[str, int]] = []

    def finished(self) -> None:
        """The calling thread has no work left: its core is free."""
        self._free.set()

    def hook(self, name: str, progress: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
        """``progress`` for the runs of thread ``name`` (one hook per thread): after every
        iteration, takes the free core once one is free."""
        from ..core.fft import use_threads

        count, widened = [0], [False]

        def call(done: int, total: int) -> None:
            count[0] += 1
            if self.widen and not widened[0] and self._free.is_set():
                widened[0] = True
                use_threads(*self._threads)
                self.handed_over.append((name, count[0]))
                log.debug("ptycho: the %s thread takes the freed core after its iteration %d", name, count[0])
            if progress is not None:
                progress(done, total)
        return call


def _prepared_run(model: FarFieldModel, state: State, options: PtychoOptions, stages, *, progress, offset,
                  total, seed) -> Run:
    n_iter = sum(n for _, n in stages)
    return Run(model, state, options, total_iterations=n_iter, progress=progress, progress_offset=offset,
               progress_total=total, rng=np.random.default_rng(seed))


def _solve(model: FarFieldModel, state: State, options: PtychoOptions, stages, *, progress, offset, total,
           seed) -> Run:
    run = _prepared_run(model, state, options, stages, progress=progress, offset=offset, total=total, seed=seed)
    run_chain(run, stages)
    return run


def _air_referenced(obj: np.ndarray, illumination: np.ndarray) -> np.ndarray:
    """A half reconstruction referenced to its own air (``postprocess.air_reference``)."""
    return air_reference(obj, air_region(obj, illumination))[0]


#: A half that has not handed in its object for a check yet (``_ResolutionStop``).
_MISSING = object()


def split_half_information(curve) -> float:
    """Information (bits) that two half reconstructions share: ``Σ_s n_s log2(1 + SNR_s)`` over
    the Fourier rings s of their FRC (``n_s`` samples each), with ``SNR_s = C_s / (1 − C_s)`` the
    signal-to-noise ratio of a half implied by its correlation ``C_s`` (clipped to [0, 0.999];
    Shannon's capacity of each Fourier sample). Unlike the ½-bit resolution, which moves only
    where the first crossing moves (and sits still on a dip of the object's spectrum), it grows
    with every ring that the halves agree on better, so it levels off only when the
    reconstruction does."""
    c = np.clip(np.nan_to_num(np.asarray(curve.correlation, np.float64), nan=0.0), 0.0, 0.999)
    n = np.ones_like(c) if curve.n_per_shell is None else np.asarray(curve.n_per_shell, np.float64)
    return float(np.sum(n * np.log2(1.0 + c / (1.0 - c))))


class _ResolutionStop:
    """The split-half rule (``ConvergenceOptions.resolution_tolerance``) for a full scan and its two
    halves solved side by side, one thread each (the halves taking turns of one window).

    Every ``window`` iterations each half hands in its object; once both have (or a half has
    finished: its last object stands in), the pair's FRC is measured once and one decision is
    made for that iteration: "levelled off" when, after ``min_iterations``, the information the
    halves share (``split_half_information``) grew by less than ``tolerance`` (relative) since the
    previous check. The halves wait for the decision at their check, the full scan waits for it
    at the same iteration (the full scan is never waited for). A run stops where it levelled off,
    its own windowed error fell by less than ``error_fall``, and it is in its chain's last stage.
    A decision depends only on the halves' states at fixed iterations, never on which thread got
    there first."""

    def __init__(self, window: int, tolerance: float, min_iterations: int, pixel_yx: tuple[float, float],
                 error_fall: float = 0.01):
        import threading

        self.cond = threading.Condition()
        self.window, self.tolerance, self.min_iterations = int(window), float(tolerance), int(min_iterations)
        self.error_fall = float(error_fall)
        self.pixel_yx = pixel_yx
        self.handed: dict[int, dict[int, tuple]] = {}
        self.final: dict[int, tuple | None] = {}
        self.decisions: dict[int, bool] = {}
        self.checks: list[tuple[int, float, float]] = []  # (iteration, resolution m, information bits)
        self.levelled_at: int | None = None
        self.turn = 0

    def _measure(self, pair) -> tuple[float, float]:
        """(½-bit resolution in metres, split-half information in bits) of two halves."""
        refs = [_air_referenced(obj, illum) for obj, illum in pair]
        curve, _ = split_half_frc(refs[0], refs[1], np.minimum(pair[0][1], pair[1][1]), self.pixel_yx)
        return float(curve.resolution_m), split_half_information(curve)

    def _decide(self, it: int) -> None:
        """Decide iteration ``it`` if both halves' objects are there (call with the lock held)."""
        if it in self.decisions:
            return
        got = self.handed.get(it, {})
        pair = [got[k] if k in got else self.final.get(k, _MISSING) for k in (0, 1)]
        if any(p is _MISSING for p in pair):
            return
        if any(p is None for p in pair):  # a half failed: no decision but "go on"
            self.decisions[it] = False
        else:
            res, bits = self._measure(pair)
            prev = self.checks[-1][2] if self.checks else None
            self.checks.append((it, res, bits))
            stop = it >= self.min_iterations and prev is not None and bits < prev * (1 + self.tolerance)
            if stop and self.levelled_at is None:
                self.levelled_at = it
                log.info("ptycho: split-half information %.4g bits at iteration %d, %.4g bits %d iterations "
                         "before (resolution %.4g m): grew by less than %.0f%%", bits, it, prev, self.window, res,
                         100 * self.tolerance)
            self.decisions[it] = stop
        self.handed.pop(it, None)
        self.cond.notify_all()

    def wait_turn(self, k: int) -> None:
        """Block half ``k`` until it may compute: the halves take turns of one window each (one
        core between them, the full scan on the other), until the other half has finished."""
        with self.cond:
            while self.turn != k and (1 - k) not in self.final:
                self.cond.wait()

    def half_monitor(self, k: int, model: FarFieldModel):
        def monitor(run: Run) -> bool:
            it = run.iteration
            if it % self.window:
                return False
            handed = (run.state.obj.copy(), model.illumination(run.probes))
            with self.cond:
                self.handed.setdefault(it, {})[k] = handed
                self._decide(it)
                self.turn = 1 - k
                self.cond.notify_all()
                while not (it in self.decisions and (self.turn == k or (1 - k) in self.final)):
                    self.cond.wait()
                return self._stops(run, self.decisions[it])
        return monitor

    def _stops(self, run: Run, levelled: bool) -> bool:
        """A run stops where the halves' information has levelled off, its own error (windowed)
        fell by less than ``error_fall`` over the last window, and it is in its last stage."""
        if not (levelled and run.final_stage):
            return False
        fall = run.windowed_fall()
        return fall is not None and fall < self.error_fall

    def finished(self, k: int, run: Run | None, model: FarFieldModel) -> None:
        """Half ``k`` has ended (``run`` None: it failed); its last object stands in from now on."""
        last = None if run is None else (run.state.obj.copy(), model.illumination(run.probes))
        with self.cond:
            self.final[k] = last
            self.turn = 1 - k
            for it in sorted(self.handed):
                self._decide(it)
            self.cond.notify_all()

    def full_monitor(self, run: Run) -> bool:
        it = run.iteration
        if it % self.window:
            return False
        with self.cond:
            while it not in self.decisions and len(self.final) < 2:
                self.cond.wait()
            levelled = self.decisions.get(it, self.levelled_at is not None and it >= self.levelled_at)
            return self._stops(run, levelled)

    def summary(self) -> dict:
        return {"window": self.window, "tolerance": self.tolerance, "error_fall": self.error_fall,
                "levelled_at": self.levelled_at,
                "checks": list(self.checks)}


def position_changes(initial_px: np.ndarray, refined_px: np.ndarray) -> dict | None:
    """How far refinement moved the positions (n, 2), in object pixels: the RMS and largest change
    of a frame, and the RMS change without its least-squares affine part (the part the data can
    tell from a change of the probe; ``engine.affine_free_steps``). None where none moved."""
    d = np.asarray(refined_px, np.float64) - np.asarray(initial_px, np.float64)
    norm = np.hypot(d[:, 0], d[:, 1])
    if not len(d) or norm.max() == 0:
        return None
    free = affine_free_steps(initial_px, d)
    return {"rms_px": float(np.sqrt(np.mean(norm ** 2))), "max_px": float(norm.max()),
            "non_affine_rms_px": float(np.sqrt(np.mean(np.sum(free ** 2, axis=1))))}


#: Object-only LSQML iterations per trial distance, and most frames, of ``_fit_data_probe``.
FOCUS_ITERATIONS = 10
FOCUS_FRAMES = 64
#: Its search (``probe.fit_probe_defocus``): ±(h·w/4)·2⁻ᵏ for k < FOCUS_LEVELS, and 0, then
#: FOCUS_REFINEMENTS golden-section steps (each new step one trial, the first two) around each
#: of the grid's FOCUS_MINIMA lowest local minima (twins ±λz counted once); at most FOCUS_TRIALS.
FOCUS_LEVELS = 11
FOCUS_REFINEMENTS = 4
FOCUS_MINIMA = 2
FOCUS_TRIALS = 2 * FOCUS_LEVELS + 1 + FOCUS_MINIMA * (FOCUS_REFINEMENTS + 1)


def _fit_data_probe(probe: np.ndarray, amplitude: np.ndarray, valid: np.ndarray, object_shape: tuple[int, int],
                    positions_px: np.ndarray, background: np.ndarray, options: PtychoOptions, seed: int
                    ) -> tuple[float, dict[float, float]]:
    """The distance λz (pixel²) along the beam to carry a probe estimated from the mean
    diffraction pattern so that it explains the data.

    Such a probe (``probe.probe_from_diffraction``) has the beam's far-field modulus but a flat
    far-field phase: it is the beam in focus, and the data alone must say how far out of focus
    the sample sat. With a flat object every distance fits the data equally (a propagator only
    changes the far-field phase), so each trial distance is judged by cross-validation on the
    ``FOCUS_FRAMES`` frames nearest the scan's centre: an object is reconstructed alone with the
    trial probe from every other one of them (``FOCUS_ITERATIONS`` LSQML iterations from unit
    transmission, probe fixed), and the misfit it gives on the frames between, which it never
    saw, is what the search of ``probe.fit_probe_defocus`` minimises: over λz = 0 and
    ±(h·w/4)·2⁻ᵏ, k < ``FOCUS_LEVELS`` = 11 (a beam of numerical aperture q cycles per pixel in
    focus spreads over about 2·λz·q pixels out of it: h·w/4 fills the frame), then
    ``FOCUS_REFINEMENTS`` = 4 golden-section steps around each of the grid's two lowest local
    minima (``FOCUS_MINIMA``; at most ``FOCUS_TRIALS`` = 33 trials). The estimate's far field
    has a flat phase, so ±λz are twins (complex conjugates) and count as one minimum; a second
    minimum is refined because the held-out misfit on few frames can hold two of nearly equal
    depth on the grid, the deeper one in a dip narrower than the grid's factor-2 steps (regime
    cell 15, 25 frames of 256², its guess removed: on seeds 0–9 the grid's best point was 60 px²,
    overlap 0.02 with the true probe, on five seeds, OD error 2.1–2.3; refined around its second
    minimum, 256 px², the search finds 219–240 px², overlap 0.96, OD error 0.49–0.57).

    The misfit on the frames reconstructed instead favours compact probes, which overlap less
    and leave the object freer to fit noise: on the measured Siemens star without
    its guess it chose 41 px² (overlap 0.12 with the file's probe; FRC 33 px), cross-validation
    155 px² (overlap 0.63, the best distance giving 0.75; FRC 1.79 px, as from the file's guess).
    On the star's probe started from a flat disc (regime cell 17) both carry the estimate to an
    overlap of 0.89 with the true probe, where the disc overlaps it 0.02 and the estimate in
    focus 0.14.

    Returns the best λz and the held-out misfit at every distance tried."""
    centre = np.median(positions_px, axis=0)
    order = np.argsort(np.hypot(*(positions_px - centre).T), kind="stable")
    rows = np.sort(order[:FOCUS_FRAMES])
    if len(rows) < 2:
        return 0.0, {0.0: math.nan}
    seen, unseen = rows[0::2], rows[1::2]

    def model_of(frames: np.ndarray) -> FarFieldModel:
        return FarFieldModel(None, valid, object_shape, n_modes=options.probe.n_modes, subpixel=options.subpixel,
                             amplitude=amplitude[frames])

    # each thread its own pair of models (a model holds its positions); the trials are
    # independent, and every kernel gives the same bits whatever its thread count
    local = threading.local()
    pairs: list[tuple[FarFieldModel, FarFieldModel]] = []

    def models() -> tuple[FarFieldModel, FarFieldModel]:
        if getattr(local, "pair", None) is None:
            local.pair = (model_of(seen), model_of(unseen))
            pairs.append(local.pair)
        return local.pair

    alone = dataclasses.replace(
        options, probe=dataclasses.replace(options.probe, refine=False, defocus_at=0),
        positions=dataclasses.replace(options.positions, refine=False),
        convergence=dataclasses.replace(options.convergence, tolerance=0.0))

    def misfit(trial: np.ndarray) -> float:
        fit_model, test_model = models()
        state = State(np.ones(object_shape, np.complex64), trial, background.copy(), positions_px[seen].copy())
        run = Run(fit_model, state, alone, total_iterations=FOCUS_ITERATIONS, rng=np.random.default_rng(seed))
        run.start_stage(final=True, positions=False)
        ALGORITHMS["LSQML"](run, FOCUS_ITERATIONS, alone)
        if run.diverged:
            return math.inf
        held = State(run.state.obj, trial, run.state.background, positions_px[unseen].copy())
        return Run(test_model, held, alone, total_iterations=1).probe_misfit(trial, np.arange(len(unseen)))

    h, w = probe.shape[-2:]
    search = functools.partial(fit_probe_defocus, probe, misfit, levels=FOCUS_LEVELS, refinements=FOCUS_REFINEMENTS,
                               scale=h * w / 4, minima=FOCUS_MINIMA)
    try:
        if not _two_cores_free():
            return search()
        # the grid's trials two at a time, each on one core, and the refinements on one core: a
        # trial is small (≤ 32 frames), and split over two cores it waits on their
        # synchronisation (the search on 49 frames of 64²: 1.6 s on two cores, 0.5 s on one)
        from concurrent.futures import ThreadPoolExecutor

        from ..core.fft import one_core

        def on_one_core(lz_misfit):
            def run(lz):
                with one_core():
                    return lz_misfit(lz)
            return run

        with ThreadPoolExecutor(2, thread_name_prefix="chemtomo-focus") as pool, one_core():
            return search(grid_map=lambda f, grid: pool.map(on_one_core(f), grid))
    finally:
        for pair in pairs:
            for m in pair:
                m.release()


def _defocus_info(check: dict | None, pixel_yx, energy_ev: float) -> dict | None:
    """``Run.defocus`` with the distance in metres, z = λz · pixel² / λ (None: no check made)."""
    if check is None:
        return None
    z_m = check["lambda_z_px2"] * float(pixel_yx[0]) * float(pixel_yx[1]) / energy_to_wavelength(energy_ev)
    return {**check, "z_m": z_m}


def _grid_from_fit(call: Callable, options: PtychoOptions, progress, warn_detector: bool) -> Projection:
    """``PtychoOptions.oversample = 0``: the scan on the detector's grid; where that run converges at
    ``MODEL_LIMITED_FLOORS`` times its Poisson floor or more, again on a grid twice as fine, and
    the run that fits the data better (the lower error over the same floor) is returned, with
    ``info["oversample_rule"]`` saying what was compared. ``call(options=, progress=,
    warn_detector=, _final=, _start=)`` reconstructs the scan.

    The finer grid's run starts from the positions the first run refined (the full scan's, and
    each split half's its own), its object and probe from the file's guess as before. On the
    regime cells that rerun, against the scan's positions (session 38,
    docs/results/ptychography.md): cell 20 (1 px position errors), seeds 0–19, keeps the finer
    grid on 9 seeds instead of 3, its mean OD error 0.502 → 0.456; the pinhole on 64² frames at
    10⁹ photons 3–14 % lower; the zone plate on 128² 6 % lower (alias-free frames) and 3 % higher
    (shifted object patches); the same time.
    The first run's object and probe were tried as the start too: they carry the one grid's
    aliasing bias, which the finer model keeps (its images up to 2× worse where the guess is good)."""
    finals: dict = {}
    first = call(options=dataclasses.replace(options, oversample=1), progress=progress, warn_detector=warn_detector,
                 _final=finals)
    ratio = first.info["error_over_floor"]
    if ratio is None or ratio < MODEL_LIMITED_FLOORS or first.info["stop_reason"] != "converged":
        # a run stopped before convergence is above its floor for want of iterations, not of a model
        first.info["oversample_rule"] = (
            "the data are not photon counts: the detector's grid" if ratio is None else
            f"the detector's grid ended at {ratio:.3g}× the Poisson floor "
            + (f"(< {MODEL_LIMITED_FLOORS:g}×)" if ratio < MODEL_LIMITED_FLOORS
               else f"without converging ({first.info['stop_reason']})"))
        return first
    log.info("ptycho: the detector's grid ended at %.3g× the Poisson floor: the scan again on a grid 2× finer",
             ratio)

    def later(done: int, total: int) -> None:  # the second run after the first on one progress bar
        progress(total + done, 2 * total)

    second = call(options=dataclasses.replace(options, oversample=2), progress=later if progress else None,
                  warn_detector=False, _start=finals)
    fine = second.info["error_over_floor"]
    keep = second if fine is not None and fine < ratio else first
    keep.info["oversample_rule"] = (f"the detector's grid ended at {ratio:.3g}× the Poisson floor (≥ "
                                    f"{MODEL_LIMITED_FLOORS:g}×: model-limited), a grid 2× finer (from its "
                                    "refined positions) at "
                                    + ("no floor" if fine is None else f"{fine:.3g}×") + ": "
                                    + ("the finer grid kept" if keep is second else "the detector's grid kept"))
    keep.info["seconds"] = first.info["seconds"] + second.info["seconds"]
    log.info("ptycho: %s", keep.info["oversample_rule"])
    return keep


def reconstruct(scan: Scan, algorithm: str = DEFAULT_ALGORITHM, *, probe=None, n_modes: int | None = None,
                background: bool | None = None, refine_positions: bool | None = None,
                background_projection: str | None = None,
                object_shape: tuple[int, int] | None = None, frc: bool = True, seed: int = 0,
                progress: Callable[[int, int], None] | None = None, device: str = "cpu",
                options: PtychoOptions | None = None, saturation: float | None = None,
                detector_mask: np.ndarray | None = None, warn_detector: bool = True,
                _final: dict | None = None, _start: dict | None = None) -> Projection:
    """Reconstruct the complex transmission of one ptychography scan.

    Parameters
    ----------
    scan : chemtomo.core.Scan
        Frames (n_frames, ny, nx) in photon counts (zero frequency at the centre), positions
        (n_frames, 2) as (y, x) metres relative to the object array's centre, energy, distance,
        detector pixel size, optional mask and probe guess.
    algorithm : str
        Solver chain ``"NAME:ITERATIONS[,...]"`` with NAME in ``ALGORITHMS`` (RAAR, DM, ePIE,
        rPIE, mPIE, LSQML, ML), e.g. the paper's ``"RAAR:500"`` or ``"DM:100,RAAR:300,ML:100"``.

        The default, ``DEFAULT_ALGORITHM = "default"``, picks one chain per scan from the
        measured counts (``algorithms.default_chain``): ``"RAAR:200"`` where a flat detector
        background carries more than 10 % of the counts, ``"LSQML:300"`` (Odstrčil et al.,
        Opt. Express 26, 3108 (2018)) below 50 counts per detector pixel (unless a frame holds
        3·10⁵ photons or more: a large frame spread thin takes the other chain), and
        ``"LSQML:50,rPIE:300,ePIE:200"`` from 50 counts up: at most 50 LSQML iterations, whose
        optimal steps pull the probe from the guess towards the data, then rPIE (Maiden, Johnson
        & Li, Optica 4, 736 (2017)) until it has converged, then ePIE (Maiden & Rodenburg,
        Ultramicroscopy 109, 1256 (2009)), whose small steps average the photon noise.
        Iteration counts are maxima: a stage stops when its error reaches the Poisson noise
        floor of the data or levels off (``options.convergence``); ``info["stop_reason"]``
        says why the run ended, ``info["algorithm"]`` which chain ran,
        ``info["default_rule"]`` why and ``info["stage_iterations"]`` how many iterations
        each stage ran. At iteration 50 every chain checks whether the file's probe guess is
        the true probe out of focus and, where the data say so, starts over from the guess
        carried to the right distance (``ProbeOptions.defocus_at``, ``info["probe_defocus"]``).
        Figures: the regime matrix of
        ``benchmarks/ptycho_regimes.py`` (docs/results/ptychography.md).
        ``PAPER_ALGORITHM`` ("RAAR:500") reproduces the paper.
    probe : array, {"file", "zone_plate", "diffraction"} or None
        Initial probe: an (ny, nx) or (n_modes, ny, nx) array; the scan's own guess; a zone plate
        (``options.zone_plate``); the mean diffraction pattern (in focus). None: the scan's
        guess if it has one and its far field is like the data's (``ProbeOptions.far_field_min``),
        else the mean diffraction pattern carried to the distance along the beam that the data
        favour (``info["probe_from_data"]``; an array given is checked in the same way). Always
        rescaled to the data's photon count.
    n_modes : int or None
        Incoherent probe modes; overrides ``options.probe.n_modes`` (default 1) when given.
    background : bool or None
        Retrieve a static additive background; overrides ``options.background.retrieve``
        (default True) when given.
    refine_positions : bool or None
        Refine the scan positions; overrides ``options.positions.refine`` (default True: in the
        chain's last PIE or LSQML stage) when given. (None leaves ``options`` as they are.)
    background_projection : {"auto", "subtract", "share"} or None
        How PIE and LSQML's modulus projection treats the retrieved background; overrides
        ``options.background.projection`` (default "auto": "share" where the data show a
        detector background, ``BackgroundOptions``) when given.
    object_shape : (oy, ox) or None
        Object array shape in pixels; None makes it just large enough (pipelines pass one
        common shape for all scans). Every frame, with one pixel to spare, must fit inside.
    frc : bool
        Also reconstruct the even and odd frames separately and return their FRC (costs two
        more reconstructions of half the data each). Where the object is weighted by the FRC
        (``options.frc_weighting``; by default the low-dose chain's scans) the halves are
        reconstructed, and the FRC returned, whatever ``frc`` says.
    seed : int
        Seed of the random frame order of PIE solvers.
    progress : callable(done, total) or None
        Called after every iteration (total counts the half reconstructions too).
    device : {"cpu"}
        The solvers run on the CPU (fused numba kernels, scipy.fft on all cores).
    options : PtychoOptions or None
        Every solver option (defaults documented in ``options.py``).
    saturation : float or None
        Counts at or above which a detector pixel is saturated (masked; ``detector.clean_scan``).
    detector_mask : (ny, nx) bool or None
        Extra validity mask (True = valid) combined with the scan's own. Before any solver runs,
        :func:`chemtomo.ptycho.detector.clean_scan` masks non-finite and saturated pixels,
        clips negative counts to zero and drops lost frames; ``info["detector"]`` says what.
    warn_detector : bool
        Also say it in a RuntimeWarning (once per scan) when anything was done. The pipeline and
        the command line pass False and report ``info["detector"]`` themselves (a warnings filter
        is process-wide state, not safe to toggle from Dask's worker threads).
    _final, _start : dict or None
        Internal (``_grid_from_fit``): ``_final`` receives the refined positions (metres, the
        frames used) of the full scan ("full") and of the halves (0, 1); ``_start`` gives such
        positions to start from instead of the scan's.

    Returns
    -------
    Projection
        ``transmission`` (oy, ox) complex64 referenced to air (|T| = 1, zero phase and no phase
        ramp in the empty region); ``probe`` (n_modes, ny, nx) complex64 (scaled so that probe ×
        transmission reproduces the data); ``background`` (ny, nx) float32 counts per pixel in
        detector order, or None; ``errors`` per iteration (see ``engine.py``); ``frc`` the
        split-half Curve (½-bit) or None; ``info``: ``algorithm`` (the chain run), ``default_rule`` (why the default chose it, or
        None), ``convergence_rule`` (``options.convergence``), ``noise_floor`` (the data's Poisson floor of the error
        metric, None where the data are not counts) and ``floor_target`` (what the floor rule waits for,
        None where it is off), ``stages``, ``iterations``
        run, ``diverged``, ``stop_reason`` ("converged", "diverged" or "max_iterations": why the
        last solver stage ended; iterations are a maximum), ``positions_m`` (refined, one row per frame used) and
        ``initial_positions_m``, ``excluded_frames``, ``error_over_floor`` (the last error over the
        noise floor; from ``MODEL_LIMITED_FLOORS`` up the model, not the noise, limits the run and
        the log says so; None without a floor), ``object_shape``, ``pixel_yx_m``,
        ``phase_ramp_rad_per_px`` removed, ``oversample_rule`` (with ``PtychoOptions.oversample = 0``,
        the default: which grid was kept and why), ``oversample`` (the grid used: above 1
        the solvers ran on a grid that many times finer, and ``positions_m``, ``object_shape``,
        the image, probe and background are on the detector's grid all the same; the iteration
        history's pixels, ``position_step_rms_px`` and ``lambda_z_px2``, are the fine grid's),
        ``n_modes``, ``initial_probe`` (its source), ``probe_guess_scale`` (the size factor applied to a guess
        that disagreed with the mean diffraction pattern, 1.0 when left alone),
        ``position_step_rms_px`` per refinement, ``position_changes``, ``probe_defocus`` (the
        defocus check, ``engine.Run.defocus_check``: ``iteration``, ``lambda_z_px2`` and ``z_m``
        the distance found, the three misfits, the ``allowance``, ``restarted``; None where no
        check was made), ``probe_from_data`` (the probe estimated from the data, ``_fit_data_probe``:
        ``guess_similarity`` of the guess it replaced or None, ``lambda_z_px2`` and ``z_m``,
        the held-out ``misfit`` there and ``misfit_in_focus``, ``trials``, the ``background``
        its trial objects started from; None where the guess was used), ``background_projection``
        ("subtract", "share" or None without background retrieval; ``BackgroundOptions``) with
        ``background_rule`` (why, where "auto" chose) and ``background_evidence``
        (``noise.dim_background``), ``likelihood`` (``PtychoOptions.likelihood``), ``subpixel``
        (the sub-pixel bins per pixel used) and ``subpixel_rule`` (why, where
        ``PtychoOptions.subpixel = 0`` chose them), ``frc_shift_px``,
        ``frc_weighting`` (None, or the option and the rule that weighted the object by its
        split-half FRC), ``frc_resolution_m`` and ``frc_core_handover`` (with ``frc``: [(the run that took a core
        freed by the other thread, after which of its iterations)], empty when the runs shared no
        cores; ``_CoreHandover``), ``seconds``.

        The air reference is the most transmissive 30 % of the well-illuminated pixels
        (``postprocess.air_region``); a field without empty space is referenced to its most
        transparent material instead.

    Raises
    ------
    InputError
        Unparseable algorithm string, bad options, too many empty/non-finite frames (naming
        the file and the frames), positions outside the object array, a probe of the wrong
        shape, a device other than "cpu".

    Examples
    --------
    >>> from chemtomo.ptycho import reconstruct  # doctest: +SKIP
    >>> proj = reconstruct(scan, frc=False)  # the default chain  # doctest: +SKIP
    >>> paper = reconstruct(scan, "RAAR:500", frc=False)  # the paper's solver  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    options = options or PtychoOptions()
    if n_modes is not None and (isinstance(n_modes, bool) or not isinstance(n_modes, (int, np.integer))
                                or n_modes < 1):
        raise InputError(f"n_modes must be a positive integer, got {n_modes!r}")
    if device != "cpu":
        raise InputError(f"device must be 'cpu' for ptycho.reconstruct (the solvers are CPU kernels), got {device!r}")
    # the keyword arguments override the options only where given
    if n_modes is not None:
        options = dataclasses.replace(options, probe=dataclasses.replace(options.probe, n_modes=int(n_modes)))
    if background is not None:
        options = dataclasses.replace(options, background=dataclasses.replace(options.background,
                                                                              retrieve=bool(background)))
    if refine_positions is not None:
        options = dataclasses.replace(options, positions=dataclasses.replace(options.positions,
                                                                             refine=bool(refine_positions)))
    if background_projection is not None:
        options = dataclasses.replace(options, background=dataclasses.replace(
            options.background, projection=str(background_projection).strip().lower()))
    validate_options(options)
    if options.oversample == 0:  # the model's grid from the fit (PtychoOptions.oversample)
        return _grid_from_fit(functools.partial(
            reconstruct, scan, algorithm, probe=probe, object_shape=object_shape, frc=frc, seed=seed,
            device=device, saturation=saturation, detector_mask=detector_mask), options, progress, warn_detector)
    default_rule = None
    if not is_default(algorithm):
        stages = parse_algorithm(algorithm)
    if not isinstance(scan, Scan):
        raise InputError(f"scan must be a chemtomo.core.Scan, got {type(scan).__name__}")
    owner = _owner(scan)
    scan, detector = clean_scan(scan, saturation=saturation, mask=detector_mask)
    if warn_detector and not detector.clean:  # once per scan: what was masked, clipped and dropped
        warnings.warn(f"{owner}: {detector.summary()}", RuntimeWarning, stacklevel=2)
    if not np.isfinite(scan.positions_m).all():
        rows = np.flatnonzero(~np.isfinite(scan.positions_m).all(axis=1))
        raise InputError(f"{owner}: positions of frames {rows[:20].tolist()} are not finite")
    used = np.arange(scan.n_frames)  # clean_scan already left out the lost and empty frames
    if len(used) < 2:
        raise InputError(f"{owner}: {len(used)} usable frame(s) (frames): ptychography needs at least two "
                         f"overlapping frames")
    pixel_yx = np.asarray(scan.pixel_yx_m, dtype=np.float64)
    positions_px = scan.positions_m[used] / pixel_yx
    h, w = scan.frame_shape
    if object_shape is None:
        margin = 4 + (POSITION_MARGIN_PX if options.positions.refine else 0)
        object_shape = object_shape_for(positions_px, (h, w), margin)
    else:
        if len(object_shape) != 2 or min(object_shape) < 1:
            raise InputError(f"object_shape must be (oy, ox) positive, got {object_shape!r}")
        object_shape = (int(object_shape[0]), int(object_shape[1]))
    # the results' grid (the detector's); with options.oversample = m the problem is solved on a
    # grid m times finer (finegrid.py) and brought back to this one
    m = options.oversample
    out_shape, out_pixel = object_shape, pixel_yx
    if m > 1:
        scan = finer_scan(scan, m)
        if isinstance(probe, (np.ndarray, list, tuple)):  # a guess on the detector's grid
            probe = upsampled(np.asarray(probe), m)
        pixel_yx = np.asarray(scan.pixel_yx_m, dtype=np.float64)
        positions_px = scan.positions_m[used] / pixel_yx
        h, w = scan.frame_shape
        object_shape = fine_shape(object_shape, m)

    mask = np.ones((h, w), bool) if scan.mask is None else np.asarray(scan.mask, bool)
    if not mask.any():
        raise InputError(f"{owner}: the detector mask marks no pixel as valid")
    # One copy of the data, made in place step by step (a 400-frame scan of 128² is 26 MB a copy):
    # FFT order, float32, masked pixels zero (ignored), then the amplitudes √I the solvers use.
    data = scan.frames if len(used) == scan.n_frames else scan.frames[used]
    amplitude = np.fft.ifftshift(data, axes=(1, 2))
    del data
    if amplitude.dtype != np.float32:
        amplitude = amplitude.astype(np.float32)
    valid = np.fft.ifftshift(mask)
    amplitude[:, ~valid] = 0
    np.maximum(amplitude, 0, out=amplitude)
    counts = np.einsum("jyx,yx->j", amplitude, valid.astype(np.float32))  # photons per frame
    np.sqrt(amplitude, out=amplitude)
    if is_default(algorithm) or options.subpixel == 0:
        mean_counts, background_share = dose_summary(amplitude, valid)
    if is_default(algorithm):  # the default picks its chain from the measured counts (default_chain)
        algorithm, default_rule = default_chain(mean_counts, background_share,
                                                photons_per_frame=float(counts.mean()))
        stages = parse_algorithm(algorithm)
        log.info("ptycho: the default runs %s", default_rule)
    subpixel_rule = None
    if options.subpixel == 0:  # sub-pixel bins from the signal's counts (subpixel_for_counts)
        signal = mean_counts * (1.0 - background_share)
        options = dataclasses.replace(options, subpixel=subpixel_for_counts(signal))
        subpixel_rule = f"1/{options.subpixel} px bins ({signal:.3g} signal counts per detector pixel)"
        log.info("ptycho: positions to %s", subpixel_rule)
    options, background_rule, background_evidence = _background_projection(options, amplitude, valid)
    model = FarFieldModel(None, valid, object_shape, n_modes=options.probe.n_modes,
                          subpixel=options.subpixel, amplitude=amplitude)
    outside = model.out_of_bounds(positions_px)
    if len(outside):
        raise InputError(f"{owner}: the probe at frames {used[outside][:20].tolist()} (positions_m "
                         f"{scan.positions_m[used[outside[0]]].tolist()} ...) leaves the object array of shape "
                         f"{object_shape}; enlarge object_shape or check the positions")

    @functools.cache
    def data_background() -> float:
        # the data's own probe estimate (chosen here where the file has no guess, or one unlike
        # the beam) is the mean pattern less a detector background the data show; measured once
        # (up to three uses below)
        e = background_evidence
        dim_counts, share, separation = ((e["dim_counts"], e["background_fraction"], e["separation"]) if e
                                         else dim_background(amplitude, valid))
        return dim_counts * share if separation >= BACKGROUND_SEPARATION else 0.0

    probe0, probe_source = _initial_probe(scan, probe, options, used, float(pixel_yx[0]),
                                          data_background() if probe is None and scan.probe is None else 0.0)
    probe_scale = 1.0
    guess_similarity = None
    if probe_source in ("file", "array") and (options.probe.match_scale or options.probe.far_field_min > 0):
        # a guess whose far field disagrees with the data's mean pattern (e.g. twice too broad)
        # is resized to match it before anything else (probe.match_probe_scale)
        mean_pattern = np.fft.fftshift(np.mean(amplitude ** 2, axis=0))
        keep_size = {} if options.probe.match_scale else {"min_gain": math.inf}
        probe0, probe_scale, before, guess_similarity = match_probe_scale(probe0, mean_pattern,
                                                                          np.fft.fftshift(valid), **keep_size)
        if probe_scale != 1.0:
            log.info("ptycho: the probe guess's far field disagrees with the mean diffraction pattern "
                     "(similarity %.3f); resized ×%.3g (similarity %.3f)", before, probe_scale, guess_similarity)
        if guess_similarity < options.probe.far_field_min:
            # not the beam that made these data at any size (ProbeOptions.far_field_min)
            log.warning("ptycho: %s: the probe guess's far field has a similarity of only %.3f to the data's "
                        "(mean diffraction pattern; at least %.3g expected): the probe is estimated from "
                        "the data instead", owner, guess_similarity, options.probe.far_field_min)
            probe0, probe_source = _initial_probe(scan, "diffraction", options, used, float(pixel_yx[0]),
                                                  data_background())
    probe0 = _scaled_modes(probe0, options.probe.n_modes, counts, valid, options.probe.mode_power)
    bg0 = np.full((h, w), 0.1 if options.background.retrieve else 0.0, np.float32)
    data_probe = None
    if probe_source == "diffraction" and probe != "diffraction":
        # the data's probe estimate (chosen here, not asked for: the file has no guess, or a guess
        # unlike the beam) is the beam in focus: carried to the distance the data fit best
        log.info("ptycho: %s: finding the focus of the probe estimated from the data (≤ %d trial distances, "
                 "%d iterations each on up to %d frames)", owner, FOCUS_TRIALS, FOCUS_ITERATIONS, FOCUS_FRAMES // 2)
        # its trial objects start from the detector background the data show: from 0.1 counts per
        # pixel, ten iterations leave most of a real background to the coherent waves, and the
        # held-out misfit then favours probes carried too far (regime cell 19, a pinhole at 10⁴
        # photons under 2 photons per pixel, its guess removed: OD error 1.11 → 0.91 on seeds 2–9)
        bg_fit = np.full_like(bg0, max(float(bg0.flat[0]), data_background())) if options.background.retrieve else bg0
        lz, misfits = _fit_data_probe(probe0, amplitude, valid, object_shape, positions_px, bg_fit, options, seed)
        probe0 = propagate_probe(probe0, lz)
        data_probe = {"guess_similarity": guess_similarity, "lambda_z_px2": lz, "misfit_in_focus": misfits[0.0],
                      "misfit": misfits[lz], "trials": len(misfits), "background": float(bg_fit.flat[0])}
        log.info("ptycho: the probe from the mean diffraction pattern carried λz = %.4g px² fits %.5g (in focus "
                 "%.5g; %d trial distances)", lz, misfits[lz], misfits[0.0], len(misfits))

    def fresh_state(rows: np.ndarray, key) -> State:
        """The starting state of the full scan (``key`` "full") or of a half (0, 1; frames ``rows``):
        from the scan's positions, or from those ``_start`` gives (``_grid_from_fit``)."""
        start = positions_px[rows] if _start is None else _start[key] / pixel_yx
        return State(np.ones(object_shape, np.complex64), probe0.copy(), bg0.copy(), np.array(start, np.float64))

    n_iter = sum(n for _, n in stages)
    weigh = _weighs(options.frc_weighting, default_rule is not None and algorithm == LOW_DOSE_ALGORITHM)
    if (frc or weigh) and len(used) < 2 * MIN_HALF_FRAMES:
        if frc:
            warnings.warn(f"{owner}: {len(used)} frames are too few for a split-half FRC (each half needs "
                          f"{MIN_HALF_FRAMES}); no FRC computed", RuntimeWarning, stacklevel=2)
        frc = weigh = False
    if weigh and not frc:
        log.info("ptycho: %s: the even and odd frames are reconstructed too, to weight the object by their "
                 "FRC (PtychoOptions.frc_weighting)", owner)
        frc = True
    total = n_iter * (3 if frc else 1)

    def solve_half(k: int, progress_, rule: _ResolutionStop | None = None):
        """The even (k = 0) or odd (k = 1) frames reconstructed alone: (air-referenced object,
        illumination)."""
        rows = np.arange(k, len(used), 2)
        half_model = FarFieldModel(None, valid, object_shape, n_modes=options.probe.n_modes,
                                   subpixel=options.subpixel, amplitude=amplitude[rows])
        half = None
        try:
            half = _prepared_run(half_model, fresh_state(rows, k), options, stages, progress=progress_,
                                 offset=n_iter * (k + 1), total=total, seed=seed + k + 1)
            if rule is not None:
                half.monitor = rule.half_monitor(k, half_model)
                rule.wait_turn(k)
            run_chain(half, stages)
            if _final is not None:
                _final[k] = half.state.positions_px * pixel_yx
            half_illum = half_model.illumination(half.probes)
        finally:
            if rule is not None:
                rule.finished(k, half, half_model)
        half_model.release()
        half_obj = _air_referenced(half.state.obj, half_illum)
        if m > 1:
            return to_detector_grid(half_obj, m), np.ascontiguousarray(half_illum[::m, ::m])
        return half_obj, half_illum

    def solve_halves(progress_) -> list:
        return [solve_half(k, progress_) for k in (0, 1)]

    halves = None
    # a scan whose mini-batches are small runs on one core (ONE_CORE_BATCH_PIXELS): faster, and the
    # same bits
    small = _one_core_suffices(len(used), h, w)

    def on_cores():
        from ..core.fft import one_core

        return one_core() if small else contextlib.nullcontext()

    handed_over: list[tuple[str, int]] = []
    c = options.convergence
    if frc and c.tolerance > 0 and c.resolution_tolerance > 0:
        # The split-half resolution rule (ConvergenceOptions): the full scan and each half in its
        # own thread on one core, the halves handing in their objects every window; the rule's
        # decisions depend only on the halves' states at fixed iterations, not on the threads.
        from concurrent.futures import ThreadPoolExecutor

        from ..core.fft import one_core

        rule = _ResolutionStop(c.window, c.resolution_tolerance, c.min_iterations, tuple(pixel_yx),
                               c.resolution_error_fall)
        progress_ = _thread_safe_count(progress)

        def half_on_one_core(k: int):
            with one_core():
                return solve_half(k, progress_, rule)

        with ThreadPoolExecutor(2, thread_name_prefix="chemtomo-frc-halves") as pool:
            pending = [pool.submit(half_on_one_core, k) for k in (0, 1)]
            with one_core():
                run = _prepared_run(model, fresh_state(np.arange(len(used)), "full"), options, stages,
                                    progress=progress_, offset=0, total=total, seed=seed)
                run.monitor = rule.full_monitor
                run_chain(run, stages)
            halves = [f.result() for f in pending]
        info_rule = rule.summary()
    elif frc and _two_cores_free():
        # The halves (one core) beside the full scan (the other core): each thread runs its kernels
        # and FFTs on one core, with no waits between two threads inside every pass; the halves
        # together cost about what the full scan costs. The same bits as one after the other
        # (every kernel gives the same bits whatever its thread count; each run has its own seed).
        from concurrent.futures import ThreadPoolExecutor

        from ..core.fft import one_core

        # The first thread to finish hands its core to the other (_CoreHandover): on the measured
        # star the halves run longer than the full scan (more iterations to converge, smaller
        # batches), and would otherwise finish on one core while the other waits.
        progress_ = _thread_safe_count(progress)
        handover = _CoreHandover(widen=not small)

        def halves_on_one_core() -> list:
            try:
                with one_core():
                    return solve_halves(handover.hook("halves", progress_))
            finally:
                handover.finished()

        with ThreadPoolExecutor(1, thread_name_prefix="chemtomo-frc-halves") as pool:
            pending = pool.submit(halves_on_one_core)
            try:
                with one_core():
                    run = _solve(model, fresh_state(np.arange(len(used)), "full"), options, stages,
                                 progress=handover.hook("full scan", progress_), offset=0, total=total, seed=seed)
            finally:
                handover.finished()
            halves = pending.result()
        handed_over = handover.handed_over
        info_rule = None
    else:
        with on_cores():
            run = _solve(model, fresh_state(np.arange(len(used)), "full"), options, stages, progress=progress, offset=0,
                         total=total, seed=seed)
        info_rule = None
    state = run.state
    if _final is not None:
        _final["full"] = state.positions_px * pixel_yx
    log.info("ptycho %s: stopped after %d of at most %d iterations (%s%s; %s)", algorithm, run.iteration, n_iter,
             run.stop_reason, f", {run.convergence_rule}" if run.stop_reason == "converged" else "",
             ", ".join(f"{name} {n}" for name, n in run.stage_iterations))
    over_floor = (float(run.errors[-1]) / run.floor.relative
                  if run.floor is not None and run.floor.relative > 0 and run.errors else None)
    if over_floor is not None and over_floor >= MODEL_LIMITED_FLOORS and m == 1 and run.stop_reason == "converged":
        log.info("ptycho: %s: the error ends at %.0f× the data's Poisson floor: the model, not the photon noise, "
                 "limits this scan (bright frames recorded without the one grid's aliasing: oversample = 2; "
                 "also position errors, partial coherence: probe modes)", owner, over_floor)
    moves = position_changes(positions_px / m, state.positions_px / m)  # in pixels of the results' grid
    if moves is not None:
        log.info("ptycho positions refined: RMS change %.3f px (without a common affine change %.3f px), "
                 "largest %.3f px", moves["rms_px"], moves["non_affine_rms_px"], moves["max_px"])
    illumination = model.illumination(run.probes)
    air = air_region(state.obj, illumination)
    transmission, factor, ramp = air_reference(state.obj, air)
    probe_out = (state.probe * factor).astype(np.complex64)
    model.release()
    bg_out = np.fft.fftshift(state.background).astype(np.float32) if options.background.retrieve else None
    if m > 1:  # back on the detector's grid: probe × object reproduces the data in the one-grid model
        transmission = to_detector_grid(transmission, m)
        illumination = np.ascontiguousarray(illumination[::m, ::m])
        probe_out = to_detector_grid(probe_out, m) * np.float32(m)
        ramp = tuple(float(r) * m for r in ramp)
        if bg_out is not None:
            bg_out = np.ascontiguousarray(bg_out[detector_window(bg_out.shape, (h // m, w // m))])
    info = {
        "algorithm": algorithm, "default_rule": default_rule, "stages": stages,
        "stage_iterations": list(run.stage_iterations), "iterations": run.iteration, "diverged": run.diverged,
        "stop_reason": run.stop_reason, "convergence_rule": run.convergence_rule,
        "object_averaged": run.averaged,
        "noise_floor": run.floor.relative if run.floor is not None else None,
        "error_over_floor": over_floor,
        "noise_fit_level": run.noise_fit_level or None,
        "floor_target": run.floor_target if run.floor_rule else None,
        "positions_m": (state.positions_px * pixel_yx).astype(np.float64),
        "initial_positions_m": scan.positions_m[used].astype(np.float64),
        "excluded_frames": sorted(detector.dropped_frames),  # indices as read (clean_scan)
        "object_shape": out_shape, "pixel_yx_m": tuple(float(p) for p in out_pixel), "oversample": m,
        "phase_ramp_rad_per_px": ramp, "n_modes": options.probe.n_modes, "initial_probe": probe_source,
        "probe_guess_scale": probe_scale,
        "position_step_rms_px": run.position_history,
        "position_trials": list(run.position_trials),
        "probe_defocus": _defocus_info(run.defocus, pixel_yx, scan.energy_ev),
        "probe_from_data": _defocus_info(data_probe, pixel_yx, scan.energy_ev),
        "position_changes": moves,
        "background_projection": options.background.projection if options.background.retrieve else None,
        "background_rule": background_rule, "background_evidence": background_evidence,
        "likelihood": options.likelihood,
        "subpixel": options.subpixel, "subpixel_rule": subpixel_rule,
    }
    curve = None
    if frc:
        if halves is None:
            with on_cores():
                halves = solve_halves(progress)
        common = np.minimum(halves[0][1], halves[1][1])
        curve, shift = split_half_frc(halves[0][0], halves[1][0], common, tuple(out_pixel))
        info["frc_shift_px"] = shift.tolist()
        info["frc_resolution_m"] = curve.resolution_m
        info["frc_core_handover"] = handed_over  # [(the run that took a freed core, its iteration)]
        if info_rule is not None:
            info["resolution_checks"] = info_rule
    info["frc_weighting"] = None
    if weigh:
        transmission = frc_weighted(transmission, curve, tuple(out_pixel), illumination)
        info["frc_weighting"] = {"option": options.frc_weighting,
                                 "rule": ("the default's low-dose chain: photon noise limits the image"
                                          if options.frc_weighting == "auto" else "asked for")}
        log.info("ptycho: the object is weighted ring by ring by the split-half FRC, √(2 FRC / (1 + FRC)) (%s)",
                 info["frc_weighting"]["rule"])
    info["detector"] = detector.as_dict()
    info["seconds"] = time.perf_counter() - t0
    return Projection(transmission=transmission, pixel_m=float(out_pixel[0]), energy_ev=float(scan.energy_ev),
                      angle_deg=float(scan.angle_deg), probe=probe_out, background=bg_out, frc=curve,
                      errors=np.asarray(run.errors, np.float32), info=info)


def reconstruct_many(scans: Sequence[Scan], algorithm: str = DEFAULT_ALGORITHM, *, client=None,
                     processes: bool = False, **kwargs) -> list[Projection]:
    """Reconstruct several scans as independent Dask tasks, in the order given.

    Parameters
    ----------
    scans : sequence of Scan
        In-memory scans (no file is read here).
    algorithm : str
        As for :func:`reconstruct`, validated before any task starts.
    client : distributed.Client or None
        Run on this Dask cluster; None uses Dask's local threaded scheduler (the kernels and
        FFTs release the GIL; numba's OpenMP/TBB thread pools accept calls from several
        threads), or local processes when numba runs on its workqueue layer, which does not.
    processes : bool
        Without a client: a process per core, each scan on one core of its process (as
        ``chemtomo run``'s local workers). Small scans (tens of frames of 64²) spend much of their
        time in Python between the kernels, where threads of one process take turns: six of the
        demo's scans took 1.86× less time on two processes than on one thread, two threads 0.98×
        (docs/results/ptychography_speed.md, session 26). The results are the same bits as
        :func:`reconstruct` under ``core.fft.one_core``. Python starts each process by importing
        the calling script afresh, so a script must call this under
        ``if __name__ == "__main__":``. False (the default): threads.
    **kwargs
        Passed to :func:`reconstruct` (``object_shape`` fixes one grid for every scan).

    Returns
    -------
    list of Projection, one per scan.
    """
    import dask

    if not is_default(algorithm):
        parse_algorithm(algorithm)
    scans = list(scans)
    for i, scan in enumerate(scans):
        if not isinstance(scan, Scan):
            raise InputError(f"scans[{i}] must be a chemtomo.core.Scan, got {type(scan).__name__}")
    if "progress" in kwargs:
        raise InputError("reconstruct_many: progress callbacks cannot cross Dask task boundaries; "
                         "use the Dask dashboard or a distributed progress bar instead")
    if processes and client is None:
        tasks = [dask.delayed(_reconstruct_on_one_core, pure=True)(scan, algorithm, kwargs) for scan in scans]
        return list(dask.compute(*tasks, scheduler="processes", num_workers=max(1, os.cpu_count() or 1)))
    tasks = [dask.delayed(reconstruct, pure=True)(scan, algorithm, **kwargs) for scan in scans]
    if client is not None:
        return list(client.gather(client.compute(tasks)))
    return list(dask.compute(*tasks, scheduler=_local_scheduler()))


def _reconstruct_on_one_core(scan: Scan, algorithm: str, kwargs: dict) -> Projection:
    """:func:`reconstruct` on one core of a worker process (``reconstruct_many(processes=True)``)."""
    with one_core():
        return reconstruct(scan, algorithm, **kwargs)


def _local_scheduler() -> str:
    """Dask's threaded scheduler when numba's threading layer is thread-safe, else processes."""
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process: run a tiny one
        from . import _kernels as K
        out = np.zeros((1, 1, 1, 1), np.complex64)
        K.exit_waves(out, np.zeros((3, 3), np.complex64), out, np.zeros(1, np.int64), np.zeros(1, np.int64),
                     np.zeros(1, np.int64), np.zeros(1, np.int64))
        layer = numba.threading_layer()
    return "threads" if layer in ("omp", "tbb") else "processes"
