"""ePIE and rPIE in mini-batches: the object and probe are updated after every batch of frames.

For each batch (frames drawn in a new random order every iteration)::

    Ψ_j = F[P·O_j];  Δψ_j = F⁻¹[P_F Ψ_j] − P·O_j
    O ← O + Σ_j P* Δψ_j / ((1 − α) Σ_j|P|² + α max Σ_j|P|²)
    P ← P + Σ_j O_j* Δψ_j / ((1 − α_P) Σ_j|O_j|² + α_P max Σ_j|O_j|²)

α = 1 is ePIE (step normalised by the brightest illumination), α ≈ 0.1 is rPIE. Many updates
per pass over the data make PIE converge in far fewer iterations than the projection solvers;
batches of frames keep each FFT call large enough to be efficient.

mPIE adds momentum (Maiden, Johnson & Li 2017, section 4; Nesterov-style heavy ball): after
every batch the displacement of the object (and probe) since the previous momentum step feeds a
velocity, which is added to the estimate::

    v ← η v + (O − O_prev);   O ← O + γ v;   O_prev ← O

with friction η = 0.7 and feedback γ = 0.3 as in the paper (and PtyLab). The paper applies it
every T single-position updates (T ≈ a few dozen); here every batch (a tenth of the frames,
≤ 64), the same spacing. Its step is rPIE's (α = ``PIEOptions.alpha_object``, 0.1). Large steps
with momentum converge in a few passes but then fit the photon noise (on the 10⁶-photon
benchmark scan mPIE levels off at an error of 0.022 against the truth, ePIE goes on to 0.019),
hence the default chain rPIE then ePIE (``algorithms.DEFAULT_ALGORITHM``). The modulus projection subtracts the
retrieved background from the counts (``_kernels.modulus_project``).

References
----------
Maiden & Rodenburg, Ultramicroscopy 109, 1256 (2009) (ePIE).
Maiden, Johnson & Li, Optica 4, 736 (2017) (rPIE and mPIE).
"""

from __future__ import annotations

import numpy as np

from ..core.fft import empty_aligned
from . import _kernels as K
from ._kernels import thread_chunks
from .engine import Run
from .operators import float_view

__all__ = ["default_batch_size", "pie_batches", "run_pie"]


def default_batch_size(n_frames: int) -> int:
    """A tenth of the frames, between 4 and 64 (enough frames per FFT call, many updates)."""
    return int(np.clip(n_frames // 10, 4, 64))


def pie_batches(order: np.ndarray, kb: np.ndarray, n_batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The batches of one PIE iteration: the frames in ``order`` (a random permutation), grouped by
    their sub-pixel shift bin ``kb`` (the bins in a random order, the frames of a bin in the order
    they have in ``order``), cut into ``n_batches`` consecutive batches.

    A batch then spans one or two shift bins instead of most of them, so the probe is shifted into
    (and its update shifted back from) two bins per batch rather than about twelve of sixteen: on
    196 frames of 128² the probe-sized transforms fall from about 26 to about 6 per batch of 20
    frames. The frames of one bin are as scattered over the scan as a random batch on a jittered
    scan (the sub-pixel part of a position says nothing about where it is), and on a regular
    raster with a fractional step they form a sparse sub-lattice, which suits a joint update. A
    scan on whole pixels (one bin) keeps the random batches and draws nothing more from ``rng``."""
    used = np.unique(kb)
    if len(used) > 1:
        rank = np.empty(int(kb.max()) + 1, np.int64)
        rank[used] = rng.permutation(len(used))
        order = order[np.argsort(rank[kb[order]], kind="stable")]
    return np.array_split(order, n_batches)


def _step(num: np.ndarray, den: np.ndarray, alpha: float) -> np.ndarray:
    """rPIE step ``num / ((1 − α) den + α max den)``."""
    weight = (1.0 - alpha) * den + alpha * float(den.max()) + 1e-30
    return (num / weight.astype(np.float32)).astype(np.complex64, copy=False)


class _BatchSums:
    """Overlap sums of one PIE batch, kept between batches (zero outside a batch's update).

    A batch reaches a fraction of the object; the sums are added into these arrays
    (``_kernels.accumulate``), the object step is taken on the object rows' spans that the
    batch's frames cover and zeroes them again (``_kernels.pie_object_step``), and the probe
    sums of the bins the batch used are zeroed after the probe step: no zeroed full-object
    arrays and no full-object passes per batch. The same bits as fresh zeroed sums and
    ``_step`` on the whole object."""

    def __init__(self, model) -> None:
        self.model = model
        oy, ox = model.object_shape
        self.obj_num = np.zeros((oy, ox), np.complex64)
        self.obj_den = np.zeros((oy, ox), np.float32)
        self.probe_num = np.zeros((model.n_bins, model.n_modes, model.h, model.w), np.complex64)
        self.probe_den = np.zeros((model.n_bins, model.h, model.w), np.float32)
        self.lo = np.zeros(oy, np.int64)
        self.hi = np.zeros(oy, np.int64)
        self.row_max = np.zeros(oy, np.float32)
        #: max Σ|P|² of the batch when the sums kernel found it on the way (else NaN)
        self.den_max = np.full(1, np.nan, np.float32)

    def spans(self, frames: np.ndarray) -> float:
        """Set ``lo``/``hi`` to the object rows' spans that ``frames`` cover and return the batch's
        max Σ|P|² (from the sums kernel when it found it on the way, else from the spans)."""
        m = self.model
        known = not np.isnan(self.den_max[0])
        K.pie_row_spans(self.obj_den, m.cy, m.cx, frames, m.h, m.w, self.lo, self.hi, self.row_max, not known)
        if known:  # the same value as the spans' maximum (the sums start at zero, and only grow)
            return float(self.den_max[0])
        return float(self.row_max.max()) if len(self.row_max) else 0.0

    def object_step(self, obj: np.ndarray, frames: np.ndarray, alpha: float) -> None:
        """``obj += _step(obj_num, obj_den, α)`` in place on the batch's spans; sums zeroed."""
        den_max = self.spans(frames)
        K.pie_object_step(float_view(obj), float_view(self.obj_num), self.obj_den, self.lo, self.hi,
                          np.float32(1.0 - alpha), np.float32(alpha * den_max), np.float32(1e-30))

    def probe_sums(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The probe sums of the shift bins ``bins`` (those the batch used; the others hold zeros)
        shifted back and added, ``(Σ conj(O) χ, Σ|O|²)`` as (n_modes, h, w) complex64 and
        (1, h, w) float32; those bins' sums are zeroed."""
        m = self.model
        bins = np.asarray(bins, np.int64)
        if m.single_unshifted_bin():
            num = m.unshift_sum(self.probe_num, bins=bins)
            den = self.probe_den[bins].sum(axis=0)[None]
            self.probe_num[bins] = 0
            self.probe_den[bins] = 0
            return num, den
        # the same values as unshift_sum(probe_num, bins=bins), probe_den[bins].sum(axis=0) and
        # the zeroing, in two kernel passes around the FFTs (_kernels.gather_bins,
        # _kernels.unshift_products_sum)
        work = empty_aligned((len(bins),) + self.probe_num.shape[1:])
        den = np.empty((1, m.h, m.w), np.float32)
        K.gather_bins(float_view(self.probe_num).reshape(m.n_bins, -1), bins,
                      float_view(work).reshape(len(bins), -1), self.probe_den.reshape(m.n_bins, -1),
                      den.reshape(-1))
        return m.unshift_gathered(work, bins), den

    def probe_step(self, probe: np.ndarray, bins: np.ndarray, alpha: float) -> np.ndarray:
        """The probe plus its rPIE step from the sums of the shift bins ``bins`` (``probe_sums``)."""
        num, den = self.probe_sums(bins)
        return probe + _step(num, den, alpha)


def run_pie(run: Run, iterations: int, *, alpha_object: float, alpha_probe: float, batch_size: int,
            momentum: float = 0.0, friction: float = 0.7, group_bins: bool = True) -> None:
    """Run ``iterations`` passes of mini-batch PIE over all frames; ``momentum`` γ > 0 (with
    ``friction`` η) is mPIE's momentum, applied after every batch; ``group_bins``: batches grouped
    by sub-pixel shift bin (``pie_batches``), else random batches."""
    model = run.model
    n = model.n_frames
    n_batches = max(1, int(np.ceil(n / batch_size)))
    # One batch of waves, not all frames: PIE never needs the whole stack at once.
    work = empty_aligned((int(np.ceil(n / n_batches)), model.n_modes, model.h, model.w))
    sums = _BatchSums(model)
    velocity = None
    if momentum > 0:
        velocity = [np.zeros_like(run.state.obj), np.zeros_like(run.state.probe)]
        previous = [run.state.obj.copy(), run.state.probe.copy()]
    for _ in range(iterations):
        order = run.rng.permutation(n).astype(np.int64)
        err = tot = 0.0
        ratio_sum = np.zeros((model.h, model.w), np.float64)
        do_probe = run.refine_probe
        steps = np.zeros((n, 2)) if run.refine_positions else None
        batches = pie_batches(order, model.kb, n_batches, run.rng) if group_bins else np.array_split(order, n_batches)
        for b, batch in enumerate(batches):
            st = run.state
            # A probe set after this batch is shifted only into the bins the next batch uses; after
            # the iteration's last batch into every bin (what end_iteration, the next iteration and
            # the next solver read). The same bits as shifting every bin each time.
            next_bins = np.unique(model.kb[batches[b + 1]]) if b + 1 < len(batches) else None
            buf = work[: len(batch)]
            model.exit_waves(buf, st.obj, run.probes, batch)
            buf = model.fft_inplace(buf)
            chunks = thread_chunks(batch)
            e, t, ratio = model.modulus_project(buf, batch, st.background, chunks)
            err, tot = err + e, tot + t
            ratio_sum += ratio
            buf = model.ifft_inplace(buf)
            if steps is not None:
                steps += model.position_steps(buf, st.obj, run.probes, batch)
            model.accumulate(buf, st.obj, run.probes, batch, c_phi=-1.0, do_probe=do_probe,
                             out=(sums.obj_num, sums.obj_den, sums.probe_num, sums.probe_den), den_max=sums.den_max)
            # st.obj is updated in place (Run.best_state holds a copy, never this array)
            sums.object_step(st.obj, batch, alpha_object)
            if do_probe:
                # mPIE sets the probe again at once (its momentum): shift it only then
                again = velocity is not None and st.probe.shape[0] == 1
                run.set_probe(sums.probe_step(st.probe, np.unique(model.kb[batch]), alpha_probe), shift=not again,
                              bins=next_bins)
            if velocity is not None:
                _momentum(run, velocity, previous, momentum, friction, do_probe, next_bins)
        if not run.finish_sweep(ratio_sum, n, steps, err, tot):
            return


def _momentum(run: Run, velocity: list, previous: list, gamma: float, eta: float, do_probe: bool,
              bins: np.ndarray | None = None) -> None:
    """mPIE momentum step on the object (and the probe when it is refined), in place; the probe
    is shifted into the sub-pixel ``bins`` only (None: all), see ``Run.set_probe``."""
    st = run.state
    # one fused pass, the same bits as: v *= η; v += O − O_prev; O = O + γ v; O_prev = O.copy()
    K.momentum_step(float_view(st.obj), float_view(velocity[0]), float_view(previous[0]),
                    np.float32(eta), np.float32(gamma))
    if do_probe and st.probe.shape[0] == 1:  # several modes are re-orthogonalised (rotated) each update
        velocity[1] *= np.float32(eta)
        velocity[1] += st.probe - previous[1]
        run.set_probe(st.probe + np.float32(gamma) * velocity[1], bins=bins)
    previous[1] = st.probe.copy()
