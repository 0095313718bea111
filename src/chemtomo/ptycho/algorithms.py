"""Solver registry and the algorithm-string parser (``"DM:100,RAAR:300,ML:100"``).

Each entry of ``ALGORITHMS`` maps a name to a function ``(run, iterations, options)`` that runs
that many iterations of the solver on a ``Run``; a chain runs its stages in order on one state.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..core.errors import InputError
from .dm import run_dm
from .engine import Run
from .lsqml import run_lsqml
from .ml import run_ml
from .options import PtychoOptions
from .pie import default_batch_size, run_pie
from .raar import run_raar

__all__ = ["ALGORITHMS", "BACKGROUND_ALGORITHM", "DEFAULT_ALGORITHM", "LOW_DOSE_ALGORITHM",
           "MID_DOSE_ALGORITHM", "PAPER_ALGORITHM", "default_chain", "is_default", "parse_algorithm", "run_chain"]

#: The default, the same for ``chemtomo ptycho``, ``ptycho.reconstruct``, ``chemtomo run`` and every
#: preset: a rule on the measured data (``default_chain``) that picks one of the chains below
#: per scan, before any iteration; ``Projection.info["algorithm"]`` records the chain it picked
#: and ``info["default_rule"]`` why. Chosen on the regime matrix of ``benchmarks/ptycho_regimes.py``
#: (seed 0; docs/results/ptychography.md, "Session 4"). Each chain's counts are maxima: a stage
#: stops by itself (``ConvergenceOptions``: the Poisson noise floor, or a flat error).
DEFAULT_ALGORITHM = "default"
#: The default's chain from ``LOW_DOSE_COUNTS`` counts per detector pixel up (and below it on
#: large frames, ``MID_DOSE_PHOTONS``): at most 50 LSQML iterations first (optimal object and probe
#: steps for every frame pull the probe from a wrong guess towards the data before any stochastic
#: step), then rPIE (steps normalised the rPIE way, α = 0.1: large, fast steps) until it has
#: converged, then ePIE (steps normalised by the brightest illumination: small steps that average
#: the photon noise down). Session 6, regime matrix: at 244 counts per pixel the LSQML start took
#: the Gaussian probe with a defocused guess from 0.278 to 0.237 (seed 0) and from 0.338 to 0.217
#: (seed 1), the broad guess from 0.176 to 0.153 and 0.197 to 0.169. Session 12, five seeds: it
#: also runs above 500 counts per pixel, where ``rPIE:300,ePIE:200`` alone used to run. There, from
#: a flat-disc guess of a Gaussian probe with 1 px position errors at 10⁹ photons, that chain ended at
#: OD error 1.18, 2.85 and 2.70 on three of five seeds (0.67 and 0.50 on the other two). The LSQML
#: start ended at 0.44–0.87 on all five, the best of every code on average; over ten seeds it ends
#: worse than no image (OD error above 1) once, the bright chain five times. On the bright cells where
#: both chains recover, the two are within 0.005 of each other on seeds 0–4 (0.0058 against 0.0062 on the
#: pinhole, 0.105 against 0.110 and 0.087 against 0.086 on the demo's scans, 0.009 against 0.008 on
#: the 10⁹-photon zone plate). It costs 1.5× the time on the demo's scans
#: (docs/results/ptychography.md, "Session 12"). Session 13: on these data LSQML's per-frame steps
#: may reach 2 (``lsqml.step_cap``), which took the zone plate to 0.008 on all ten seeds, kept
#: the Gaussian from a disc guess below 1 on all fifteen, and stops the LSQML start on the demo's
#: scans after 30 iterations (the demo 0.88× the time). Session 14: its rPIE stage refines the
#: positions too where its first update asks for it (``PositionOptions.trial_rms_px``, 1 px
#: position errors from 0.617 to 0.545 on fifteen seeds).
MID_DOSE_ALGORITHM = "LSQML:50,rPIE:300,ePIE:200"
#: The default's chain below ``LOW_DOSE_COUNTS``: LSQML (Odstrčil et al. 2018), whose optimal
#: steps reach the Poisson floor in a few iterations where PIE's stochastic steps hover ~15 %
#: above it; it then stops at the floor (more iterations fit the noise).
LOW_DOSE_ALGORITHM = "LSQML:300"
#: The default's chain where a detector background carries more than ``BACKGROUND_SHARE`` of the
#: counts: RAAR with background retrieval (the paper's solver; SHARP's incoherent background).
BACKGROUND_ALGORITHM = "RAAR:200"
#: Mean counts per valid detector pixel below which the default runs ``LOW_DOSE_ALGORITHM``
#: (seed 0 of the regime matrix: LSQML won every cell at ≤ 24 counts per pixel but one, lost
#: every cell at ≥ 244).
LOW_DOSE_COUNTS = 50.0
#: Photons per frame from which a scan below ``LOW_DOSE_COUNTS`` counts per pixel runs
#: ``MID_DOSE_ALGORITHM`` all the same: a large detector frame spreads many photons thinly. The
#: regime matrix's one such cell (zone plate, 10⁶ photons on 256² frames, 15 counts per pixel)
#: ends LSQML on a plateau at 0.530 (seed 0) and 0.545 (seed 1), where the mid-dose chain reaches
#: 0.490 and 0.498, the best of every code on both seeds; its cells at ≤ 10⁵ photons per frame
#: keep LSQML, which wins them. On the measured Siemens star (4.6·10⁵ photons per frame, 28 per
#: pixel) the mid-dose chain gives the same split-half FRC (1.79 px) in 0.9× the time. 3·10⁵ is
#: the geometric middle between the matrix's 10⁵ and 10⁶ (docs/results/ptychography.md,
#: "Session 10").
MID_DOSE_PHOTONS = 3e5
#: Share of the counts in a flat detector background above which the default runs
#: ``BACKGROUND_ALGORITHM`` (``noise.background_share``: 0.29 on the pinhole cell with 2
#: photons per pixel at 10⁴ photons per frame, ≤ 0.04 on every other cell).
BACKGROUND_SHARE = 0.1
#: The paper's solver (Yu et al. 2018): 500 RAAR iterations.
PAPER_ALGORITHM = "RAAR:500"


def _pie(alpha_fixed: float | None, with_momentum: bool = False):
    def run(run_: Run, iterations: int, options: PtychoOptions) -> None:
        o = options.pie
        batch = o.batch_size if o.batch_size else default_batch_size(run_.model.n_frames)
        run_pie(run_, iterations, alpha_object=alpha_fixed if alpha_fixed is not None else o.alpha_object,
                alpha_probe=alpha_fixed if alpha_fixed is not None else o.alpha_probe, batch_size=batch,
                momentum=o.momentum if with_momentum else 0.0, friction=o.friction, group_bins=o.group_bins)
    return run


#: Solver name -> function(run, iterations, options). Names are matched case-insensitively.
ALGORITHMS: dict[str, Callable[[Run, int, PtychoOptions], None]] = {
    "RAAR": lambda run, n, o: run_raar(run, n, o.raar.beta),
    "DM": lambda run, n, o: run_dm(run, n),
    "ePIE": _pie(1.0),
    "rPIE": _pie(None),
    "mPIE": _pie(None, with_momentum=True),
    "LSQML": lambda run, n, o: run_lsqml(run, n, batch_size=o.pie.batch_size or lsqml_batch_size(run.model.n_frames),
                                         momentum=o.lsqml.momentum, max_step=o.lsqml.max_step),
    "ML": lambda run, n, o: run_ml(run, n, newton_steps=o.ml.newton_steps, precond_reg=o.ml.precond_reg),
}

def lsqml_batch_size(n_frames: int) -> int:
    """LSQML's mini-batch: PIE's (a tenth of the frames, between 4 and 64). Measured on the regime
    matrix: a quarter of the frames converged more slowly (0.36 against 0.27 OD error on the
    Gaussian 10⁶-photon cell), since fewer, larger batches mean fewer updates per pass."""
    return default_batch_size(n_frames)


def is_default(text) -> bool:
    """True for the default's name (``DEFAULT_ALGORITHM``, any case and spacing)."""
    return isinstance(text, str) and text.strip().lower() == DEFAULT_ALGORITHM


def default_chain(mean_counts: float, background_share: float,
                  photons_per_frame: float | None = None) -> tuple[str, str]:
    """The chain the default runs on a scan, and why.

    Parameters
    ----------
    mean_counts : float
        Mean photon count per valid detector pixel over all frames (``noise.dose_summary``).
    background_share : float
        Share of the counts in a flat background (``noise.dose_summary``), in [0, 1].
    photons_per_frame : float or None
        Mean photons per frame (``mean_counts`` times the valid pixels); from
        ``MID_DOSE_PHOTONS`` on, a scan below ``LOW_DOSE_COUNTS`` counts per pixel takes the
        mid-dose chain. None: the counts per pixel alone decide.

    Returns
    -------
    (chain, reason) : the algorithm string and a sentence for the log and ``info["default_rule"]``.

    Examples
    --------
    >>> default_chain(2.4, 0.0)[0], default_chain(2.4, 0.3)[0], default_chain(220.0, 0.0)[0]
    ('LSQML:300', 'RAAR:200', 'LSQML:50,rPIE:300,ePIE:200')
    >>> default_chain(1.2e5, 0.0)[0], default_chain(15.0, 0.0, 15.0 * 256 ** 2)[0]
    ('LSQML:50,rPIE:300,ePIE:200', 'LSQML:50,rPIE:300,ePIE:200')
    """
    if background_share > BACKGROUND_SHARE:
        return BACKGROUND_ALGORITHM, (f"background carries {background_share:.0%} of the counts "
                                      f"(> {BACKGROUND_SHARE:.0%}): {BACKGROUND_ALGORITHM}")
    if mean_counts < LOW_DOSE_COUNTS:
        if photons_per_frame is not None and photons_per_frame >= MID_DOSE_PHOTONS:
            return MID_DOSE_ALGORITHM, (f"{mean_counts:.3g} counts per detector pixel (< {LOW_DOSE_COUNTS:g}) "
                                        f"but {photons_per_frame:.3g} photons per frame (≥ {MID_DOSE_PHOTONS:.3g}): "
                                        f"{MID_DOSE_ALGORITHM}")
        return LOW_DOSE_ALGORITHM, (f"{mean_counts:.3g} counts per detector pixel (< {LOW_DOSE_COUNTS:g}): "
                                    f"{LOW_DOSE_ALGORITHM}")
    return MID_DOSE_ALGORITHM, (f"{mean_counts:.3g} counts per detector pixel (≥ {LOW_DOSE_COUNTS:g}): "
                                f"{MID_DOSE_ALGORITHM}")


_STAGE = re.compile(r"^\s*([A-Za-z]+)\s*:\s*(\d+)\s*$")


def parse_algorithm(text: str) -> list[tuple[str, int]]:
    """Parse ``"NAME:ITERATIONS[,NAME:ITERATIONS...]"`` into ``[(name, iterations), ...]``.

    Names are case-insensitive and returned in their canonical spelling (see ``ALGORITHMS``);
    iterations are positive integers.

    Examples
    --------
    >>> parse_algorithm("dm:100, RAAR:300,ML:100")
    [('DM', 100), ('RAAR', 300), ('ML', 100)]
    """
    valid = ", ".join(ALGORITHMS)
    if is_default(text):
        raise InputError(f"algorithm {text!r} is chosen from the data (default_chain); ptycho.reconstruct "
                         "resolves it, parse_algorithm takes a chain such as 'RAAR:500'")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"algorithm must be a string like 'RAAR:500' or 'DM:100,RAAR:300,ML:100' "
                         f"(valid names: {valid}), got {text!r}")
    canonical = {name.lower(): name for name in ALGORITHMS}
    stages = []
    for part in text.split(","):
        match = _STAGE.match(part)
        if match is None:
            raise InputError(f"algorithm {text!r}: cannot parse {part.strip()!r}; expected NAME:ITERATIONS "
                             f"with NAME one of {valid} and ITERATIONS a positive integer")
        name, count = match.group(1), int(match.group(2))
        if name.lower() not in canonical:
            raise InputError(f"algorithm {text!r}: unknown name {name!r}; valid names: {valid}")
        if count < 1:
            raise InputError(f"algorithm {text!r}: {name} needs at least 1 iteration, got {count}")
        stages.append((canonical[name.lower()], count))
    return stages


#: Solvers that refine scan positions (``PositionOptions``); RAAR and DM only with
#: ``projection_solvers``.
POSITION_SOLVERS = frozenset({"ePIE", "rPIE", "mPIE", "LSQML"})

#: Solvers whose converged iterates fluctuate about the solution, so that the chain's result is
#: the moving average of its last stage's iterates when that stage is one of them
#: (``ConvergenceOptions.average``): PIE's full steps frame by frame in random order, the
#: projection solvers' oscillation (DM codes average their last iterates), and LSQML's
#: mini-batches (a batch's optimal step fits that batch's noise, the next batch's undoes part of
#: it). LSQML joined in session 13: where it stops converged at low dose its OD error then
#: wanders by ±1 % from iteration to iteration on a plateau (cell 5 of the regime matrix:
#: 0.241–0.246 over 200 more iterations), and the average over ten seeds was lower on 8 of the
#: 9 cells where the default runs LSQML alone (by up to 2.2 %: cell 13 0.253 → 0.247, cell 11
#: 0.752 → 0.740) and 0.3 % higher on the ninth, where no code recovers the object (held-out
#: seeds 10–14: lower on 7 of 9, ≤ 2 % higher on the two where no code recovers;
#: docs/results/ptychography.md, "Session 13"). Session 5 had found the average lagging (2–3 %
#: more error at 10⁴ photons on a Gaussian probe, three seeds), when LSQML stopped earlier. Not
#: ML, whose line-searched full-gradient steps approach the solution from one side.
AVERAGED_SOLVERS = frozenset({"ePIE", "rPIE", "mPIE", "LSQML", "RAAR", "DM"})


def last_refining_stage(stages: list[tuple[str, int]], projection_solvers: bool = False) -> int | None:
    """Index of the chain's last stage whose solver refines positions, or None.

    >>> last_refining_stage([("rPIE", 300), ("ePIE", 200), ("RAAR", 50)])
    1
    >>> last_refining_stage([("RAAR", 200)]), last_refining_stage([("RAAR", 200)], projection_solvers=True)
    (None, 0)
    """
    able = POSITION_SOLVERS | ({"RAAR", "DM"} if projection_solvers else set())
    hits = [i for i, (name, _) in enumerate(stages) if name in able]
    return hits[-1] if hits else None


def trial_position_stages(stages: list[tuple[str, int]], projection_solvers: bool = False) -> set[int]:
    """Stages that refine positions on trial (``PositionOptions.trial_rms_px``): those between the
    chain's first stage and its last refining stage whose solver refines positions.

    >>> sorted(trial_position_stages([("LSQML", 50), ("rPIE", 300), ("ePIE", 200)]))
    [1]
    >>> trial_position_stages([("LSQML", 300)]), trial_position_stages([("rPIE", 300), ("ePIE", 200)])
    (set(), set())
    """
    last = last_refining_stage(stages, projection_solvers)
    if last is None:
        return set()
    return {i for i, (name, _) in enumerate(stages) if 0 < i < last and name in POSITION_SOLVERS}


def run_chain(run: Run, stages: list[tuple[str, int]]) -> None:
    """Run the parsed stages in order on one ``Run``; each stage stops early when it has converged
    (``ConvergenceOptions``; the next stage starts), the chain when a stage diverged.
    ``run.stop_reason`` then says why the last stage ended. Where it converged and its solver is
    one of ``AVERAGED_SOLVERS``, the object is the moving average of that stage's iterates
    (``ConvergenceOptions.average``)."""
    p = run.options.positions
    refining = last_refining_stage(stages, p.projection_solvers)
    # a trial only matters where positions are otherwise refined in one stage (final_stage_only)
    trials = (trial_position_stages(stages, p.projection_solvers) if p.trial_rms_px > 0 and p.final_stage_only
              else set())
    i = 0
    while i < len(stages):
        name, count = stages[i]
        final = i == len(stages) - 1
        run.start_stage(final=final, positions=i == refining, average=final and name in AVERAGED_SOLVERS,
                        trial_positions=i in trials)
        ALGORITHMS[name](run, count, run.options)
        run.stage_iterations.append((name, run.iteration - run.stage_start))
        if run.diverged:
            return
        # the defocus check started the run over from a better probe (Run.defocus_check): the
        # chain runs again from its first stage, each stage with its full count
        i = 0 if run.stop_reason == "restart" else i + 1
    run.use_average()
