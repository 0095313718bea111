"""Bookkeeping shared by every solver: schedules, state updates, error record, divergence.

A ``Run`` carries the model, the refined ``State`` and the options through a chain of solvers
(``"DM:100,RAAR:300,ML:100"``): the iteration counter, the error per iteration and the best
state so far continue from one solver to the next. Solvers call ``Run.end_iteration`` once per
iteration (through ``Run.finish_sweep``, which first applies the sweep's background and position
updates); it returns False when the stage must stop: diverged (the run ends, the best state is
kept) or converged (``ConvergenceOptions``; the next stage of a chain starts), or, once, to
start over from a better probe (``Run.defocus_check``, ``ProbeOptions.defocus_at``: the chain
runs again from its first stage). ``stop_reason`` says why the last stage ended: "converged",
"diverged" or "max_iterations" ("restart" only between the check and the chain's new start).

Error metric (the same for all solvers, so a chained run has one curve): the normalised
amplitude misfit ``Σ (√I − √(Σ_m|Ψ_m|² + b))² / Σ I`` over valid detector pixels, measured on
the model ``Ψ = F[P·O]`` of the current object and probe: for RAAR and DM at the start of each
iteration, for PIE on each batch before its update, for ML before each step. Poisson noise puts
a floor under it (≈ n_pixels / (4 Σ I) per frame when counts are large; ``noise.amplitude_floor``
computes it for the measured counts, and the stopping rule uses it, ``Run._has_converged``).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable

import numpy as np

from ..core.fft import empty_aligned
from . import _kernels as K
from .finegrid import band_limit
from .noise import NoiseFloor
from .operators import FarFieldModel, State, orthogonalize_modes, regularized_ratio
from .options import PtychoOptions
from .probe import fit_probe_defocus, propagate_probe

__all__ = ["Run"]

log = logging.getLogger(__name__)

#: The defocus check's data are *noise-limited* where the carried guess's misfit is at most this
#: multiple of the Poisson floor F; only there may the refined probe lead it by up to
#: ``ProbeOptions.defocus_margin`` allowances (elsewhere by one, the rule before session 21). The
#: margin stands for the object's adaptation to the refined probe's noise; where the misfit is far
#: above the floor, what the data do not fit is the model, not noise, and the lead is no measure
#: of it. On the regime matrix the carried guesses' misfits at iteration 50 are 1.0–1.6 F from 10⁴
#: to 10⁶ photons per frame and 61–74 F at 10⁹ (the zone plate on 128² frames, cell 2), whose one
#: restart with a lead between 1 and 10 A (seed 24, 9.3 A) ended at OD error 0.015 instead of
#: 0.008 (docs/results/ptychography.md, "Session 21"). 4 lies between, a factor of 2.5 above the
#: highest noise-limited misfit.
NOISE_LIMITED_MISFIT = 4.0


def affine_free_steps(positions_px: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``steps`` (n, 2) less their least-squares affine part ``A·(r − r̄) + b`` over the positions
    ``r`` (a common shift, scale, shear and rotation of the scan): the position updates a wrong
    probe or a drifting object can mimic, and that a far-field scan cannot tell from a change of
    the probe or the object's pixel size. Random per-frame errors, uncorrelated with the
    positions, are kept but for 6 of their 2n degrees of freedom. Fewer than 6 frames: only the
    mean is removed."""
    steps = np.asarray(steps, np.float64)
    if len(steps) < 6:
        return steps - steps.mean(axis=0)
    design = np.column_stack([positions_px - positions_px.mean(axis=0), np.ones(len(steps))])
    coef, *_ = np.linalg.lstsq(design, steps, rcond=None)
    return steps - design @ coef


class Run:
    """State and schedule of one reconstruction (possibly a chain of solvers)."""

    def __init__(self, model: FarFieldModel, state: State, options: PtychoOptions, *,
                 total_iterations: int, progress: Callable[[int, int], None] | None = None,
                 progress_offset: int = 0, progress_total: int | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.model = model
        self.state = state
        self.options = options
        self.iteration = 0
        self.total_iterations = total_iterations
        self.errors: list[float] = []
        self.best_error = math.inf
        self.best_state: State | None = None
        self.bad_count = 0
        self.diverged = False
        #: Why the last stage ended: "converged", "diverged", "max_iterations" or "restart" (the
        #: defocus check started the run over; ``run_chain`` then runs the chain again).
        self.stop_reason = "max_iterations"
        self.stage_start = 0
        #: (solver, iterations it ran) for every stage run so far (set by run_chain).
        self.stage_iterations: list[tuple[str, int]] = []
        #: True in the last stage of the chain (the resolution rule stops only that stage).
        self.final_stage = True
        #: True in the chain's last stage whose solver refines positions (with
        #: ``PositionOptions.final_stage_only`` positions are refined only in it).
        self.position_stage = True
        #: True in a stage that refines positions only if its first update asks for more than
        #: ``PositionOptions.trial_rms_px`` (``start_stage(trial_positions=True)``); cleared by
        #: that update, which decides.
        self.position_trial = False
        #: RMS (px) of each trial's first update, and whether it went on refining: [(rms, kept)].
        self.position_trials: list[tuple[float, bool]] = []
        #: Optional ``monitor(run) -> bool`` called after every iteration that did not diverge
        #: (also one that another rule ends); True stops the stage as converged by "resolution"
        #: where no other rule did (``reconstruct``'s split-half rule,
        #: ``ConvergenceOptions.resolution_tolerance``).
        self.monitor: Callable[[Run], bool] | None = None
        self.converged = False
        #: True in a stage whose converged result is the moving average of its iterates: the
        #: chain's last, when its solver is one of ``algorithms.AVERAGED_SOLVERS``.
        self.average_stage = False
        #: Moving average of the objects of that stage; None before its first iteration.
        self.object_average: np.ndarray | None = None
        #: True once the last stage's average replaced its last object (``use_average``).
        self.averaged = False
        #: Which rule ended the last converged stage: "noise floor", "noise-level fall" or
        #: "relative fall" (``_has_converged``); None while none has.
        self.convergence_rule: str | None = None
        self.progress = progress
        self.progress_offset = progress_offset
        self.progress_total = progress_total or total_iterations
        self.rng = rng or np.random.default_rng(0)
        self.position_history: list[float] = []
        #: The state the run started from (the file's probe guess): a defocus restart starts over
        #: from it (``ProbeOptions.defocus_at``); None once that check is done or where it is off.
        self.initial_state: State | None = state.copy() if options.probe.defocus_at > 0 else None
        #: The defocus check, once made: {"iteration", "lambda_z_px2", "misfit_guess",
        #: "misfit_propagated", "misfit_current", "allowance", "margin", "restarted"} (``defocus_check``).
        self.defocus: dict | None = None
        #: Unitary matrix of the last mode orthogonalisation (solvers with per-mode state apply it).
        self.mode_mixing = np.ones((1, 1), np.complex64)
        self.probe_window = None
        if options.probe.support is not None:
            # Soft real-space probe support exp(−(r/R)^8), r in half-widths, R = options.probe.support.
            y, x = np.indices((model.h, model.w), dtype=np.float32)
            r = np.hypot((y - model.h // 2) / (model.h / 2), (x - model.w // 2) / (model.w / 2))
            self.probe_window = np.exp(-(r / options.probe.support) ** 8).astype(np.float32)
        model.set_positions(state.positions_px)
        # "auto" is resolved by reconstruct from the data (noise.dim_background); a Run made from
        # options that still say "auto" subtracts
        model.background_share = options.background.projection == "share"
        # one probe mode only (validate_options refuses several)
        model.poisson = options.likelihood == "poisson"
        self.probes = model.shifted_probes(state.probe)
        #: Poisson floor of the error metric (None: the data are not photon counts). A property of
        #: the data: the defocus check needs it whatever the stopping rule.
        self.floor: NoiseFloor | None = model.noise_floor
        #: Expected fall of the metric below the floor from fitting the noise, (p / n)·floor.
        self.noise_fit_level = 0.0
        #: The error the rule waits for: the floor less what fitting the noise takes off, or the
        #: floor itself (the discrepancy principle) at low counts (``ConvergenceOptions``); NaN
        #: where the floor is unknown or the rules that use it are off.
        self.floor_target = math.nan
        c = options.convergence
        #: Do the stopping rules use the floor (``noise_floor``, and a stopping rule at all)?
        self.floor_rule = self.floor is not None and c.noise_floor and c.tolerance > 0
        if self.floor_rule:
            f = self.floor
            self.noise_fit_level = f.relative * min(self._free_parameters() / f.n_pixels, 1.0)
            if f.counts / f.n_pixels < c.discrepancy_counts:
                self.floor_target = f.relative
            else:
                self.floor_target = f.relative - self.noise_fit_level

    def _free_parameters(self) -> int:
        """Real unknowns of the model: two per object pixel that any frame reaches, two per
        probe pixel and mode, one per background pixel when it is retrieved."""
        m = self.model
        seen = np.zeros(m.object_shape, bool)
        for y0, x0 in zip(m.cy, m.cx):
            seen[y0:y0 + m.h, x0:x0 + m.w] = True
        n_bg = m.h * m.w if self.options.background.retrieve else 0
        return 2 * int(np.count_nonzero(seen)) + 2 * m.n_modes * m.h * m.w + n_bg

    # ------------------------------------------------------------------------------- schedules
    @property
    def refine_probe(self) -> bool:
        p = self.options.probe
        return p.refine and self.iteration >= p.start

    @property
    def refine_background(self) -> bool:
        b = self.options.background
        return b.retrieve and self.iteration >= b.start

    @property
    def refine_positions(self) -> bool:
        p = self.options.positions
        if not p.refine or (p.final_stage_only and not (self.position_stage or self.position_trial)):
            return False
        first = p.start + (self.stage_start if p.final_stage_only else 0)
        return self.iteration >= first and (self.iteration - first) % p.every == 0

    # --------------------------------------------------------------------------------- updates
    def set_probe(self, probe: np.ndarray, shift: bool = True, bins: np.ndarray | None = None) -> None:
        """New probe modes: orthogonalised, then shifted once per sub-pixel bin (``shift=False``
        leaves ``probes`` stale, for a caller that sets the probe again before using them;
        ``bins`` shifts only those bins, in place, leaving the others stale, for a caller whose
        next frames use only them and that sets the probe with every bin before anyone else
        reads ``probes``: PIE between the batches of one iteration)."""
        if self.probe_window is not None:
            probe = probe * self.probe_window
        self.state.probe, self.mode_mixing = orthogonalize_modes(probe.astype(np.complex64, copy=False))
        if shift and bins is None:
            self.probes = self.model.shifted_probes(self.state.probe)
        elif shift:
            self.model.shift_probes_into(self.probes, self.state.probe, bins)

    def overlap_update(self, obj_num, obj_den, probe_num, probe_den) -> None:
        """Least-squares object (and probe) from the accumulated overlap sums."""
        reg = self.options.object_reg
        if obj_num is not None:
            self.state.obj = regularized_ratio(obj_num, obj_den, self.state.obj, reg)
        if probe_num is not None:
            # Least-squares probe of each shift bin in its own (shifted) coordinates, then shifted
            # back and averaged with the bins' total illumination as weights: exact bin by bin,
            # where dividing the unshifted sums would smear the object's |O|² by the shift.
            per_bin = regularized_ratio(probe_num, probe_den[:, None], self.probes, reg)
            weights = probe_den.sum(axis=(1, 2)).astype(np.float64)
            weights /= weights.sum()
            self.set_probe(self.model.unshift_sum(per_bin, weights))

    def background_update(self, ratio_sum: np.ndarray, n_frames: int) -> None:
        """Expectation–maximisation step of the static background (see BackgroundOptions)."""
        self.state.background = (ratio_sum / n_frames).astype(np.float32)

    def move_positions(self, steps: np.ndarray) -> None:
        """Apply per-frame position steps (pixels): clipped, mean removed, kept inside the object."""
        limit = self.options.positions.max_step_px
        norm = np.hypot(steps[:, 0], steps[:, 1])
        scale = np.minimum(1.0, limit / np.maximum(norm, 1e-12))
        steps = steps * scale[:, None]
        if self.options.positions.affine_free:
            steps = affine_free_steps(self.state.positions_px, steps)
        else:
            steps -= steps.mean(axis=0)
        rms = float(np.sqrt(np.mean(np.sum(steps ** 2, axis=1))))
        if self.position_trial:  # this update decides whether the stage refines at all
            self.position_trial = False
            self.position_stage = rms > self.options.positions.trial_rms_px
            self.position_trials.append((rms, self.position_stage))
            log.debug("ptycho positions: the first update of stage at iteration %d asks for %.3f px RMS; %s",
                      self.stage_start, rms, "refining" if self.position_stage else "left for the last stage")
            if not self.position_stage:
                return
        new = self.state.positions_px + steps
        outside = self.model.out_of_bounds(new)
        new[outside] = self.state.positions_px[outside]
        self.state.positions_px = new
        self.model.set_positions(new)
        self.probes = self.model.shifted_probes(self.state.probe)  # the bins in use may have changed
        self.position_history.append(rms)

    # ------------------------------------------------------------------------------ iteration
    def finish_sweep(self, ratio_sum: np.ndarray, n_frames: int, steps: np.ndarray | None, err: float,
                     total: float) -> bool:
        """The end of one sweep over the frames, common to every solver: the background update
        (when refined) from the sweep's ``ratio_sum`` over ``n_frames``, the position steps (when
        refined, ``steps`` not None), then :meth:`end_iteration`. False when the run must stop."""
        if self.refine_background:
            self.background_update(ratio_sum, n_frames)
        if steps is not None:
            self.move_positions(steps)
        return self.end_iteration(err, total)

    def end_iteration(self, err: float, total: float) -> bool:
        """Record the error of the iteration just done; False when the run must stop."""
        error = float(err / total) if total > 0 else math.nan
        self.errors.append(error)
        self.iteration += 1
        if self.options.oversample > 1:  # the model on a finer grid: the object in the detector's band
            band_limit(self.state.obj, self.options.oversample)
        if self.average_stage and self.options.convergence.average:
            self._average_object()
        if self.progress is not None:
            self.progress(self.progress_offset + self.iteration, self.progress_total)
        div = self.options.divergence
        if math.isfinite(error) and error < self.best_error:
            self.best_error = error
            self.best_state = self.state.copy()
            self.bad_count = 0
        elif not math.isfinite(error) or error > self.best_error * (1 + div.tolerance):
            self.bad_count += 1
        else:
            self.bad_count = 0
        if not math.isfinite(error) or self.bad_count >= div.patience:
            self.diverged = True
            if self.best_state is not None:
                self.state = self.best_state.copy()
                self.model.set_positions(self.state.positions_px)
                self.probes = self.model.shifted_probes(self.state.probe)
            warnings.warn(f"ptycho: the error metric rose above {1 + div.tolerance:.2g}× its best value "
                          f"({self.best_error:.4g}) for {self.bad_count} iterations (or became non-finite) "
                          f"at iteration {self.iteration}; stopped and kept the best state",
                          RuntimeWarning, stacklevel=3)
            log.warning("ptycho diverged at iteration %d; best error %.4g kept", self.iteration, self.best_error)
            self.stop_reason = "diverged"
            return False
        due = self.initial_state is not None and self.iteration == self.options.probe.defocus_at
        if due and self.defocus_check():
            self.stop_reason = "restart"
            return False
        rule = self._has_converged()
        # the monitor hears of every iteration, also one that another rule ends (its halves keep
        # their appointments at fixed iterations); it stops the run only where no other rule did
        resolution = self.monitor is not None and self.monitor(self)
        if rule is not None:
            self.converged = True
            self.stop_reason = "converged"
            self.convergence_rule = rule
            floor = f"; noise floor {self.floor.relative:.4g}" if self.floor is not None else ""
            log.info("ptycho stage converged at iteration %d (error %.4g%s; rule: %s)", self.iteration, error,
                     floor, rule)
            return False
        if resolution:
            self.converged = True
            self.stop_reason = "converged"
            self.convergence_rule = "resolution"
            log.info("ptycho stage converged at iteration %d (error %.4g; rule: resolution)", self.iteration, error)
            return False
        return True

    def probe_misfit(self, probe: np.ndarray, frames: np.ndarray) -> float:
        """The error metric on ``frames`` with the current object and background and ``probe``
        (n_modes, h, w) in place of the current probe."""
        m = self.model
        buf = empty_aligned((len(frames), m.n_modes, m.h, m.w))
        m.exit_waves(buf, self.state.obj, m.shifted_probes(probe), frames)
        m.fft_inplace(buf)
        err, tot, _ = m.modulus_project(buf, frames, self.state.background, K.thread_chunks(frames))
        return err / tot if tot > 0 else math.nan

    def defocus_check(self, max_frames: int = 64) -> bool:
        """Is the file's probe guess wrong by a defocus that the data can tell? If so, start over
        from the guess carried to the right distance; True when the run starts over.

        With the current object (``ProbeOptions.defocus_at`` iterations in), the distance λz that
        best fits the data is found for the *initial* guess (``probe.fit_probe_defocus``, on up
        to ``max_frames`` frames spread over the scan). The run starts over from that probe
        (object, positions, background as at the start) where both

        - the carried guess fits better than the guess: its misfit is lower by more than the
          allowance A = F·2·n_modes·h·w / n (F the data's Poisson floor, n its valid pixels:
          what the probe's 2·n_modes·h·w free parameters would take off the misfit by fitting
          pure noise); and
        - the probe refined so far fits no better than the carried guess by more than
          ``ProbeOptions.defocus_margin``·A (10 A) where the carried guess's misfit is within
          ``NOISE_LIMITED_MISFIT``·F of the floor, by more than A elsewhere: its thousands of free
          parameters have found nothing in the data that one distance does not explain, only
          noise and the object's adaptation to it (the misfits are taken with the object
          refined alongside that probe). Starting over from the one-parameter probe then gives
          the solver a start without that noise (at low counts the refined probe's noise stays
          in the object).

        Where the refined probe fits the data better (high counts, or a guess wrong in more
        than its focus), or the data are not photon counts, the run goes on as it was."""
        start, self.initial_state = self.initial_state, None
        f = self.floor
        if start is None or f is None or not self.refine_probe:
            return False
        m = self.model
        frames = np.unique(np.linspace(0, m.n_frames - 1, min(max_frames, m.n_frames)).round().astype(np.int64))
        lz, values = fit_probe_defocus(start.probe, lambda probe: self.probe_misfit(probe, frames))
        allowance = f.relative * 2 * m.n_modes * m.h * m.w / f.n_pixels
        current = self.probe_misfit(self.state.probe, frames)
        noise_limited = values[lz] <= NOISE_LIMITED_MISFIT * f.relative
        margin = (self.options.probe.defocus_margin if noise_limited else 1.0) * allowance
        restart = values[0.0] - values[lz] > allowance and values[lz] - current <= margin
        self.defocus = {"iteration": self.iteration, "lambda_z_px2": lz, "misfit_guess": values[0.0],
                        "misfit_propagated": values[lz], "misfit_current": current, "allowance": allowance,
                        "margin": margin,
                        "restarted": bool(restart)}
        log.info("ptycho: defocus check at iteration %d: the guess carried λz = %.4g px² fits %.5g (the guess "
                 "%.5g, the refined probe %.5g, allowance %.3g, margin %.3g); %s", self.iteration, lz, values[lz],
                 values[0.0], current, allowance, margin, "starting over from it" if restart else "going on")
        if not restart:
            return False
        self.state = start
        self.model.set_positions(start.positions_px)
        self.set_probe(propagate_probe(start.probe, lz))
        self.best_error, self.best_state, self.bad_count = math.inf, None, 0
        self.position_history.clear()
        self.progress_total += self.iteration  # the chain's iterations all over again, at most
        return True

    def _average_object(self) -> None:
        """Fold this iteration's object into the stage's moving average (weight 2 / (window + 1));
        the stage's first iterate starts it (a copy: the solvers update their object in place)."""
        obj = self.state.obj
        if self.iteration - self.stage_start == 1:
            self.object_average = obj.copy()
            return
        weight = np.complex64(2.0 / (self.options.convergence.window + 1))
        step = np.subtract(obj, self.object_average)  # avg += w·(obj − avg), the same bits, one temporary
        step *= weight
        self.object_average += step

    def use_average(self) -> None:
        """Replace the object by the stage's moving average where that stage stopped converged
        (``ConvergenceOptions.average``); else leave the last (or best) object."""
        if self.stop_reason == "converged" and self.object_average is not None:
            self.state.obj = self.object_average
            self.object_average = None
            self.averaged = True
            log.info("ptycho: the object is the moving average of the last stage's iterates (window %d)",
                     self.options.convergence.window)

    def _window_mean(self, back: int) -> float:
        """Mean error of the ``ConvergenceOptions.window`` iterations that end ``back`` windows
        before the last iteration (0: the last window)."""
        w = self.options.convergence.window
        end = len(self.errors) - back * w
        return float(np.mean(self.errors[end - w:end]))

    def windowed_fall(self) -> float | None:
        """Relative fall of the error, the mean of the last ``window`` iterations against the mean of
        the ``window`` before (``ConvergenceOptions.window``); None before two windows of this stage."""
        if self.iteration - self.stage_start < 2 * self.options.convergence.window:
            return None
        new, old = self._window_mean(0), self._window_mean(1)
        return (old - new) / old if math.isfinite(new) and math.isfinite(old) and old > 0 else None

    def start_stage(self, final: bool = True, positions: bool | None = None, average: bool = False,
                    trial_positions: bool = False) -> None:
        """Mark the start of a solver stage (the convergence rule looks at this stage only);
        ``final``: the chain's last stage; ``positions``: the chain's last stage that refines
        positions (None: the same as ``final``); ``average``: its converged result is the moving
        average of its iterates (``use_average``); ``trial_positions``: an earlier stage that
        refines positions only where its first update asks for more than
        ``PositionOptions.trial_rms_px`` (``algorithms.trial_position_stages``)."""
        self.stage_start = self.iteration
        self.final_stage = final
        self.average_stage = average
        self.position_stage = final if positions is None else positions
        self.position_trial = bool(trial_positions) and not self.position_stage
        self.converged = False
        self.stop_reason = "max_iterations"

    def _has_converged(self) -> str | None:
        """Which rule says this stage has converged, or None (``ConvergenceOptions``).

        With the Poisson floor F of the data (``noise.amplitude_floor``):

        - "noise floor" (after one window): the windowed error is within the floor's uncertainty
          (``floor_sigmas`` standard deviations, or its systematic uncertainty if larger) of the
          misfit expected at the best fit, F·(1 − p/n) (p the model's free parameters, n the
          data's pixels: a least-squares fit absorbs p of the n noise terms, χ² with n − p
          degrees of freedom); or of F itself where the data hold fewer than
          ``discrepancy_counts`` counts per pixel (Morozov's discrepancy principle: stop where the
          model explains the data as well as the truth does, before it fits the noise).
        - "noise-level fall" (after two windows; only with ``noise_fit`` > 0, off by default): the windowed error
          fell by less than ``noise_fit`` × (p / n)·F over the last window, p the model's free
          parameters and n the data's pixels. Fitting p parameters to pure noise lowers the
          misfit by (p / n)·F in expectation (χ² with n − p degrees of freedom).

        And always, after ``min_iterations`` in the chain's first stage (``later_min_iterations``
        in a later one; the fallback when F is unknown or negligible, at high dose): "relative
        fall", the windowed error fell by less than ``tolerance`` of itself."""
        c = self.options.convergence
        done = self.iteration - self.stage_start
        if c.tolerance <= 0 or done < c.window:
            return None
        new = self._window_mean(0)
        if not math.isfinite(new):
            return None
        f = self.floor if self.floor_rule else None
        if f is not None and new <= self.floor_target + max(c.floor_sigmas * f.sigma, f.systematic * f.relative):
            return "noise floor"
        if done < 2 * c.window:
            return None
        old = self._window_mean(1)
        if not math.isfinite(old):
            return None
        if f is not None and c.noise_fit > 0 and old - new < c.noise_fit * self.noise_fit_level:
            return "noise-level fall"
        first_stage = self.stage_start == 0
        least = c.min_iterations if first_stage or c.later_min_iterations is None else c.later_min_iterations
        if done >= least and old - new < c.tolerance * old:
            return "relative fall"
        return None
