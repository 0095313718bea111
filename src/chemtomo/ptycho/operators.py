"""Far-field ptychography forward model: patches, sub-pixel probe shifts, exit waves, projections.

The model of frame j and incoherent probe mode m::

    ψ_jm(r) = P_m(r − s_j) · O(r + c_j)          exit wave on the frame grid (h, w)
    I_j(q)  ≈ Σ_m |F ψ_jm(q)|² + b(q)            far-field intensity plus static background

where ``c_j`` is the integer corner of the frame's patch in the object array and ``s_j`` the
sub-pixel remainder of its position, quantised to ``1 / subpixel`` of a pixel. The probe shifted
by each of the ``subpixel²`` remainders is made once per probe update with an exact Fourier
shift, so every frame gets an exactly shifted probe at no per-frame cost.

Positions are (y, x) in object pixels relative to the object array's centre pixel
``(oy // 2, ox // 2)``; the probe's centre is its pixel ``(h // 2, w // 2)``.

``F`` is the plain (uncentred) orthonormal FFT: intensities are stored in FFT order (zero
frequency at index 0) so no ``fftshift`` is ever needed in the loop; ``|fft2(ψ)|`` equals
``|fft2c(ψ)|`` up to that reordering, because centring only multiplies by a phase.

The heavy passes are fused numba kernels (``_kernels.py``); this module owns the arrays,
the geometry and the FFTs, and is what the solvers (``raar.py``, ``dm.py``, ``pie.py``,
``ml.py``) call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..core.fft import empty_aligned, stack_fft2
from . import _kernels as K
from .noise import NoiseFloor, amplitude_floor

__all__ = ["FarFieldModel", "State", "object_shape_for", "orthogonalize_modes", "regularized_ratio"]


@dataclass
class State:
    """What a reconstruction refines (mutable, internal to the solvers).

    obj          : (oy, ox) complex64 object transmission
    probe        : (n_modes, h, w) complex64 probe modes, centred
    background   : (h, w) float32 static background in FFT order (counts per pixel)
    positions_px : (n_frames, 2) float64 (y, x) probe centres relative to the object centre
    """

    obj: np.ndarray
    probe: np.ndarray
    background: np.ndarray
    positions_px: np.ndarray

    def copy(self) -> State:
        return State(self.obj.copy(), self.probe.copy(), self.background.copy(), self.positions_px.copy())


def object_shape_for(positions_px: np.ndarray, frame_shape: tuple[int, int], margin_px: int = 4) -> tuple[int, int]:
    """Smallest object array centred on position 0 that holds every frame plus ``margin_px``."""
    h, w = frame_shape
    extent = np.ceil(np.max(np.abs(positions_px), axis=0)).astype(int) if len(positions_px) else np.zeros(2, int)
    return (int(2 * extent[0] + h + 2 * margin_px), int(2 * extent[1] + w + 2 * margin_px))


def orthogonalize_modes(probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Incoherent probe modes made orthogonal, ordered by decreasing power (total power kept).

    Diagonalises the modes' Gram matrix ``G = P P^H`` (n_modes × n_modes); its eigenvectors
    mix the modes into orthogonal ones with the same mutual coherence function Σ_m P_m P_m^*.

    Returns
    -------
    modes : (n_modes, h, w) complex64, ``modes = U @ probe`` (over the mode axis)
    U     : (n_modes, n_modes) complex64 unitary mixing matrix (apply it to per-mode exit waves
            to keep them consistent with the new modes)
    """
    n_modes = probe.shape[0]
    if n_modes == 1:
        return probe, np.ones((1, 1), np.complex64)
    flat = probe.reshape(n_modes, -1).astype(np.complex128)
    gram = flat @ flat.conj().T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(-values, kind="stable")  # equal powers keep their order
    mix = vectors[:, order].conj().T
    return (mix @ flat).reshape(probe.shape).astype(np.complex64), mix.astype(np.complex64)


class FarFieldModel:
    """Data, geometry and buffers of one far-field ptychography problem.

    Parameters
    ----------
    intensity : (n_frames, h, w) float32 or None
        Measured counts in FFT order (``ifftshift`` of the detector frames).
    amplitude : (n_frames, h, w) float32 or None (keyword)
        √counts instead of ``intensity`` (give exactly one). The model keeps only the amplitudes
        (one copy of the data); ``intensity`` (their square, for the Poisson and multi-mode
        kernels) is made on first use and kept.
    valid : (h, w) bool
        True where a detector pixel is used, FFT order.
    object_shape : (oy, ox)
    n_modes : int
        Number of incoherent probe modes (buffers are sized for it).
    subpixel : int
        Sub-pixel shifts are quantised to ``1 / subpixel`` pixel (4: at most 1/8 px rounding).
    """

    def __init__(self, intensity: np.ndarray | None, valid: np.ndarray, object_shape: tuple[int, int], *,
                 n_modes: int = 1, subpixel: int = 4, amplitude: np.ndarray | None = None) -> None:
        if (intensity is None) == (amplitude is None):
            raise ValueError("internal: FarFieldModel needs exactly one of intensity and amplitude")
        if amplitude is None:
            amplitude = np.maximum(np.asarray(intensity, dtype=np.float32), 0)
            np.sqrt(amplitude, out=amplitude)
        self.amplitude = np.ascontiguousarray(amplitude, dtype=np.float32)  # √I, the data
        self._intensity: np.ndarray | None = None
        self.valid = np.ascontiguousarray(valid, dtype=np.uint8)
        self.validf = self.valid.astype(np.float32)
        self.n_frames, self.h, self.w = self.amplitude.shape
        self.object_shape = (int(object_shape[0]), int(object_shape[1]))
        self.n_modes = int(n_modes)
        self.subpixel = int(subpixel)
        self.all_frames = np.arange(self.n_frames, dtype=np.int64)
        self.chunks = K.thread_chunks(self.all_frames)
        q = self.subpixel
        half = q // 2
        # Sub-pixel shift of each bin (in pixels) and its Fourier phase ramp exp(−2πi f·s).
        rem = (np.arange(q) - half) / q
        self.bin_shifts = np.stack(np.meshgrid(rem, rem, indexing="ij"), axis=-1).reshape(-1, 2)
        fy = np.fft.fftfreq(self.h)[:, None]
        fx = np.fft.fftfreq(self.w)[None, :]
        self.ramps = np.exp(-2j * np.pi * (fy[None] * self.bin_shifts[:, 0, None, None]
                                           + fx[None] * self.bin_shifts[:, 1, None, None])).astype(np.complex64)
        self.n_bins = self.ramps.shape[0]
        self.ramps_conj = self.ramps.conj()
        self._buf: np.ndarray | None = None
        self._psi: np.ndarray | None = None
        #: The modulus projection's background rule for PIE and LSQML (``BackgroundOptions.projection``,
        #: set by ``engine.Run``): False subtracts b from the counts, True scales by ``sqrt(I / (s + b))``.
        self.background_share = False
        #: The Poisson likelihood's detector update in PIE and LSQML (``PtychoOptions.likelihood``).
        self.poisson = False
        self.cy = self.cx = self.kb = None
        #: Shift bins that some frame uses (only those probe shifts are computed).
        self.used_bins = np.arange(self.n_bins)

    # ----------------------------------------------------------------------------------- buffers
    @property
    def intensity(self) -> np.ndarray:
        """Counts (n_frames, h, w) float32 in FFT order, negative counts as 0 (made on first use)."""
        if self._intensity is None:
            self._intensity = np.square(self.amplitude)
        return self._intensity

    @property
    def buf(self) -> np.ndarray:
        """FFT work buffer (n_frames, n_modes, h, w) complex64, allocated once."""
        if self._buf is None:
            self._buf = empty_aligned((self.n_frames, self.n_modes, self.h, self.w))
        return self._buf

    @property
    def psi(self) -> np.ndarray:
        """Exit-wave state of the projection algorithms (n_frames, n_modes, h, w) complex64."""
        if self._psi is None:
            self._psi = empty_aligned((self.n_frames, self.n_modes, self.h, self.w))
        return self._psi

    @functools.cached_property
    def noise_floor(self) -> NoiseFloor | None:
        """The Poisson floor of the error metric for these data (``noise.amplitude_floor``), made
        once: the data do not change, and the focus search builds two runs on one model for each
        of its ~20 trials (0.2 s of a 1.4 s reconstruction of 49 frames of 32²)."""
        return amplitude_floor(self.amplitude, self.validf)

    def release(self) -> None:
        """Drop the large buffers (the next use allocates them again)."""
        self._buf = None
        self._psi = None
        self._intensity = None

    # ---------------------------------------------------------------------------------- geometry
    def corners(self, positions_px: np.ndarray):
        """Integer patch corners (cy, cx) and sub-pixel bin index of each frame."""
        q = self.subpixel
        half = q // 2
        centre = np.array([self.object_shape[0] // 2 - self.h // 2, self.object_shape[1] // 2 - self.w // 2])
        ticks = np.rint((positions_px + centre) * q).astype(np.int64)
        corner = (ticks + half) // q
        rem = ticks - q * corner + half  # 0 .. q-1
        return corner[:, 0].copy(), corner[:, 1].copy(), (rem[:, 0] * q + rem[:, 1]).astype(np.int64)

    def out_of_bounds(self, positions_px: np.ndarray) -> np.ndarray:
        """Indices of frames whose patch (plus the 1-pixel gradient margin) leaves the object."""
        cy, cx, _ = self.corners(positions_px)
        oy, ox = self.object_shape
        bad = (cy < 1) | (cx < 1) | (cy + self.h > oy - 1) | (cx + self.w > ox - 1)
        return np.flatnonzero(bad)

    def set_positions(self, positions_px: np.ndarray) -> None:
        """Recompute the patch corners and shift bins for new positions."""
        self.cy, self.cx, self.kb = self.corners(positions_px)
        self.used_bins = np.unique(self.kb)

    # ------------------------------------------------------------------------------------ probes
    def shifted_probes(self, probe: np.ndarray) -> np.ndarray:
        """The probe shifted by each sub-pixel bin: (n_bins, n_modes, h, w) complex64 (bins that no
        frame uses are left zero; scans on whole pixels use one bin and cost no shift at all)."""
        used = self.used_bins
        if len(used) == 1 and np.allclose(self.bin_shifts[used[0]], 0):
            out = np.zeros((self.n_bins,) + probe.shape, np.complex64)
            out[used[0]] = probe
            return out
        out = None if len(used) == self.n_bins else np.zeros((self.n_bins,) + probe.shape, np.complex64)
        spectrum = stack_fft2(probe)
        ramps = self.ramps[:, None] if len(used) == self.n_bins else self.ramps[used, None]
        product = empty_aligned((len(ramps),) + probe.shape)  # FFTW's SIMD alignment: no copy in stack_fft2
        np.multiply(spectrum[None], ramps, out=product)
        shifted = stack_fft2(product, inverse=True, overwrite_x=True)
        if len(used) == self.n_bins:  # every bin in use (np.unique: in order): no copy into zeros
            return shifted.astype(np.complex64, copy=False)
        out[used] = shifted
        return out

    def shift_probes_into(self, out: np.ndarray, probe: np.ndarray, bins: np.ndarray) -> None:
        """Write the probe shifted by the sub-pixel bins ``bins`` (sorted, in use) into ``out[bins]``
        in place, leaving the other bins of ``out`` (n_bins, n_modes, h, w) as they were.

        For a caller that knows which bins its next frames use (a PIE batch: about 12 of 16 on a
        jittered scan of 20 frames): each bin gets the same values, to the bit, as from
        ``shifted_probes`` (the same products and pocketfft transforms; a transform in a stack
        does not depend on the stack's other members)."""
        bins = np.asarray(bins, np.int64)
        if self.single_unshifted_bin():
            out[self.used_bins[0]] = probe
            return
        spectrum = stack_fft2(probe)
        work = empty_aligned((len(bins),) + probe.shape)
        for i, k in enumerate(bins):  # each bin's ramp read in place: no gathered copy of the ramps
            np.multiply(spectrum, self.ramps[k], out=work[i])
        out[bins] = stack_fft2(work, inverse=True, overwrite_x=True)

    def single_unshifted_bin(self) -> bool:
        """True when every frame sits on whole pixels (one shift bin, no shift: no transforms)."""
        return len(self.used_bins) == 1 and bool(np.allclose(self.bin_shifts[self.used_bins[0]], 0))

    def unshift_gathered(self, work: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """``unshift_sum`` of per-bin arrays already gathered into ``work`` (len(bins), n_modes,
        h, w) complex64 (overwritten): the same bits, the ramp products summed in one kernel pass."""
        spectrum = stack_fft2(work, overwrite_x=True)
        acc = np.empty(work.shape[1:], np.complex64)
        n = len(bins)
        K.unshift_products_sum(float_view(spectrum).reshape(n, work.shape[1], -1),
                               float_view(self.ramps_conj).reshape(self.n_bins, -1), np.asarray(bins, np.int64),
                               float_view(acc).reshape(work.shape[1], -1))
        return stack_fft2(acc, inverse=True).astype(np.complex64, copy=False)

    def unshift_sum(self, per_bin: np.ndarray, weights: np.ndarray | None = None,
                    bins: np.ndarray | None = None) -> np.ndarray:
        """Σ_bins (weights_k ×) of (n_bins, n_modes, h, w) arrays shifted back to the unshifted
        probe grid (the adjoint of ``shifted_probes``, and its inverse bin by bin). Only the bins in
        use contribute (the others hold no frame); ``bins`` (sorted) narrows them further to those
        known to be non-zero (a PIE batch's), which skips the transforms of zeros: the same sum."""
        used = self.used_bins if bins is None else np.asarray(bins, np.int64)
        w = None if weights is None else np.asarray(weights, np.float32)[used]
        if len(self.used_bins) == 1 and len(used) == 1 and np.allclose(self.bin_shifts[used[0]], 0):
            out = per_bin[used[0]] * (1 if w is None else w[0])
            return np.ascontiguousarray(out, dtype=np.complex64)
        # per_bin[used] is a fresh copy: transformed in place; each bin's ramp read in place
        spectrum = stack_fft2(per_bin[used], overwrite_x=True)
        for i, k in enumerate(used):
            spectrum[i] *= self.ramps_conj[k]
        if w is not None:
            spectrum *= w[:, None, None, None]
        return stack_fft2(spectrum.sum(axis=0), inverse=True).astype(np.complex64, copy=False)

    # --------------------------------------------------------------------------------------- FFT
    @staticmethod
    def fft_inplace(a: np.ndarray) -> np.ndarray:
        return stack_fft2(a, norm="ortho", overwrite_x=True)

    @staticmethod
    def ifft_inplace(a: np.ndarray) -> np.ndarray:
        return stack_fft2(a, inverse=True, norm="ortho", overwrite_x=True)

    # ---------------------------------------------------------------------------------- passes
    def exit_waves(self, out, obj, probes, frames):
        """out[i] = P·O[patch of frames[i]] for every mode (the model exit waves)."""
        if self.n_modes == 1:
            K.exit_waves_1(float_view(out[:, 0]), float_view(obj), float_view(probes[:, 0]), self.cy, self.cx,
                           self.kb, frames)
        else:
            K.exit_waves(out, obj, probes, self.cy, self.cx, self.kb, frames)

    def modulus_project(self, buf, frames, background, chunks):
        """Fourier-modulus projection of ``buf`` in place; returns (error², Σ I, background numerator)."""
        t = chunks.shape[0] - 1
        ratio = np.zeros((t, self.h, self.w), np.float32)
        sums = np.zeros((t, 2), np.float64)
        if self.n_modes == 1:
            K.modulus_project_1(float_view(buf[:, 0]), self.amplitude, frames, self.validf, background, chunks,
                                ratio, sums, self.background_share, self.poisson)
        else:
            K.modulus_project(buf, self.intensity, frames, self.valid, background, chunks, ratio, sums,
                              self.background_share)
        err, tot = sums.sum(axis=0)
        return float(err), float(tot), ratio.sum(axis=0)

    def raar_accumulators(self) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed sums of ``raar_step``: the background numerator (n_chunks, h, w) float32
        and (error², Σ I) (n_chunks, 2) float64, one row per chunk of ``thread_chunks``."""
        t = self.chunks.shape[0] - 1
        return np.zeros((t, self.h, self.w), np.float32), np.zeros((t, 2), np.float64)

    @staticmethod
    def raar_totals(acc) -> tuple[float, float, np.ndarray]:
        """(error², Σ I, background numerator (h, w)) from ``raar_accumulators``' sums."""
        ratio, sums = acc
        err, tot = sums.sum(axis=0)
        return float(err), float(tot), ratio.sum(axis=0)

    def raar_step(self, buf, state, background, beta, start: int, acc) -> None:
        """Detector-plane RAAR step (``_kernels.raar_fourier``) of the consecutive frames
        ``start .. start + len(buf)`` (``buf``, ``state``: theirs), adding to ``acc``
        (``raar_accumulators``; ``raar_totals`` reads them). Consecutive ranges covering the frames
        in order add every term in the order of one call over all of them: the same bits
        (tests/ptycho/test_raar_chunks.py). Several probe modes: all frames at once only."""
        ratio, sums = acc
        n = buf.shape[0]
        if self.n_modes > 1:
            if start != 0 or n != self.n_frames:
                raise ValueError("internal: RAAR with several probe modes steps all frames at once")
            K.raar_fourier(buf, state, self.intensity, self.valid, background, self.chunks, ratio, sums, float(beta))
            return
        first = int(np.searchsorted(self.chunks, start, "right")) - 1
        last = int(np.searchsorted(self.chunks, start + n - 1, "right")) - 1
        bounds = np.clip(self.chunks[first:last + 2], start, start + n) - start
        K.raar_fourier_1(float_view(buf[:, 0]), float_view(state[:, 0]), self.amplitude, self.validf, background,
                         bounds, ratio[first:last + 1], sums[first:last + 1], float(beta), int(start))

    def accumulate(self, buf, obj, probes, frames, *, c_phi=0.0, do_object=True, do_probe=False, out=None,
                   den_max=None):
        """Overlap sums of the waves ``buf + c_phi·P·O`` (``_kernels.accumulate``).

        Returns the object sums ``Σ P* v`` and ``Σ |P|²`` (oy, ox) (None unless ``do_object``) and
        the probe sums per shift bin ``Σ O* v`` (n_bins, n_modes, h, w) and ``Σ |O|²``
        (n_bins, h, w), in each bin's shifted coordinates (None unless ``do_probe``).
        ``out = (obj_num, obj_den, probe_num, probe_den)``: arrays of those shapes to add the sums
        to instead of fresh zeroed ones (PIE keeps them between batches; the probe's may be None
        without ``do_probe``, the object's None without ``do_object``). ``den_max``: a (1,)
        float32 array set to the largest value written into the object's ``Σ |P|²`` (its maximum
        when it started at zero) where the kernel finds it on the way (one mode, ``c_phi`` ≠ 0),
        to NaN where it does not."""
        if den_max is not None:
            den_max[0] = np.nan
        obj_num, obj_den, probe_num, probe_den = out if out is not None else (None,) * 4
        if obj_num is None:  # fresh zeroed sums (a 1-element stand-in for sums not asked for)
            obj_num = np.zeros(self.object_shape if do_object else (1, 1), np.complex64)
            obj_den = np.zeros(self.object_shape if do_object else (1, 1), np.float32)
        if probe_num is None:
            probe_num = np.zeros((self.n_bins, self.n_modes, self.h, self.w) if do_probe else (1, 1, 1, 1),
                                 np.complex64)
            probe_den = np.zeros((self.n_bins, self.h, self.w) if do_probe else (1, 1, 1), np.float32)
        if self.n_modes == 1:
            # The same bits either way (tests/ptycho/test_sum_kernels.py): on one thread a
            # frame-major sweep (both sums from one read of each row when both are asked for;
            # 0.45-0.8x the row-owned kernel's time on 196 frames of 128²), else the row-owned kernel.
            # The waves themselves (c_phi = 0: RAAR, DM, ML) take a pair of kernels that do not
            # form the zero term 0·P·O (0.75x the time), with their own rounding.
            views = (float_view(buf[:, 0]), float_view(obj), float_view(probes[:, 0]), self.cy, self.cx, self.kb,
                     frames)
            sums = (float_view(obj_num), obj_den, float_view(probe_num[:, 0]), probe_den, bool(do_object),
                    bool(do_probe))
            if c_phi == 0:
                (K.accumulate_1_waves if K.one_thread() else K.accumulate_1_waves_rows)(*views, *sums)
            else:  # either kernel finds the batch's max Σ|P|² on the way (PIE's and LSQML's step)
                top = np.zeros(1, np.float32)
                (K.accumulate_1_fused if K.one_thread() else K.accumulate_1)(*views, float(c_phi), *sums, top)
                if den_max is not None and do_object:
                    den_max[0] = top[0]
        else:
            K.accumulate(buf, obj, probes, self.cy, self.cx, self.kb, frames, float(c_phi), obj_num, obj_den,
                         probe_num, probe_den, bool(do_object), bool(do_probe))
        return (obj_num if do_object else None, obj_den if do_object else None,
                probe_num if do_probe else None, probe_den if do_probe else None)

    def illumination(self, probes) -> np.ndarray:
        """Σ_j Σ_m |P_m|² on the object grid (oy, ox) float32: how strongly each pixel was seen
        (one slice addition per frame; used once per reconstruction)."""
        den = np.zeros(self.object_shape, np.float32)
        power = np.sum(np.abs(probes) ** 2, axis=1)  # (n_bins, h, w)
        for y0, x0, k in zip(self.cy, self.cx, self.kb):  # one slice per frame: no index arrays
            den[y0:y0 + self.h, x0:x0 + self.w] += power[k]
        return den

    def position_steps(self, target, obj, probes, frames, out: np.ndarray | None = None) -> np.ndarray:
        """Least-squares sub-pixel position step (n_frames, 2) of each frame towards ``target``
        (``target[i]`` the wave of frame ``frames[i]``), written into the rows ``frames`` of
        ``out`` where given (the other rows left as they are)."""
        steps = np.zeros((self.n_frames, 2), np.float64) if out is None else out
        if self.n_modes == 1 and target.flags.c_contiguous and obj.flags.c_contiguous:
            K.position_gradient_1(float_view(target[:, 0]), float_view(obj), float_view(probes[:, 0]), self.cy,
                                  self.cx, self.kb, frames, steps)
        else:
            K.position_gradient(target, obj, probes, self.cy, self.cx, self.kb, frames, steps)
        return steps


def float_view(a: np.ndarray) -> np.ndarray:
    """Float32 view (..., 2w) with interleaved (re, im) of a C-contiguous complex64 array (..., w)
    (a view, never a copy: kernels write through it)."""
    if not a.flags.c_contiguous or a.dtype != np.complex64:
        raise ValueError(f"internal: expected a C-contiguous complex64 array, got {a.dtype} {a.strides}")
    return a.view(np.float32)


def regularized_ratio(num: np.ndarray, den: np.ndarray, previous: np.ndarray, rel: float) -> np.ndarray:
    """``(num + λ previous) / (den + λ)`` with ``λ = rel · max(den)``: the least-squares update,
    pulled towards the previous value where the illumination ``den`` is weak (and kept there
    where it is zero).

    ``den`` has ``num``'s shape, or a length-1 axis where ``num`` has one (a single probe mode);
    complex64/float32 C-contiguous inputs take one fused kernel pass (``_kernels.regularized_ratio``,
    the same bits as the NumPy expression it replaces), anything else NumPy."""
    lam = np.float32(rel * float(den.max()) + 1e-30)
    fused = (num.dtype == np.complex64 and previous.dtype == np.complex64 and den.dtype == np.float32
             and num.shape == previous.shape and num.ndim >= 1 and den.shape[-1] == num.shape[-1]
             and num.size == den.size
             and num.flags.c_contiguous and previous.flags.c_contiguous and den.flags.c_contiguous)
    if not fused:
        return ((num + lam * previous) / (den + lam)).astype(np.complex64, copy=False)
    w = num.shape[-1]
    out = np.empty_like(num)
    K.regularized_ratio(float_view(num.reshape(-1, w)), den.reshape(-1, w), float_view(previous.reshape(-1, w)),
                        lam, float_view(out.reshape(-1, w)))
    return out

