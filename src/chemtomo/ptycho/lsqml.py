"""LSQML: least-squares maximum-likelihood ptychography (Odstrčil, Menzel & Guizar-Sicairos 2018).

Each iteration visits all frames in mini-batches. For a batch of frames j:

1. **Detector plane.** The model far field ``Ψ_j = F[P·O_j]`` is moved to the maximum of the
   likelihood of the counts. The noise model is the Gaussian likelihood of the *amplitudes*,
   ``L = Σ_jq (|Ψ_jq| − √I_jq)²`` (background-corrected where one is retrieved): √ is the
   variance-stabilising transform of Poisson counts (Var √I ≈ ¼ for any mean), so this is the
   Poisson likelihood with its variance made uniform, and it stays well behaved at a few photons
   per pixel, where the intensity residual of the plain Poisson gradient is dominated by zeros.
   The exit-wave update ``χ_j = F⁻¹[√I Ψ/|Ψ|] − ψ_j`` is ``−½ ∂L/∂ψ_j*`` (see
   ``amplitude_cost``; a test checks it against finite differences).
2. **Least-squares update directions** (paper eqs. 19–25), preconditioned per pixel by the
   illumination::

       ΔO = Σ_j P_j* χ_j / (Σ_j |P_j|² + δ_O),   ΔP = Σ_j O_j* χ_j / (Σ_j |O_j|² + δ_P)

   with ``δ = reg · max(·)``, reg = 1 by default: the direction is the least-squares one where
   the illumination is strong and a damped gradient (``P* χ / max|P|²``, ePIE's) where it is
   weak, so the probe's dim, noisy tails take small steps. Measured on the regime matrix
   (seed 0): reg 1 against 0.1 lowers the OD error at 10⁴ photons per frame from 0.82 to 0.75
   (Gaussian probe) and from 1.61 to 1.09 (pinhole with background), and costs ≤ 4 % at 10⁶;
   ``dose_regularisation`` (0.1–0.5 from the counts) was tried and lost to the constant.
3. **Optimal step lengths** for every frame (paper eq. 27): ``(α_O,j, α_P,j)`` minimise
   ``Σ_r |χ_j − α_O ΔO_j P_j − α_P ΔP O_j|²``, a 2×2 linear system per frame (solved in closed
   form, a little Tikhonov damping on its diagonal, steps clipped to [0, ``step_cap``]; with the
   probe fixed it is the 1×1 case). The cap is 1 on dim data, where a step longer than the
   linearised optimum mostly follows the noise, and 2 from ``STEP_CAP_COUNTS`` counts per pixel
   up, where the damped direction (``reg``, below) would otherwise hold LSQML to about half the
   least-squares step (``step_cap``).
4. **Update**: ``O ← O + β · ᾱ_O · ΔO`` where ``ᾱ_O(r) = Σ_j α_O,j |P_j|² / Σ_j |P_j|²`` is the
   illumination-weighted mean of the frames' steps at each object pixel, and
   ``P ← P + β · mean_j(α_P,j) · ΔP`` with β = ``STEP_FRACTION`` = 1: the optimal steps
   themselves, as PtychoShelves' LSQML takes them (``beta_object = beta_probe = 1``). The
   linearised problem neglects the ``ΔO·ΔP`` cross term, so a β below 1 would keep a margin from
   an overshoot; the step cap and the Tikhonov damping of the 2×2 system already keep that margin,
   and β = 0.9 measurably slowed LSQML at low dose (``STEP_FRACTION``).

Batches follow a **mixed schedule**: on even iterations the frames are dealt into *sparse*
batches (frames sorted along the scan and dealt round-robin, so that each batch spans the whole
field with little overlap between its frames: their updates are nearly independent, which is
the condition under which the per-frame optimal steps are optimal together), on odd iterations
into *random* batches (which breaks any fixed pattern the sparse dealing would imprint). The
detector background (EM step) and position refinement are those of the PIE solver.

With one probe mode the batch update runs on fused kernels (``_FusedUpdate``: the five sums of
step 3 in one pass that never stores χ, P·ΔO or ΔP·O; the object step on the batch's rows only;
the new shifted probes by linearity from the shifted ΔP already made for ΔP·O): the same
mathematics as the NumPy reference ``_update_numpy`` (kept for several modes), equal to float32
rounding, about 0.6× its time per iteration (docs/results/ptychography_speed.md, session 5).

References
----------
M. Odstrčil, A. Menzel, M. Guizar-Sicairos, "Iterative least-squares solver for generalized
maximum-likelihood ptychography", Opt. Express 26, 3108–3123 (2018).
"""

from __future__ import annotations

import numpy as np

from ..core.fft import empty_aligned
from . import _kernels as K
from ._kernels import thread_chunks
from .engine import Run
from .noise import dose_summary
from .operators import float_view
from .pie import _BatchSums

__all__ = ["BRIGHT_STEP_CAP", "STEP_CAP_COUNTS", "STEP_FRACTION", "EpochMomentum", "amplitude_cost",
           "dose_regularisation", "lsqml_batches", "optimal_steps", "run_lsqml", "solve_steps", "step_cap"]

#: Mean counts per valid detector pixel from which LSQML's per-frame steps may exceed 1 (the
#: default chain's ``LOW_DOSE_COUNTS``: below it LSQML is the default's solver, above it the
#: start of the bright chain).
STEP_CAP_COUNTS = 50.0
#: The cap of the per-frame optimal steps from ``STEP_CAP_COUNTS`` up: about the step that undoes
#: the preconditioner's damping. With δ = max(Σ|P|²) the object direction is about half the
#: least-squares one where the illumination is even, so steps clipped at 1 make at most ~0.5 of
#: the least-squares update per batch. At 10⁹ photons per frame, 50 LSQML iterations from a
#: defocused zone-plate guess reached OD error 0.48 (0.27 with the cap at 2), and the rPIE after
#: them settled at 0.013 instead of 0.008 (regime matrix cell 2, seed 1). Below those counts the
#: short steps keep the noise out (cap 2 at 24 counts per pixel: 0.265 against 0.241, cell 5).
#: Caps of 3 and ∞ moved the bright cells' mean errors by ≤ 4 % against 2 and brought fewer
#: seed-cells within 5 % of the best code (188 against 193 of 240); ten seeds:
#: docs/results/ptychography.md, "Session 13".
BRIGHT_STEP_CAP = 2.0
#: β, the fraction of the optimal steps (α_O, α_P) that the update takes (module docstring, step
#: 4). 1, PtychoShelves' default. Session 20, regime matrix, the default alone on seeds 0–34
#: against β = 0.9 (chemtomo's value until then): the Gaussian probe at 6 counts per pixel (cell
#: 8, ``LSQML:300``) 0.859 → 0.840 on the 35 seeds' mean (``ePIE:100`` 0.808), the
#: pinhole from a defocused guess (cell 12, the mid-dose chain's LSQML start) 0.401 → 0.395 on
#: seeds 0–19; the one cell that lost is the Gaussian at 10⁹ photons with 1 px position errors
#: (cell 20, 0.547 → 0.557, still 11 % below every other code); no other cell lost more than
#: 1.2 % on seeds 0–19 or 20–34 (docs/results/ptychography.md, "Session 20").
#: β = 1.2 gave cell 8 0.833, but steps beyond the optimum have no justification of their own.
STEP_FRACTION = 1.0


def lsqml_batches(positions_px: np.ndarray, batch_size: int, iteration: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Frame indices of each mini-batch of one iteration (the mixed schedule, module docstring).

    Even iterations: *sparse* batches (frames in raster order along y then x, dealt round-robin
    into ``ceil(n / batch_size)`` batches, the batch order random); odd iterations: a random
    permutation cut into batches. Deterministic for a given ``rng`` state (ties in the raster
    sort are broken by frame index, so no float tie decides anything)."""
    n = len(positions_px)
    n_batches = max(1, int(np.ceil(n / batch_size)))
    if iteration % 2 == 0 and n_batches > 1:
        order = np.lexsort((np.arange(n), np.rint(positions_px[:, 1]), np.rint(positions_px[:, 0])))
        batches = [order[k::n_batches] for k in range(n_batches)]
        return [batches[k].astype(np.int64) for k in rng.permutation(n_batches)]
    order = rng.permutation(n).astype(np.int64)
    return [b for b in np.array_split(order, n_batches) if len(b)]


def optimal_steps(chi: np.ndarray, dop: np.ndarray, dpo: np.ndarray | None, damping: float = 0.1,
                  cap: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame step lengths (α_O, α_P) minimising ``Σ_r |χ − α_O·dop − α_P·dpo|²``.

    Parameters
    ----------
    chi : (B, ...) complex, the exit-wave updates of a batch
    dop : (B, ...) complex, ``P_j · ΔO_j`` (the object direction seen by each frame)
    dpo : (B, ...) complex or None, ``ΔP · O_j`` (None when the probe is fixed: 1×1 system)
    damping : float
        Tikhonov damping of the 2×2 matrix relative to the mean of its diagonal (0.1, as
        PtychoShelves' LSQML: it keeps α bounded when the two directions are nearly parallel).
    cap : float
        Largest step (``step_cap``); steps are clipped to [0, cap].

    Returns
    -------
    alpha_o, alpha_p : (B,) float64, clipped to [0, cap]
    """
    axes = tuple(range(1, chi.ndim))
    a11 = np.sum(np.abs(dop) ** 2, axis=axes, dtype=np.float64)
    r1 = np.sum((np.conj(dop) * chi).real, axis=axes, dtype=np.float64)
    if dpo is None:
        return solve_steps(a11, r1, None, None, None, damping, cap)
    a22 = np.sum(np.abs(dpo) ** 2, axis=axes, dtype=np.float64)
    a12 = np.sum((np.conj(dop) * dpo).real, axis=axes, dtype=np.float64)
    r2 = np.sum((np.conj(dpo) * chi).real, axis=axes, dtype=np.float64)
    return solve_steps(a11, r1, a22, a12, r2, damping, cap)


def solve_steps(a11: np.ndarray, r1: np.ndarray, a22: np.ndarray | None, a12: np.ndarray | None,
                r2: np.ndarray | None, damping: float, cap: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The damped 2×2 (or, ``a22`` None, 1×1) solve of ``optimal_steps`` from its sums per frame
    (B,) float64: ``a11 = Σ|dop|²``, ``r1 = Σ Re dop*χ``, ``a22 = Σ|dpo|²``, ``a12 = Σ Re dop*dpo``,
    ``r2 = Σ Re dpo*χ``. Returns (α_O, α_P), (B,) float64 clipped to [0, cap]."""
    if a22 is None:
        alpha_o = r1 / (a11 * (1 + damping) + 1e-30)
        return np.clip(alpha_o, 0, cap), np.zeros(len(a11))
    lam = damping * 0.5 * (a11 + a22) + 1e-30
    m11, m22 = a11 + lam, a22 + lam
    det = m11 * m22 - a12 * a12
    alpha_o = (m22 * r1 - a12 * r2) / det
    alpha_p = (m11 * r2 - a12 * r1) / det
    return np.clip(alpha_o, 0, cap), np.clip(alpha_p, 0, cap)


def amplitude_cost(model, obj: np.ndarray, probes: np.ndarray, frames: np.ndarray, background: np.ndarray,
                   *, gradient: bool = False):
    """The amplitude likelihood ``L = Σ_jq v_q (|Ψ_jq| − √I_jq)²`` of ``frames`` (module docstring)
    and, with ``gradient=True``, its Wirtinger gradients ``∂L/∂O*`` (oy, ox) and ``∂L/∂P*``
    (n_bins, n_modes, h, w; per shift bin, in each bin's coordinates). Single mode; ``background``
    is not used (the background-free form the solver's direction is derived from; used by the
    gradient test).
    """
    buf = empty_aligned((len(frames), model.n_modes, model.h, model.w))
    model.exit_waves(buf, obj, probes, frames)
    far = model.fft_inplace(buf)
    amp = model.amplitude[frames][:, None]
    mag = np.abs(far)
    cost = float(np.sum(model.validf * (mag - amp) ** 2, dtype=np.float64))
    if not gradient:
        return cost
    # ∂L/∂Ψ* = (|Ψ| − √I) Ψ/|Ψ| = Ψ − √I Ψ/|Ψ|; back through the unitary F and ψ = P·O_j.
    g_far = np.where(model.validf > 0, far - amp * far / np.maximum(mag, 1e-30), 0).astype(np.complex64)
    g_psi = np.ascontiguousarray(model.ifft_inplace(g_far), dtype=np.complex64)
    g_obj, _, g_probe, _ = model.accumulate(g_psi, obj, probes, frames, do_probe=True)
    return cost, g_obj, g_probe


def _weighted_illumination(model, probes: np.ndarray, frames: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_j w_j |P_j|² on the object grid (one slice addition per frame)."""
    out = np.zeros(model.object_shape, np.float32)
    power = np.sum(np.abs(probes) ** 2, axis=1)
    for j, w in zip(frames, weights):
        y0, x0 = model.cy[j], model.cx[j]
        out[y0:y0 + model.h, x0:x0 + model.w] += np.float32(w) * power[model.kb[j]]
    return out


def _mean_counts(model) -> float:
    """Mean count per valid detector pixel over all frames (``noise.dose_summary``, the default
    rule's figure)."""
    return dose_summary(model.amplitude, model.validf)[0]


def step_cap(model) -> float:
    """The cap of LSQML's per-frame optimal steps on these data: ``BRIGHT_STEP_CAP`` from
    ``STEP_CAP_COUNTS`` mean counts per valid detector pixel up, else 1."""
    return BRIGHT_STEP_CAP if _mean_counts(model) >= STEP_CAP_COUNTS else 1.0


def dose_regularisation(model) -> float:
    """The preconditioner's relative damping δ/max from the data: ``clip(1/√n̄, 0.1, 0.5)`` with n̄
    the mean count per valid detector pixel. The relative amplitude noise of a pixel is
    ``1/(2√n)``; where it is large the least-squares direction divided by a weak illumination
    mostly carries noise, so the direction is damped towards the plain gradient (0.5 at ≲ 4
    counts per pixel, 10⁴ photons on 64²) and left least-squares (0.1) at ≳ 100 counts."""
    return float(np.clip(1.0 / np.sqrt(max(_mean_counts(model), 1e-12)), 0.1, 0.5))


class EpochMomentum:
    """Heavy-ball momentum over whole iterations (epochs) of the object, with restarts.

    After iteration k has moved the object by Δ_k (all its batches together), the object also
    takes ``γ · w · s_{k−1}``, a fraction γ of the previous iteration's total step
    ``s_{k−1} = Δ_{k−1} + γ · w · s_{k−2}``, so that a direction the iterations keep taking is
    followed with steps up to 1/(1 − γ) times longer (Polyak's heavy ball; the epoch-level momentum
    of PtychoShelves' LSQML engine, Odstrčil et al.). ``w = I / (I + 0.1 max I)`` with ``I`` the
    illumination keeps it off the dim edges, where a step is mostly noise. The momentum restarts
    from zero (O'Donoghue & Candès, Found. Comput. Math. 15, 715 (2015)) when the error rose in
    the last iteration or when Δ_k and Δ_{k−1} point apart (a negative illumination-weighted
    correlation): an oscillation, not a direction.
    """

    def __init__(self, gain: float):
        self.gain = float(gain)
        self.start: np.ndarray | None = None
        self.last_delta: np.ndarray | None = None
        self.velocity: np.ndarray | None = None

    def begin(self, obj: np.ndarray) -> None:
        self.start = obj.copy()

    def end(self, run: Run) -> None:
        """Add the momentum step to ``run.state.obj`` after an iteration (see the class)."""
        obj = run.state.obj
        delta = obj - self.start
        illum = run.model.illumination(run.probes)
        w = (illum / (illum + np.float32(0.1 * float(illum.max()) + 1e-30))).astype(np.float32)
        errors = run.errors
        falling = len(errors) >= 2 and errors[-1] < errors[-2]
        aligned = False
        if self.last_delta is not None:
            aligned = float(np.sum(w * (np.conj(self.last_delta) * delta).real, dtype=np.float64)) > 0
        if falling and aligned and self.velocity is not None:
            kick = (np.float32(self.gain) * w) * self.velocity
            run.state.obj = (obj + kick).astype(np.complex64)
            self.velocity = delta + kick
        else:
            self.velocity = delta
        self.last_delta = delta


def _update_numpy(run: Run, chi: np.ndarray, batch: np.ndarray, do_probe: bool, reg: float, beta: float,
                  damping: float, probe_beta: float, dop: np.ndarray, dpo: np.ndarray, cap: float = 1.0) -> None:
    """One batch's LSQML update (module docstring, steps 2–4) in NumPy, from the projected exit
    waves ``chi`` (overwritten): any number of probe modes. ``dop``, ``dpo``: work buffers of
    ``chi``'s shape. The reference that ``_FusedUpdate`` is tested against."""
    model, st = run.model, run.state
    k = len(batch)
    obj_num, obj_den, probe_num, probe_den = model.accumulate(chi, st.obj, run.probes, batch,
                                                              c_phi=-1.0, do_probe=do_probe)
    model.exit_waves(dop[:k], st.obj, run.probes, batch)  # P·O_j, to form χ explicitly
    chi -= dop[:k]
    d_obj = (obj_num / (obj_den + np.float32(reg * float(obj_den.max()) + 1e-30))).astype(np.complex64)
    model.exit_waves(dop[:k], d_obj, run.probes, batch)  # ΔO_j·P_j
    d_probe = None
    if do_probe:
        num = model.unshift_sum(probe_num)
        den = probe_den.sum(axis=0)[None]
        d_probe = (num / (den + np.float32(reg * float(den.max()) + 1e-30))).astype(np.complex64)
        model.exit_waves(dpo[:k], st.obj, model.shifted_probes(d_probe), batch)  # ΔP·O_j
    alpha_o, alpha_p = optimal_steps(chi, dop[:k], dpo[:k] if do_probe else None, damping, cap)
    weight = _weighted_illumination(model, run.probes, batch, alpha_o)
    step_map = weight / (obj_den + np.float32(1e-30))
    st.obj = (st.obj + np.float32(beta) * step_map * d_obj).astype(np.complex64)
    if do_probe:
        run.set_probe(st.probe + np.float32(probe_beta * beta * float(np.mean(alpha_p))) * d_probe)


class _FusedUpdate:
    """``_update_numpy`` for one probe mode, the same mathematics in fewer passes:

    - the overlap sums go into PIE's ``_BatchSums``, kept between batches and zeroed only where a
      batch wrote them: no zeroed full-object arrays per batch;
    - the probe direction from the batch's shift bins only (``_BatchSums.probe_sums``: the sum
      ``unshift_sum`` makes over all bins, whose others hold zeros);
    - the five sums of the optimal steps in one kernel pass that forms χ, P·ΔO and ΔP·O on the fly
      (``_kernels.lsqml_step_sums``), then ``solve_steps``;
    - the object step on the rows' spans the batch reached, in one pass with its weights
      (``_kernels.lsqml_object_step``), the object updated in place;
    - the probe step is linear: with one mode and no probe window (``orthogonalize_modes`` is
      then the identity) the new shifted probes are ``probes + c·shifted(ΔP)``, and shifted(ΔP)
      was made for ΔP·O: no second shift. The iteration's last batch sets the probe the full
      way (``Run.set_probe``), so the shifted probes never drift from the probe by more than
      one iteration's rounding;
    - small batches (a few frames, a few of the sixteen shift bins: ``narrow``) shift ΔP to the
      batch's bins only and make the next batch's bins from the new probe (``Run.set_probe``
      with ``bins``), leaving the others stale until a batch needs them: 2 + (bins of this batch
      and the next) probe-sized transforms instead of 1 + every bin in use. The last batch,
      which sets the probe the full way, shifts ΔP to its own bins only (the same bits: a
      transform in a stack does not depend on the stack's other members).
    """

    def __init__(self, model) -> None:
        self.model = model
        self.sums = _BatchSums(model)  # PIE's sums kept between batches, their spans and probe sums
        self.shifted = empty_aligned((model.n_bins, 1, model.h, model.w))
        self.shifted[...] = 0  # ΔP in the bins asked for
        self.stale = False  # some of run.probes' bins are behind the probe (left by a narrow batch)

    def narrow(self, bins: np.ndarray, next_bins: np.ndarray) -> bool:
        """True when shifting ΔP to ``bins`` and the probe to ``next_bins`` takes fewer
        transforms than the linear step's ΔP in every bin in use (a decision from the positions
        and the batches alone)."""
        m = self.model
        return not m.single_unshifted_bin() and len(bins) + len(next_bins) + 1 < len(m.used_bins)

    def __call__(self, run: Run, chi: np.ndarray, batch: np.ndarray, do_probe: bool, reg: float, beta: float,
                 damping: float, probe_beta: float, last: bool, cap: float = 1.0,
                 next_batch: np.ndarray | None = None) -> None:
        """One batch's update from the projected exit waves ``chi`` (k, 1, h, w); ``last``: the
        iteration's last batch (the probe is then set the full way); ``next_batch``: the frames
        of the next batch (None: not known, every bin kept current)."""
        m, st, bs = self.model, run.state, self.sums
        m.accumulate(chi, st.obj, run.probes, batch, c_phi=-1.0, do_probe=do_probe,
                     out=(bs.obj_num, bs.obj_den, bs.probe_num, bs.probe_den), den_max=bs.den_max)
        lam = np.float32(reg * bs.spans(batch) + 1e-30)
        d_probe = shifted = next_bins = None
        # the probe is set the full way after this batch (and the stale bins brought up to date)
        full = last or run.probe_window is not None or (self.stale and next_batch is None)
        if do_probe:  # ΔP = Σ O*χ / (Σ|O|² + δ_P) from the batch's bins
            bins = np.unique(m.kb[batch])
            num, den = bs.probe_sums(bins)
            d_probe = (num / (den + np.float32(reg * float(den.max()) + 1e-30))).astype(np.complex64)
            if not full and next_batch is not None:
                next_bins = np.unique(m.kb[next_batch])
                if not (self.stale or self.narrow(bins, next_bins)):  # stale bins: no linear step on them
                    next_bins = None
            if full or next_bins is not None:  # ΔP·O is read in the batch's bins only
                shifted = self.shifted
                m.shift_probes_into(shifted, d_probe, bins)
            else:
                shifted = m.shifted_probes(d_probe)
        sums = np.empty((len(batch), 5), np.float64)
        K.lsqml_step_sums(float_view(chi[:, 0]), float_view(st.obj), float_view(run.probes[:, 0]),
                          float_view(bs.obj_num), bs.obj_den, lam,
                          float_view((shifted if do_probe else run.probes)[:, 0]), m.cy, m.cx, m.kb, batch,
                          bool(do_probe), sums)
        if do_probe:
            alpha_o, alpha_p = solve_steps(sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3], sums[:, 4], damping, cap)
        else:
            alpha_o, alpha_p = solve_steps(sums[:, 0], sums[:, 1], None, None, None, damping, cap)
        # st.obj is updated in place (Run.best_state holds a copy, never this array)
        K.lsqml_object_step(float_view(st.obj), float_view(bs.obj_num), bs.obj_den, lam, np.float32(1e-30),
                            np.float32(beta), float_view(run.probes[:, 0]), alpha_o.astype(np.float32), m.cy, m.cx,
                            m.kb, batch, bs.lo, bs.hi)
        if do_probe:
            c = np.float32(probe_beta * beta * float(np.mean(alpha_p)))
            probe = st.probe + c * d_probe
            if full:
                run.set_probe(probe)
                self.stale = False
            elif next_bins is not None:  # the next batch's bins from the probe; the others stale
                run.set_probe(probe, bins=next_bins)
                self.stale = True
            else:  # Run.set_probe's result for one mode without a window, by linearity
                st.probe = probe
                run.mode_mixing = np.ones((1, 1), np.complex64)
                shifted *= c
                run.probes += shifted


def run_lsqml(run: Run, iterations: int, *, batch_size: int, beta: float = STEP_FRACTION, reg: float | None = 1.0,
              damping: float = 0.1, probe_beta: float = 1.0, momentum: float = 0.0,
              max_step: float | None = None) -> None:
    """Run ``iterations`` LSQML passes over all frames (module docstring); ``reg`` None uses
    ``dose_regularisation``; ``beta`` is the fraction of the optimal steps taken (``STEP_FRACTION``);
    ``probe_beta`` scales the probe's step further (1: the optimal one);
    ``momentum`` is the gain γ of ``EpochMomentum`` (0: none); ``max_step`` caps the per-frame
    optimal steps (None: ``step_cap`` from the counts)."""
    model = run.model
    n = model.n_frames
    if reg is None:
        reg = dose_regularisation(model)
    cap = step_cap(model) if max_step is None else float(max_step)
    rows = int(np.ceil(n / max(1, int(np.ceil(n / batch_size))))) + 1  # the largest batch, and one spare
    work = empty_aligned((rows, model.n_modes, model.h, model.w))
    fused = _FusedUpdate(model) if model.n_modes == 1 else None
    if fused is None:
        dop = np.empty_like(work)
        dpo = np.empty_like(work)
    accel = EpochMomentum(momentum) if momentum > 0 else None
    for _ in range(iterations):
        if accel is not None:
            accel.begin(run.state.obj)
        err = tot = 0.0
        ratio_sum = np.zeros((model.h, model.w), np.float64)
        do_probe = run.refine_probe
        steps = np.zeros((n, 2)) if run.refine_positions else None
        batches = lsqml_batches(run.state.positions_px, batch_size, run.iteration, run.rng)
        for b, batch in enumerate(batches):
            st = run.state
            k = len(batch)
            psi = work[:k]
            model.exit_waves(psi, st.obj, run.probes, batch)
            psi = model.fft_inplace(psi)
            e, t, ratio = model.modulus_project(psi, batch, st.background, thread_chunks(batch))
            err, tot = err + e, tot + t
            ratio_sum += ratio
            chi = model.ifft_inplace(psi)  # projected exit waves; χ = chi − P·O in the update (c_phi = −1)
            if steps is not None:
                steps += model.position_steps(chi, st.obj, run.probes, batch)
            if fused is not None:
                last = b == len(batches) - 1
                fused(run, chi, batch, do_probe, reg, beta, damping, probe_beta, last=last, cap=cap,
                      next_batch=None if last else batches[b + 1])
            else:
                _update_numpy(run, chi, batch, do_probe, reg, beta, damping, probe_beta, dop, dpo, cap)
        if not run.finish_sweep(ratio_sum, n, steps, err, tot):
            return
        if accel is not None:
            accel.end(run)
