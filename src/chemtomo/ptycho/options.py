"""Options of the ptychographic solvers: small frozen dataclasses with documented defaults.

``PtychoOptions`` bundles them; ``reconstruct`` takes one (``options=``) and its own keywords
(``n_modes``, ``background``, ``refine_positions``) override the matching fields. Every option is
validated by ``validate_options`` before any work begins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass

from ..core.errors import InputError

__all__ = [
    "BackgroundOptions",
    "ConvergenceOptions",
    "DMOptions",
    "DivergenceOptions",
    "LSQMLOptions",
    "MLOptions",
    "PIEOptions",
    "PositionOptions",
    "ProbeOptions",
    "PtychoOptions",
    "RAAROptions",
    "ZonePlateOptions",
    "validate_options",
]


@dataclass(frozen=True)
class RAAROptions:
    """Relaxed averaged alternating reflections (Luke, Inverse Problems 21, 37 (2005)).

    beta : relaxation β in (0, 1]. The iteration is
        ψ ← β [ψ + P_F(2 P_O ψ − ψ) − P_O ψ] + (1 − β) P_O ψ,
        with P_O the overlap and P_F the Fourier-modulus projection; β = 1 is difference map,
        smaller β pulls towards the current consistent estimate P_O ψ (more stable with noisy
        data, slower to converge). Default 0.75, the middle of the usual 0.7–0.9 range. Measured
        trade-off: on the dense benchmark scan (400 frames of 128², 10⁶ photons/frame) β = 0.5
        ends less noisy (error against the truth 0.031 vs 0.0345 after 50 iterations), but on
        sparse scans (e.g. one half of a split-half FRC) it converges several times slower.
    """

    beta: float = 0.75


@dataclass(frozen=True)
class DMOptions:
    """Difference map (Thibault et al., Science 321, 379 (2008)); no parameter of its own beyond
    the overlap regularisation shared by all projection solvers (``PtychoOptions.object_reg``)."""


@dataclass(frozen=True)
class PIEOptions:
    """ePIE / rPIE / mPIE (Maiden & Rodenburg 2009; Maiden, Johnson & Li, Optica 4, 736 (2017)).

    alpha_object : rPIE mixing α of the object step ``conj(P) Δψ / ((1 − α)|P|² + α max|P|²)``;
                   0.1 as recommended for rPIE (rPIE and mPIE use it). ePIE uses α = 1 whatever
                   is set here.
    alpha_probe  : the same for the probe step.
    batch_size   : frames updated together (their steps are summed and normalised jointly);
                   1 is the classic sequential PIE, larger batches make each FFT call efficient
                   at a small cost in convergence per iteration. None: a tenth of the frames,
                   between 4 and 64.
    momentum     : mPIE's feedback γ (Maiden, Johnson & Li 2017): the fraction of the momentum
                   added after every batch; 0.3 as in the paper. Used by mPIE only.
    friction     : mPIE's friction η, how much of the previous momentum is kept; 0.7 as in the
                   paper. Used by mPIE only.
    group_bins   : deal each iteration's frames into batches grouped by sub-pixel shift bin
                   (``pie.pie_batches``; a batch then needs the probe in one or two shifts
                   instead of most of the sixteen: 0.8× the time per iteration at 128²);
                   False: random batches.
    """

    alpha_object: float = 0.1
    alpha_probe: float = 0.1
    batch_size: int | None = None
    momentum: float = 0.3
    friction: float = 0.7
    group_bins: bool = True


@dataclass(frozen=True)
class MLOptions:
    """Poisson maximum-likelihood refinement by preconditioned conjugate gradients.

    newton_steps : Fisher-scoring (Newton with the expected curvature) iterations of the line
                   search along each direction.
    precond_reg  : relative regularisation of the illumination preconditioner
                   ``1 / (Σ|P|² + reg·max Σ|P|²)``.
    """

    newton_steps: int = 3
    precond_reg: float = 0.05


@dataclass(frozen=True)
class LSQMLOptions:
    """LSQML (``lsqml.py``; Odstrčil, Menzel & Guizar-Sicairos 2018).

    momentum : gain γ of the epoch momentum (``lsqml.EpochMomentum``): after every iteration the
               object takes γ times its previous total step again, where the illumination is
               strong and while successive iterations' steps point the same way and the error
               falls (else the momentum restarts from zero). 0 (default) turns it off: on the
               regime matrix (seed 0, the 10 cells where the default runs LSQML) γ = 0.5 and 0.9
               moved the OD error by −2 % to +3 % and no cell stopped much earlier; on the
               measured Siemens star γ = 0.9 gives after 30 iterations the FRC that 35–40 give
               without it (2.12 against 2.26 px), too little to pay for the risk.
    max_step : largest per-frame optimal step (α_O, α_P). None (default): ``lsqml.step_cap``, 1
               below 50 mean counts per detector pixel, where short steps keep the noise out, and
               2 from there up, where they would hold LSQML to about half the least-squares step.
    """

    momentum: float = 0.0
    max_step: float | None = None


@dataclass(frozen=True)
class ProbeOptions:
    """Probe refinement.

    refine       : update the probe at all.
    start        : first iteration (counting across a chained run) at which it is updated. 0 (the
                   default, as in ePIE): from the start; a wrong guess (a flat disc, a probe twice
                   too broad) left fixed for even two iterations imprints itself on the object,
                   which then never recovers (OD error 8.4 instead of 0.16 on a zone plate started
                   from a disc, benchmarks/ptycho_regimes.py).
    n_modes      : number of incoherent probe modes (orthogonalised after every update).
    mode_power   : initial power of each extra mode as a fraction of the first mode's.
    match_scale  : resize a given probe guess (the file's or an array) whose far field disagrees
                   with the mean diffraction pattern (``probe.match_probe_scale``): a guess twice
                   too broad is otherwise not recovered from (OD error 0.27 instead of 0.03 on a
                   Gaussian probe, tests/ptycho/test_default.py).
    support      : optional soft real-space support of the refined probe, ``exp(−(r/R)^8)``
                   with r the distance from the frame centre in half-widths and R = ``support``
                   (e.g. 0.9); it stops probe growth at the frame edges, where the overlap
                   constraint is weakest. None (default): no support.
    defocus_at   : iteration (counting across a chained run) at which the run checks whether the
                   file's guess is the true probe out of focus (``engine.Run.defocus_check``):
                   with the object reconstructed so far, the guess is carried along the beam to
                   the distance that best fits the data (``probe.fit_probe_defocus``, a
                   one-parameter search on up to 64 frames); where that carried guess fits the
                   data better than the guess by more than the probe's noise-fitting allowance
                   A = F·2·n_modes·h·w / n (F the Poisson floor, n the valid pixels) and the probe
                   refined so far fits no better than it by more than ``defocus_margin``·A (on
                   noise-limited data; A elsewhere), the run starts over
                   from the carried guess (``info["probe_defocus"]``; ``stage_iterations`` lists
                   the stages run before and after; the chain's counts then bound the new
                   pass, so a run does at most ``defocus_at`` iterations more than they sum
                   to). 50 (default): the end of the mid-dose chain's LSQML start. On the regime matrix (twenty seeds, every chemtomo code
                   with it, docs/results/ptychography.md "Session 16") the default's mean OD
                   error fell 15 % on the Gaussian probe at 6 counts per pixel (cell 8: within
                   5 % of the best code at last) and 30 % on it at 10⁶ photons (cell 9),
                   2.5–3 % in cells 7 and 15, and rose in no cell (held-out seeds 20–24
                   alike); the carried guess overlaps the true probe 0.995–1.0 where the guess
                   did 0.9. The second condition keeps it from flat-disc and broad guesses,
                   which a restart ruins. Photon counts only (it needs the floor); 0 turns it
                   off.
    defocus_margin : how many allowances A the probe refined so far may fit the data better
                   than the carried guess for the defocus check to start over (its second
                   condition), where the data are noise-limited (the carried guess's misfit
                   within ``engine.NOISE_LIMITED_MISFIT`` = 4 times the floor; elsewhere one
                   A). The refined probe's lead is measured with the object refined alongside
                   it, which has adapted to that probe and not to the carried guess, so a guess
                   wrong only in its focus can leave it a few A ahead. On the regime matrix
                   (docs/results/ptychography.md, "Session 21"; the checks whose carried guess
                   fitted better than the guess and that did not restart at 1 A): 1.0–4.6 A (one
                   7.6 A) on guesses wrong only in their focus (cells 0, 4, 9, 18), 23–28 A on
                   the pinhole (cell 12), 58–77 A on the broad Gaussian guess (cell 10), 150 A
                   and more from flat discs (cells 6, 14, 20); at 10⁹ photons (cell 2, misfits
                   61–74 F, so one A there) 9.3–155 A. 10 (default) lies in the gap between 7.6
                   and 23. At 1 (the rule until session 21) a Gaussian probe from a defocused
                   guess at 5.5 counts per pixel on 64² frames ended at OD error 0.720, from the
                   exact guess at 0.560 (seeds 0–4); at 10 it restarts and ends at 0.554.
    far_field_min : least similarity of a given guess's far field to the data's (the mean
                   diffraction pattern's square root, ``probe.match_probe_scale``, after its size
                   match) for it to be used at all. Below it the guess is not the beam that made
                   the data (a flat disc where a zone plate's annulus lit the detector: 0.2–0.3;
                   guesses right but for their focus or size reach 0.87–0.999 on the regime
                   matrix), and the probe is estimated from the data instead, as where the file
                   holds no guess: the mean pattern's square root with a flat far-field phase
                   (``probe.probe_from_diffraction``), carried to the distance along the beam
                   whose object, reconstructed alone, fits the data best
                   (``reconstruct._fit_data_probe``; ``info["probe_from_data"]``). 0.5 (default);
                   0 keeps every guess.
    """

    refine: bool = True
    start: int = 0
    n_modes: int = 1
    mode_power: float = 0.05
    match_scale: bool = True
    support: float | None = None
    defocus_at: int = 50
    defocus_margin: float = 10.0
    far_field_min: float = 0.5


@dataclass(frozen=True)
class BackgroundOptions:
    """Static additive background retrieval (incoherent background of SHARP, Marchesini et al.,
    J. Appl. Cryst. 49, 1245 (2016)): the model intensity is ``Σ_m |Ψ_m|² + b`` and ``b`` is
    updated each iteration by the expectation–maximisation step
    ``b ← b · mean_j I_j / (Σ_m|Ψ_jm|² + b)``, which keeps it non-negative.

    How the modulus projection of PIE and LSQML treats b (RAAR and DM always share):

    - ``"subtract"``: the coherent waves get the counts less the background,
      ``|Ψ'|² = max(I − b, 0)``;
    - ``"share"``: they get their expected share of the counts, ``|Ψ'|² = I·s / (s + b)`` (s the
      model's coherent intensity), the expectation step of the same mixture; where s ≪ b a photon
      is taken as background, so the high spatial frequencies that only background fills are not
      fitted to its noise;
    - ``"auto"`` (default): ``"share"`` where the data show a background (``noise.dim_background``:
      a constant background explains at least ``share_evidence`` of the counts of the dimmest
      quarter of the detector pixels), else ``"subtract"``.

    Measured on the regime matrix (seed 0, docs/results/ptychography.md, "Session 8"): with
    ``"share"`` on every scan, the demo's plates (a background of 0.27 photons per pixel, 0.8 of
    their dim pixels' counts) went from an OD error of 0.139 and 0.110 to 0.110 and 0.074 (RAAR:200,
    the best other code, 0.120 and 0.091) and the zone plate with a 2-photon background from 0.161
    to 0.149; but on scans without background, where the retrieved b is the model's misfit, it
    cost up to 35 % (zone plate at 10⁵ photons, 0.241 → 0.326). ``dim_background`` puts the
    scans with a background at 0.56–1.0 and those without at ≤ 0.12.

    retrieve       : estimate b at all (False: b = 0).
    start          : first iteration of the updates.
    projection     : "auto", "subtract" or "share" (above).
    share_evidence : with "auto", the background fraction of the dim pixels' counts from which
                     the projection shares.
    """

    retrieve: bool = True
    start: int = 5
    projection: str = "auto"
    share_evidence: float = 0.5


@dataclass(frozen=True)
class PositionOptions:
    """Scan-position refinement from the exit-wave residual: per frame, the least-squares shift
    δ = (δy, δx) that explains ``ψ − P·O`` (ψ the exit wave after the modulus projection) by
    ``P·∂O/∂y δy + P·∂O/∂x δx``, from the 2×2 normal equations (``_kernels.solve_shift``).

    On by default (session 7), in the chain's last stage that refines, from its 10th iteration, and
    without the updates' affine part (``engine.affine_free_steps``): a common shift, scale, shear
    or rotation of all frames is what a wrong probe or object pixel size mimics, and refining
    from the first stage moved the positions of scans that had none (regime matrix, seed 0: OD
    error up to 16 % worse where the probe guess was poor). Measured with the default chains
    (docs/results/ptychography.md, "Session 7"): the cells with 1 px random position errors went
    from 0.845 to 0.381 and 1.128 to 0.669 (seed 0), 0.859 to 0.428 and 1.121 to 0.495 (held-out
    seed 1; the best other code 0.771 and 1.025); every other cell of either seed moved by
    −6 % to +2.3 %. On small scans without position errors (36 frames of 32²) the default's error
    rose by 0–14 % (``tests/ptycho/test_default.py`` holds it to its 3σ bound).

    Done by ePIE, rPIE, mPIE and LSQML, whose residual is taken against the data's projection.
    RAAR and DM refine only with ``projection_solvers``: on 36 frames of 32² with exact positions
    their split-half FRC went from 31 to 116 nm with steps from their update wave (the relaxed
    reflection), and to 107 nm with steps from the data's projection (measured with an extra
    inverse FFT, session 7). Their detector-plane iterate Ψ carries each frame's wave from one
    iteration to the next, and a moved frame's Ψ no longer belongs to its position. ML keeps the
    positions it is given.

    refine             : refine at all.
    start              : first iteration of the updates (the object must show structure first),
                         counted from the start of the last stage when ``final_stage_only``.
    every              : update every this many iterations.
    max_step_px        : largest position change of one frame per update, object pixels.
    affine_free        : remove the least-squares affine part of every update (else only its
                         mean: a common shift of every position is never measurable).
    final_stage_only   : refine in the chain's last stage that refines positions only (its probe
                         is then close to right): the last stage, or the last PIE/LSQML stage of a
                         chain that ends in RAAR or DM (``algorithms.last_refining_stage``).
    projection_solvers : also refine in RAAR and DM stages.
    trial_rms_px       : with ``final_stage_only``, a PIE or LSQML stage between the chain's first
                         stage and its last refining stage (the default's rPIE after the LSQML
                         start) computes the positions' first update at its ``start``th iteration
                         and goes on refining only where that update, affine part removed, moves
                         them by more than this RMS (pixels); else it is not applied and the
                         positions are left to the last stage (the same bits as without a trial).
                         0 turns the trial off. Regime matrix, 15 seeds (docs/results/ptychography.md,
                         "Session 14"): the first update asks for 0.107–0.193 px on the cell whose
                         file positions are off by 1 px RMS, at most 0.064 px on every other cell;
                         there the default went from OD error 0.617 to 0.545 on the mean (best of
                         every code), every other cell unchanged.
    """

    refine: bool = True
    start: int = 10
    every: int = 2
    max_step_px: float = 0.5
    affine_free: bool = True
    final_stage_only: bool = True
    projection_solvers: bool = False
    trial_rms_px: float = 0.08


@dataclass(frozen=True)
class DivergenceOptions:
    """When to stop a run that diverges: the error metric has stayed more than ``tolerance``
    (relative) above its best value for ``patience`` consecutive iterations, or is not finite.
    The best state is then restored and a warning says so."""

    patience: int = 40
    tolerance: float = 0.5


@dataclass(frozen=True)
class ConvergenceOptions:
    """When a solver stage has converged and stops by itself (its iteration count is a maximum).

    The error metric (``engine.py``) of the last ``window`` iterations, averaged, is compared with
    the average of the ``window`` iterations before and with the Poisson noise floor F of the
    data (``noise.amplitude_floor``: the metric's expected value at the true object and probe,
    from the measured counts). The stage has converged (the next stage of the chain starts, or
    the run ends with ``info["stop_reason"] = "converged"``) when

    - after one window, the windowed error is within ``floor_sigmas`` standard deviations (or
      F's systematic uncertainty, if larger) of the misfit of the best fit, F·(1 − p/n): a fit
      of p free parameters to n data absorbs p of the noise terms (χ² with n − p degrees of
      freedom), so a run there has fitted all the data can tell (on the regime matrix this
      changed 1 run of 69: runs rarely get there before their error levels off); where the data
      hold fewer than ``discrepancy_counts`` counts per pixel, of F itself (Morozov's
      discrepancy principle, which stops before the noise is fitted: 3–6× fewer LSQML
      iterations at 2–10 counts per pixel on 32² frames, at 1–11 % more error; on 128²–256²
      frames it stopped LSQML too early, 12–26 % more error, so it is off by default);
    - or, after two windows and ``min_iterations`` (``later_min_iterations`` in a stage after the
      chain's first), it fell by less than ``tolerance`` of
      itself (the rule for data without a known floor, i.e. not photon counts, and for every
      stage whose error stays above the floor: high doses, model mismatch, a stochastic
      solver's plateau);
    - or, only when ``noise_fit`` > 0, it fell by less than ``noise_fit`` × (p / n)·F over the
      last window (p free parameters, n data pixels: fitting p parameters to pure noise lowers
      the misfit by (p / n)·F). Off by default: measured with ``noise_fit = 1`` (and p counted
      over the pixels lit above 1 % of the peak), the measured Siemens star stops after 55
      iterations instead of 103, but rPIE also stops while a slow start is still converging
      (regime matrix, seed 0: Gaussian probe 0.33 against 0.28; the pinhole cell's rPIE would
      end at an OD error of 1.22 that runs on to 0.25). docs/results/ptychography.md, "Session 4".

    The split-half rule (off by default: ``resolution_tolerance = 0``), with ``reconstruct(frc=True)``
    only: the full scan and its even and odd halves run side by side, and every ``window``
    iterations (after ``min_iterations``) the information the halves share is measured from their
    FRC (``reconstruct.split_half_information``, bits). Where it grew by less than
    ``resolution_tolerance`` over the last window, a run in its chain's last stage whose own
    windowed error fell by less than ``resolution_error_fall`` stops ("resolution"). The checks
    happen at fixed iterations on the halves alone, so where a run stops does not depend on
    timing. Measured on the regime matrix (seed 0, docs/results/ptychography.md, "Session 5"):
    with 0.02 and the ½-bit resolution instead of the information, no error gate, runs stopped
    1.1–4× earlier and 4 cells of 24 improved by 2–14 %, but on sparse scans (18 or 12 frames per
    half) the halves level off while the full scan still converges: OD error +35–40 %; with the
    information and a 1 % (0.5 %) error gate, one of them still lost 13 % (3 %), and the measured
    Siemens star, whose halves keep gaining 2 % per 10 iterations up to 90, stopped no earlier.
    Hence off by default.

    ``tolerance = 0`` disables every rule (each stage runs its full count, the defocus check
    still runs); ``noise_floor = False`` keeps only the relative fall. ``Run.convergence_rule``
    and ``info["convergence_rule"]`` say which rule stopped the last stage.

    window         : iterations averaged on each side of the comparison.
    tolerance      : relative fall of the windowed error below which the stage has converged.
    min_iterations : fewest iterations of the chain's first stage before the relative-fall rule
                     applies (a slow start, e.g. from a poor probe guess, is not a plateau).
    later_min_iterations : the same for every later stage, which starts from its predecessor's
                     converged state; None (default): ``min_iterations``; 0: the rule's two
                     windows alone. Session 15
                     (docs/results/ptychography.md): 0 stopped the measured Siemens star's ePIE
                     stage, flat after 3 iterations, after 21 instead of 30 (the command 0.95×
                     the time, the same FRC) and ran 2.6 % fewer iterations on the regime matrix,
                     but on held-out seeds 20–24 the default's mean OD error rose by 2–2.5 % in
                     cells 2, 9, 10 and 20 (shorter noise averaging, fewer position updates in
                     the last stage); seeds 0–19: cell 20 +1.3 %, the others unchanged. Hence None.
    noise_floor    : stop at the Poisson floor (photon-counting data only; ignored otherwise).
                     The floor itself is computed either way: the defocus check
                     (``ProbeOptions.defocus_at``) sizes its allowance from it.
    floor_sigmas   : how many standard deviations of the floor count as reaching it.
    noise_fit      : multiple of the noise-fitting gain (p / n)·F below which a window's fall
                     counts as a plateau; 0 (default) leaves this rule off.
    discrepancy_counts : mean counts per valid detector pixel below which the floor rule stops
                     at F (the discrepancy principle) instead of F·(1 − p/n).
    resolution_tolerance : relative growth of the halves' shared information per window below
                     which the split-half rule may stop the last stage (``frc=True`` only); 0
                     (default) turns the rule off.
    resolution_error_fall : the split-half rule's gate: a run stops only once its own windowed
                     error falls by less than this (relative) per window.
    average        : when the chain's last stage stops converged and its solver is a PIE, LSQML
                     or a projection solver (``algorithms.AVERAGED_SOLVERS``), return the moving
                     average of its objects (``Run.object_average``: exponential, weight
                     2 / (window + 1), the noise reduction of a mean of the last ``window``
                     iterates) instead of the last one. At convergence those iterates fluctuate
                     about the solution (PIE's full steps in random order, RAAR's and DM's
                     oscillation); averaging them (Polyak–Ruppert; DM codes average their last
                     iterates the same way) removes that part of the error. On the regime matrix
                     (seeds 0 and 1, docs/results/ptychography.md, "Session 11"): up to 3 % less
                     OD error, at most 0.6 % more in any cell. A stage that stops at its
                     iteration count (still changing) or diverges keeps its last (best) object;
                     ML is not averaged, LSQML is since session 13 (see ``AVERAGED_SOLVERS``).
    """

    window: int = 10
    tolerance: float = 2e-3
    min_iterations: int = 30
    noise_floor: bool = True
    floor_sigmas: float = 3.0
    noise_fit: float = 0.0
    discrepancy_counts: float = 0.0
    resolution_tolerance: float = 0.0
    resolution_error_fall: float = 0.01
    later_min_iterations: int | None = None
    average: bool = True


@dataclass(frozen=True)
class ZonePlateOptions:
    """Zone-plate parameters for the initial probe ``probe="zone_plate"`` (see
    ``zone_plate_probe``; paper: 100 nm outer zone). ``defocus_m=None`` picks a beam of 0.3 of
    the frame's field of view."""

    outer_zone_m: float = 100e-9
    diameter_m: float = 240e-6
    central_stop: float = 0.4
    defocus_m: float | None = None


@dataclass(frozen=True)
class PtychoOptions:
    """All solver options.

    object_reg : relative regularisation λ/max(Σ|P|²) of the overlap projection's object update
                 (``(Σ P* ψ + λ O) / (Σ |P|² + λ)``); the probe update uses the same form.
    subpixel   : sub-pixel positions are honoured to 1/subpixel pixel (exact Fourier shifts of
                 the probe, subpixel² of them); 1..16, or 0 (default): from the data's signal
                 counts per valid detector pixel (``reconstruct.subpixel_for_counts``: 4 below
                 100, 8 up to 10⁴, 16 from there). A position rounded to its bin is a model
                 error that grows with the counts while the photon noise shrinks: on the regime
                 matrix's cells whose true positions are off the pixel grid (cells 24–31;
                 docs/results/ptychography.md, "Session 32") ¼-px bins left the OD error at
                 0.035–0.055 at 10⁹ photons per frame where 1/16 px gives 0.009–0.018, and 0.087
                 at 10⁷ photons on 64² where ⅛ px gives 0.057; at 10⁶ photons (about 230 counts
                 per pixel) ⅛ px is 3–7 % better, which is what kept the default within 5 % of
                 pty-chi given exact positions (session 33). Below 100 counts per pixel finer
                 bins gained at most 2 % for 1.2× the time (a frame in a bin of its own costs
                 two more probe transforms per iteration), so ¼ px stays there.
    likelihood : the detector-plane update of PIE and LSQML (RAAR, DM and ML keep their own).
                 ``"amplitude"`` (default): the waves take the measured modulus, ``f = √(I/μ)``
                 (μ the model intensity), the Gaussian likelihood of √I. ``"poisson"``: the
                 Poisson likelihood's gradient step of length ½, ``f = min((1 + I/μ)/2, 3)``
                 (``_kernels.modulus_project_1``), unbiased where the amplitude's fixed
                 point ``E[√I] = √μ`` puts dim pixels' model intensity below their mean; one probe
                 mode only. Measured (docs/results/ptychography.md, "Session 22"): on simulated
                 scans with 50–1,000 counts per pixel and dense overlap (steps ≤ 0.35 of the
                 probe's diameter) 3–40 % lower OD error (held out: 3–18 % on five regime cells); at
                 ≤ 24 counts per pixel, a step of 0.5, 1 px position errors or ≥ 2,000 counts per
                 pixel up to 1.7× higher; on the measured Siemens star a coarser FRC (1.91 against
                 1.80 px). Not the default: it helps only where the data are many and the model is
                 right, and the one measured scan prefers the amplitude.
    frc_weighting : the returned object filtered ring by ring by its split-half FRC, with
                 Rosenthal & Henderson's weight √(2 FRC / (1 + FRC)) (``postprocess.frc_weight``).
                 ``"auto"`` (default): where the default chooses its low-dose chain
                 (``LOW_DOSE_ALGORITHM``: below 50 counts per detector pixel, photon noise limits
                 the image), the even and odd frames are reconstructed too (with ``frc=False``
                 as well) and the object is weighted; ``"on"``: with any chain (the halves are
                 reconstructed); ``"off"``: never. At a few counts per pixel the converged
                 solvers fit the photon noise (the error rises after the first iterations,
                 docs/results/ptychography.md, "Session 24"); the halves measure, ring by ring,
                 how much of the image is signal. Measured (docs/results/ptychography.md,
                 "Session 25"): on the regime cells below 50 counts per pixel the mean OD error
                 falls by 1–14 % (6 counts per pixel on 128² frames: 0.856 → 0.741 on held-out
                 seeds 20–44) but on one, a dense scan at 24 counts per pixel (+0.4 %). Above
                 them, where half the frames overlap too little or converge less far than all of
                 them (steps of 0.6 of the probe, 10⁹ photons), the halves' FRC understates the
                 full scan's and the weight cost up to 5×: hence the low-dose chain only. Costs
                 the two halves' reconstructions there (1.5–3.4× the time).
    oversample : the model's grid, in object pixels per detector-grid pixel. 1: the
                 detector's own grid, as in every far-field code; there the exit wave P·O, whose
                 spectrum is twice the detector's band, aliases back into the detector. m = 2–4:
                 the frames padded with unmeasured pixels to an m times finer grid, the object
                 band-limited to the detector's band, the results returned on the detector's grid
                 (``finegrid.py``). Measured with the default chain on the regime cells made by
                 other forward models (32–39, seeds 0–2; docs/results/ptychography.md, "Session
                 36"): at 10⁹ photons per frame the OD error falls 1.4–3.8× (frames without
                 aliasing: zone plate 0.146 → 0.054, pinhole 0.094 → 0.024), at 10⁶ by −13 % to
                 +8 %. Costs m² the transforms and the frames' memory (5.5–8× the time); on
                 frames made with the one grid's aliasing (chemtomo's simulator) it is the wrong
                 model, 11–17× the error at 10⁹. Hence never 2 by default. 0 (default): from the
                 fit: the detector's grid, and where that run ends at
                 ``reconstruct.MODEL_LIMITED_FLOORS`` times its Poisson floor or more (the model,
                 not the noise, limits it) the scan again on a grid twice as fine, the better fit
                 kept (``info["oversample_rule"]``). On the regime matrix (seeds 0–19, cells 0–31:
                 docs/results/ptychography.md, "Session 36") cells 20 (1 px position errors at 10⁹
                 photons) and 27 (10⁹, off the pixel grid) reach 20× the floor on every seed: the
                 finer grid was kept on 3 of cell 20's seeds, each with a lower OD error (0.57 →
                 0.41, 0.70 → 0.59, 0.64 → 0.60), and refused on the other 37 runs, among them
                 every one where its image was the worse (cell 27: 0.01 → 0.13); on the 10⁹-photon
                 frames made without the one grid's aliasing or from shifted object patches
                 (cells 33, 35, 37, 39; 31–590× the floor) it is kept. Every other scan runs once,
                 the same bits as 1. Since session 38 the finer grid's run starts from the
                 positions the first run refined (its object and probe from the guess, as
                 before): cell 20 keeps the finer grid on 9 of its 20 seeds, mean OD error 0.502
                 → 0.456 (docs/results/ptychography.md, "Session 38").
    """

    raar: RAAROptions = field(default_factory=RAAROptions)
    dm: DMOptions = field(default_factory=DMOptions)
    pie: PIEOptions = field(default_factory=PIEOptions)
    ml: MLOptions = field(default_factory=MLOptions)
    lsqml: LSQMLOptions = field(default_factory=LSQMLOptions)
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    background: BackgroundOptions = field(default_factory=BackgroundOptions)
    positions: PositionOptions = field(default_factory=PositionOptions)
    divergence: DivergenceOptions = field(default_factory=DivergenceOptions)
    convergence: ConvergenceOptions = field(default_factory=ConvergenceOptions)
    zone_plate: ZonePlateOptions = field(default_factory=ZonePlateOptions)
    object_reg: float = 1e-3
    subpixel: int = 0
    likelihood: str = "amplitude"
    frc_weighting: str = "auto"
    oversample: int = 0


def _check(cond: bool, name: str, expected: str, value) -> None:
    if not cond:
        raise InputError(f"ptycho options: {name} must be {expected}, got {value!r}")


def validate_options(options: PtychoOptions) -> None:
    """Raise InputError naming the first option with an impossible value."""
    if not isinstance(options, PtychoOptions):
        raise InputError(f"ptycho options: expected a PtychoOptions, got {type(options).__name__}")
    for f in fields(options):
        value = getattr(options, f.name)
        if is_dataclass(value):
            for g in fields(value):
                v = getattr(value, g.name)
                if isinstance(v, float) and not math.isfinite(v):
                    raise InputError(f"ptycho options: {f.name}.{g.name} must be finite, got {v!r}")
    o = options
    _check(0 < o.raar.beta <= 1, "raar.beta", "in (0, 1]", o.raar.beta)
    _check(0 <= o.pie.alpha_object <= 1, "pie.alpha_object", "in [0, 1]", o.pie.alpha_object)
    _check(0 <= o.pie.alpha_probe <= 1, "pie.alpha_probe", "in [0, 1]", o.pie.alpha_probe)
    _check(o.pie.batch_size is None or o.pie.batch_size >= 1, "pie.batch_size", "None or a positive integer",
           o.pie.batch_size)
    _check(0 <= o.pie.momentum < 1, "pie.momentum", "in [0, 1)", o.pie.momentum)
    _check(0 <= o.pie.friction < 1, "pie.friction", "in [0, 1)", o.pie.friction)
    _check(o.ml.newton_steps >= 1, "ml.newton_steps", "a positive integer", o.ml.newton_steps)
    _check(o.ml.precond_reg > 0, "ml.precond_reg", "positive", o.ml.precond_reg)
    _check(o.probe.n_modes >= 1, "probe.n_modes", "a positive integer", o.probe.n_modes)
    _check(o.probe.start >= 0, "probe.start", "non-negative", o.probe.start)
    _check(0 <= o.probe.far_field_min < 1, "probe.far_field_min", "in [0, 1) (0: keep every guess)",
           o.probe.far_field_min)
    _check(o.probe.defocus_margin >= 0, "probe.defocus_margin", "a non-negative number of noise allowances",
           o.probe.defocus_margin)
    _check(o.probe.defocus_at >= 0, "probe.defocus_at", "a non-negative iteration (0: no defocus check)",
           o.probe.defocus_at)
    _check(0 < o.probe.mode_power < 1, "probe.mode_power", "in (0, 1)", o.probe.mode_power)
    _check(o.probe.support is None or 0 < o.probe.support <= 2, "probe.support", "None or in (0, 2]",
           o.probe.support)
    _check(o.background.start >= 0, "background.start", "non-negative", o.background.start)
    _check(o.likelihood in ("amplitude", "poisson"), "likelihood", "'amplitude' or 'poisson'", o.likelihood)
    _check(o.likelihood == "amplitude" or o.probe.n_modes == 1, "likelihood",
           "'amplitude' with several probe modes ('poisson' supports one mode)", o.likelihood)
    _check(o.background.projection in ("auto", "subtract", "share"), "background.projection",
           "'auto', 'subtract' or 'share'", o.background.projection)
    _check(0 <= o.background.share_evidence <= 1, "background.share_evidence", "in [0, 1]",
           o.background.share_evidence)
    _check(o.positions.start >= 0, "positions.start", "non-negative", o.positions.start)
    _check(o.positions.every >= 1, "positions.every", "a positive integer", o.positions.every)
    _check(o.positions.max_step_px > 0, "positions.max_step_px", "positive", o.positions.max_step_px)
    _check(o.positions.trial_rms_px >= 0, "positions.trial_rms_px", ">= 0", o.positions.trial_rms_px)
    _check(o.divergence.patience >= 1, "divergence.patience", "a positive integer", o.divergence.patience)
    _check(o.divergence.tolerance > 0, "divergence.tolerance", "positive", o.divergence.tolerance)
    _check(o.lsqml.momentum >= 0, "lsqml.momentum", ">= 0", o.lsqml.momentum)
    _check(o.lsqml.max_step is None or o.lsqml.max_step > 0, "lsqml.max_step", "None or positive",
           o.lsqml.max_step)
    _check(o.convergence.window >= 1, "convergence.window", "a positive integer", o.convergence.window)
    _check(o.convergence.tolerance >= 0, "convergence.tolerance", ">= 0", o.convergence.tolerance)
    _check(o.convergence.floor_sigmas >= 0, "convergence.floor_sigmas", ">= 0", o.convergence.floor_sigmas)
    _check(o.convergence.discrepancy_counts >= 0, "convergence.discrepancy_counts", ">= 0",
           o.convergence.discrepancy_counts)
    _check(o.convergence.noise_fit >= 0, "convergence.noise_fit", ">= 0", o.convergence.noise_fit)
    _check(o.convergence.resolution_error_fall >= 0, "convergence.resolution_error_fall", ">= 0",
           o.convergence.resolution_error_fall)
    _check(0 <= o.convergence.resolution_tolerance < 1, "convergence.resolution_tolerance", "in [0, 1)",
           o.convergence.resolution_tolerance)
    _check(o.convergence.min_iterations >= 0, "convergence.min_iterations", "non-negative",
           o.convergence.min_iterations)
    _check(o.convergence.later_min_iterations is None or o.convergence.later_min_iterations >= 0,
           "convergence.later_min_iterations", "None or non-negative", o.convergence.later_min_iterations)
    _check(o.frc_weighting in ("auto", "on", "off"), "frc_weighting", "'auto', 'on' or 'off'", o.frc_weighting)
    _check(o.object_reg > 0, "object_reg", "positive", o.object_reg)
    _check(isinstance(o.oversample, int) and not isinstance(o.oversample, bool) and 0 <= o.oversample <= 4,
           "oversample", "an integer in 1..4 (1: the detector's grid), or 0 (from the fit)", o.oversample)
    _check(0 <= o.subpixel <= 16 and int(o.subpixel) == o.subpixel, "subpixel",
           "an integer in 1..16, or 0 (from the data's counts)", o.subpixel)
