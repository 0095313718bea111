"""Bookkeeping shared by every solver: schedules, state updates, error record, divergence.

A ``Run`` carries the model, the refined ``State`` and the options through a chain of solvers
(``"DM:100,RAAR:300,ML:100"``): the iteration counter, the error per iteration and the best
state so far continue from one solver to the next. Solvers call ``Run.end_iteration`` once per
iteration; it returns False when the stage must stop: diverged (the run ends, the best state is
kept) or converged (``ConvergenceOptions``; the next stage of a chain starts). ``stop_reason``
says why the last stage ended: "converged", "diverged" or "max_iterations".

Error metric (the same for all solvers, so a chained run has one curve): the normalised
amplitude misfit ``Σ (√I − √(Σ_m|Ψ_m|² + b))² / Σ I`` over valid detector pixels, measured on
the model ``Ψ = F[P·O]`` of the current object and probe: for RAAR and DM at the start of each
iteration, for PIE on each batch before its update, for ML before each step. Poisson noise puts
a floor under it (≈ n_pixels / (4 Σ I) per frame when counts are large).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable

import numpy as np

from .operators import FarFieldModel, State, orthogonalize_modes, regularized_ratio
from .options import PtychoOptions

__all__ = ["Run"]

log = logging.getLogger(__name__)


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
        #: Why the last stage ended: "converged", "diverged" or "max_iterations" (set by run_chain).
        self.stop_reason = "max_iterations"
        self.stage_start = 0
        self.converged = False
        self.progress = progress
        self.progress_offset = progress_offset
        self.progress_total = progress_total or total_iterations
        self.rng = rng or np.random.default_rng(0)
        self.position_history: list[float] = []
        #: Unitary matrix of the last mode orthogonalisation (solvers with per-mode state apply it).
        self.mode_mixing = np.ones((1, 1), np.complex64)
        self.probe_window = None
        if options.probe.support is not None:
            # Soft real-space probe support exp(−(r/R)^8), r in half-widths, R = options.probe.support.
            y, x = np.indices((model.h, model.w), dtype=np.float32)
            r = np.hypot((y - model.h // 2) / (model.h / 2), (x - model.w // 2) / (model.w / 2))
            self.probe_window = np.exp(-(r / options.probe.support) ** 8).astype(np.float32)
        model.set_positions(state.positions_px)
        self.probes = model.shifted_probes(state.probe)

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
        return p.refine and self.iteration >= p.start and (self.iteration - p.start) % p.every == 0

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
        steps -= steps.mean(axis=0)
        new = self.state.positions_px + steps
        outside = self.model.out_of_bounds(new)
        new[outside] = self.state.positions_px[outside]
        self.state.positions_px = new
        self.model.set_positions(new)
        self.probes = self.model.shifted_probes(self.state.probe)  # the bins in use may have changed
        self.position_history.append(float(np.sqrt(np.mean(np.sum(steps ** 2, axis=1)))))

    # ------------------------------------------------------------------------------ iteration
    def end_iteration(self, err: float, total: float) -> bool:
        """Record the error of the iteration just done; False when the run must stop."""
        error = float(err / total) if total > 0 else math.nan
        self.errors.append(error)
        self.iteration += 1
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
        if self._has_converged():
            self.converged = True
            self.stop_reason = "converged"
            log.info("ptycho stage converged at iteration %d (error %.4g)", self.iteration, error)
            return False
        return True

    def start_stage(self) -> None:
        """Mark the start of a solver stage (the convergence rule looks at this stage only)."""
        self.stage_start = self.iteration
        self.converged = False
        self.stop_reason = "max_iterations"

    def _has_converged(self) -> bool:
        """The windowed error of this stage fell by less than ``convergence.tolerance``."""
        c = self.options.convergence
        done = self.iteration - self.stage_start
        if c.tolerance <= 0 or done < max(c.min_iterations, 2 * c.window):
            return False
        recent = self.errors[-c.window:]
        before = self.errors[-2 * c.window:-c.window]
        new, old = float(np.mean(recent)), float(np.mean(before))
        return math.isfinite(new) and math.isfinite(old) and old - new < c.tolerance * old
