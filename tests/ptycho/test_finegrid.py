"""The forward model on a grid finer than the detector's (``PtychoOptions.oversample``).

Frames made the way a detector records them (``alias_free_scan``: the object and probe
interpolated onto a grid twice as fine, the exit wave transformed there and its far field cropped
to the detector) differ from chemtomo's one-grid model by the aliasing of the exit wave's
spectrum. At 10⁹ photons per frame that difference, not the photon noise, is what the one-grid
model cannot fit; the fine model can.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage
from scipy.ndimage import gaussian_filter

from chemtomo.core import InputError, Scan, energy_to_wavelength
from chemtomo.ptycho import PtychoOptions, reconstruct, zone_plate_probe
from chemtomo.ptycho.finegrid import band_limit, fine_shape, finer_scan, to_detector_grid, upsampled
from chemtomo.ptycho.options import validate_options
from chemtomo.ptycho.reconstruct import MODEL_LIMITED_FLOORS
from chemtomo.simulate.ptychography import object_shape, raster_positions

from .conftest import DISTANCE_M, ENERGY_EV, PIXEL_M, N


def alias_free_scan(dose: float, seed: int = 0, m: int = 2) -> tuple[Scan, np.ndarray]:
    """6 × 6 jittered positions on a textured object (power up to the frame's Nyquist frequency),
    frames made on a grid m times finer and cropped to the detector (the regime benchmark's
    ``alias_free_frames``, with the probe's shift kept within half a fine pixel as the model's)."""
    wavelength = energy_to_wavelength(ENERGY_EV)
    probe = zone_plate_probe((N, N), PIXEL_M, ENERGY_EV, defocus_m=0.3 * N * PIXEL_M * 100e-9 / wavelength)
    _, actual = raster_positions((25 * PIXEL_M, 25 * PIXEL_M), 5 * PIXEL_M, jitter_m=0.3 * PIXEL_M, seed=seed)
    pos = actual / PIXEL_M
    shape = object_shape(pos, (N, N), 6)
    rng = np.random.default_rng(seed + 1)
    texture = gaussian_filter(rng.standard_normal(shape), 0.8)
    texture = np.clip(texture / texture.std(), -2, 2) * 0.25
    obj = np.exp(-(0.5 + texture) + 1j * texture).astype(np.complex64)
    fine_obj = upsampled(obj, m)
    spectrum = np.fft.fft2(upsampled(probe, m))
    q = np.fft.fftfreq(m * N)
    corner0 = (np.array(shape) // 2 - N // 2) * m
    lo = m * N // 2 - N // 2
    frames = np.empty((len(pos), N, N), np.float32)
    for j, p in enumerate(pos):
        k = np.rint(p * m).astype(int)
        f = p * m - k
        shifted = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (q[:, None] * f[0] + q[None, :] * f[1])))
        y, x = k + corner0
        far = np.fft.fftshift(np.fft.fft2(shifted * fine_obj[y:y + m * N, x:x + m * N], norm="ortho"))
        frames[j] = rng.poisson(dose * np.abs(far[lo:lo + N, lo:lo + N]) ** 2 / m ** 2)
    scan = Scan(frames=frames, positions_m=actual, energy_ev=ENERGY_EV, distance_m=DISTANCE_M,
                detector_pixel_m=wavelength * DISTANCE_M / (N * PIXEL_M), probe=probe[None],
                source="alias_free.cxi")
    return scan, obj


def registered(rec: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The sub-pixel shift (y, x) that best aligns ``rec`` with ``truth`` (cross-correlation peak
    refined by a parabola)."""
    xc = np.fft.ifft2(np.fft.fft2(truth) * np.conj(np.fft.fft2(rec)))
    a = np.abs(xc)
    peak = np.array(np.unravel_index(np.argmax(a), a.shape))
    out = []
    for axis in (0, 1):
        idx = [peak.copy(), peak.copy(), peak.copy()]
        idx[0][axis] -= 1
        idx[2][axis] += 1
        v = [a[tuple(i % a.shape)] for i in idx]
        frac = 0.5 * (v[0] - v[2]) / (v[0] - 2 * v[1] + v[2])
        p = peak[axis] + frac
        out.append(p - a.shape[axis] if p > a.shape[axis] / 2 else p)
    return np.array(out)


# ------------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize("shape", [(9, 9), (10, 7), (72, 72)])
def test_fine_shape_keeps_the_centre_and_every_mth_pixel(shape):
    for m in (2, 3):
        fine = fine_shape(shape, m)
        assert all(f // 2 == m * (s // 2) for f, s in zip(fine, shape))  # position 0 at the same place
        assert np.zeros(fine)[::m, ::m].shape == shape


def test_upsampled_then_back_on_the_detector_grid_is_the_identity():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((2, 16, 16)) + 1j * rng.standard_normal((2, 16, 16))).astype(np.complex64)
    fine = upsampled(a, 2)
    assert fine.shape == (2, 32, 32)
    np.testing.assert_allclose(fine[:, ::2, ::2], a, atol=2e-5)  # zero-padded spectrum: samples kept
    np.testing.assert_allclose(to_detector_grid(fine, 2), a, atol=2e-5)


def test_band_limit_removes_what_lies_beyond_the_detector_and_nothing_else():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((40, 40)) + 1j * rng.standard_normal((40, 40))).astype(np.complex64)
    b = a.copy()
    band_limit(b, 2)
    f = np.fft.fftfreq(40)
    outside = (np.abs(f)[:, None] > 0.25) | (np.abs(f)[None, :] > 0.25)
    spectrum = np.fft.fft2(b)
    assert np.abs(spectrum[outside]).max() < 1e-3 * np.abs(spectrum).max()
    np.testing.assert_allclose(spectrum[~outside], np.fft.fft2(a)[~outside], rtol=1e-4, atol=1e-3)
    c = b.copy()
    band_limit(c, 2)  # a projection
    np.testing.assert_allclose(c, b, atol=1e-5)


def test_finer_scan_pads_the_detector_with_unmeasured_pixels():
    wavelength = energy_to_wavelength(ENERGY_EV)
    frames = np.random.default_rng(2).poisson(5.0, (3, 8, 8)).astype(np.float32)
    mask = np.ones((8, 8), bool)
    mask[0, 0] = False
    scan = Scan(frames=frames, positions_m=np.zeros((3, 2)), energy_ev=ENERGY_EV, distance_m=DISTANCE_M,
                detector_pixel_m=wavelength * DISTANCE_M / (8 * PIXEL_M), mask=mask)
    fine = finer_scan(scan, 2)
    assert fine.frames.shape == (3, 16, 16)
    np.testing.assert_array_equal(fine.frames[:, 4:12, 4:12], frames)  # zero frequency stays at the centre
    assert fine.frames[:, :4].sum() == 0 and fine.mask.sum() == mask.sum() and not fine.mask[4, 4]
    np.testing.assert_allclose(fine.pixel_yx_m, np.asarray(scan.pixel_yx_m) / 2, rtol=1e-12)
    np.testing.assert_array_equal(fine.positions_m, scan.positions_m)


@pytest.mark.parametrize("bad", [-1, 5, 1.5, True, "2"])
def test_an_impossible_oversample_is_refused_by_name(bad):
    with pytest.raises(InputError, match="oversample"):
        validate_options(PtychoOptions(oversample=bad))


# ------------------------------------------------------------------------------ reconstruction
@pytest.fixture(scope="module")
def bright_alias_free():
    scan, obj = alias_free_scan(1e9, seed=0)
    runs = {m: reconstruct(scan, object_shape=obj.shape, frc=False, options=PtychoOptions(oversample=m))
            for m in (1, 2)}
    return scan, obj, runs


def test_the_fine_model_fits_bright_frames_made_without_aliasing(bright_alias_free):
    """The error metric against its Poisson floor F (≈ 6.6·10⁻⁷ here). The fine model with the
    true object and probe leaves about 5 F: its sub-pixel bins (1/16 of a fine pixel) round the
    positions. A fit can only do as well, so ≤ 20 F leaves a factor of 4 for convergence. The
    one-grid model cannot represent the unaliased frames: measured 340 F; ≥ 100 F says that
    aliasing, not noise or convergence, is what it misses."""
    _, _, runs = bright_alias_free
    floor = runs[1].info["noise_floor"]
    assert runs[2].info["noise_floor"] == pytest.approx(floor, rel=1e-6)  # the padding adds no data
    assert runs[2].errors[-1] <= 20 * floor
    assert runs[1].errors[-1] >= 100 * floor
    assert runs[2].info["oversample"] == 2 and runs[1].info["oversample"] == 1
    # what the run reports of it: the one grid is model-limited (MODEL_LIMITED_FLOORS), the fine one not
    assert runs[1].info["error_over_floor"] >= MODEL_LIMITED_FLOORS
    assert runs[2].info["error_over_floor"] == pytest.approx(runs[2].errors[-1] / floor, rel=1e-6)
    assert runs[2].info["error_over_floor"] < MODEL_LIMITED_FLOORS


def test_the_fine_model_returns_a_better_image_on_the_detectors_grid(bright_alias_free):
    """The results come back on the detector's grid: the same shapes and pixel as the one-grid
    run's, the image where the truth is (within ¼ px: an off-by-one of the fine grid's centre
    would be ½ px), the probe scaled so that probe × image holds the frames' photons (within 2 %:
    the one-grid model's aliasing moves a little power across the detector's edge). The image's
    optical-density error against the truth (RMS over the OD's spread, central 24², insensitive
    to the phase ramp a field without air leaves): 0.069 one-grid, 0.017 fine on this seed;
    seeds 0–4 0.049–0.069 against 0.010–0.039, the ratio 0.18–0.67. It must fall below ¾."""
    scan, obj, runs = bright_alias_free
    one, fine = runs[1], runs[2]
    assert fine.transmission.shape == one.transmission.shape == obj.shape
    assert fine.probe.shape == one.probe.shape == (1, N, N)
    assert fine.background.shape == (N, N)
    assert fine.pixel_m == pytest.approx(one.pixel_m, rel=1e-12)
    assert fine.info["object_shape"] == obj.shape
    np.testing.assert_allclose(fine.info["positions_m"], scan.positions_m, atol=0.3 * PIXEL_M)
    shift = registered(fine.transmission, obj)
    assert np.all(np.abs(shift) < 0.25), shift

    def od_error(rec):
        rec = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(rec), registered(rec, obj)))
        c = obj.shape[0] // 2
        od_rec, od_true = (-2 * np.log(np.abs(a[c - 12:c + 12, c - 12:c + 12])) for a in (rec, obj))
        diff = (od_rec - od_rec.mean()) - (od_true - od_true.mean())
        return float(np.sqrt(np.mean(diff ** 2)) / od_true.std())

    assert od_error(fine.transmission) < 0.75 * od_error(one.transmission)
    # photons: |F[P·O_j]|² summed, the returned probe and image, one-grid model, against the counts
    corner = np.rint(scan.positions_m / fine.pixel_m).astype(int) + np.array(obj.shape) // 2 - N // 2
    model = sum(np.sum(np.abs(fine.probe[0] * fine.transmission[y:y + N, x:x + N]) ** 2) for y, x in corner)
    assert model == pytest.approx(float(scan.frames.sum()), rel=0.02)


def test_the_fine_grid_runs_the_split_half_frc_on_the_detectors_grid():
    """The halves are brought to the detector's grid before their FRC: its rings end at that
    grid's Nyquist frequency (on the fine grid they would run to twice it), and no half-period
    resolution finer than one of its pixels can come out."""
    scan, obj = alias_free_scan(1e7, seed=1)
    p = reconstruct(scan, "ePIE:20", object_shape=obj.shape, frc=True, options=PtychoOptions(oversample=2))
    assert p.frc is not None and p.transmission.shape == obj.shape
    nyquist = 1 / (2 * p.pixel_m)
    assert 0.9 * nyquist < p.frc.frequency_per_m.max() <= nyquist * 1.001
    assert np.isnan(p.frc.resolution_m) or p.frc.resolution_m >= p.pixel_m


def test_oversample_zero_takes_the_finer_grid_only_where_the_detectors_is_model_limited(bright_alias_free):
    """``oversample = 0`` runs the detector's grid and, from ``MODEL_LIMITED_FLOORS`` times the
    Poisson floor up, the finer grid too, keeping the better fit: on the bright unaliased scan
    (one grid ~340 F) the finer grid's result; on a dim scan (10⁵ photons, about 1 F:
    noise-limited) the one grid's alone, the same bits as ``oversample = 1``.

    The finer grid's run starts from the positions the first run refined: the same bits as
    ``oversample = 2`` on the scan with those positions (``reconstruct``'s image, probe and the
    positions' history are those of that run; only ``initial_positions_m`` stays the file's)."""
    scan, obj, runs = bright_alias_free
    auto = reconstruct(scan, object_shape=obj.shape, frc=False, options=PtychoOptions(oversample=0))
    assert auto.info["oversample"] == 2 and "the finer grid kept" in auto.info["oversample_rule"]
    assert "from its refined positions" in auto.info["oversample_rule"]
    moved = dataclasses.replace(scan, positions_m=runs[1].info["positions_m"])
    fine = reconstruct(moved, object_shape=obj.shape, frc=False, options=PtychoOptions(oversample=2))
    np.testing.assert_array_equal(auto.transmission, fine.transmission)
    np.testing.assert_array_equal(auto.info["positions_m"], fine.info["positions_m"])
    np.testing.assert_array_equal(auto.info["initial_positions_m"], scan.positions_m)
    dim, dim_obj = alias_free_scan(1e5, seed=0)
    one = reconstruct(dim, "ePIE:40", object_shape=dim_obj.shape, frc=False)
    auto = reconstruct(dim, "ePIE:40", object_shape=dim_obj.shape, frc=False, options=PtychoOptions(oversample=0))
    assert auto.info["oversample"] == 1 and f"(< {MODEL_LIMITED_FLOORS:g}×)" in auto.info["oversample_rule"]
    assert auto.info["error_over_floor"] < 3
    np.testing.assert_array_equal(auto.transmission, one.transmission)


@pytest.mark.parametrize("one_grid, fine, stop, kept", [(300.0, 7.0, "converged", 2), (150.0, 400.0, "converged", 1),
                                                        (10.0, None, "converged", 1),
                                                        (300.0, None, "max_iterations", 1),
                                                        (300.0, None, "converged", 1)])
def test_the_grid_from_the_fit_keeps_the_lower_misfit(one_grid, fine, stop, kept):
    """``_grid_from_fit``'s choice alone, with the two runs' results stood in for: the finer grid
    runs only where the detector's grid converged at 20 F or more (a run cut short is above its
    floor for want of iterations) and is kept only where it fits better (chemtomo's own aliased
    frames at 10⁹: the one grid 3.7 F against 25 F, cell 14, seed 0)."""
    from types import SimpleNamespace

    from chemtomo.ptycho.reconstruct import _grid_from_fit

    calls, seen, starts = [], [], []

    def call(options, progress, warn_detector, _final=None, _start=None):
        calls.append(options.oversample)
        starts.append(_start)
        if _final is not None:  # the refined positions, which the finer grid's run starts from
            _final["full"] = "the first run's positions"
        if progress is not None:
            progress(5, 10)
        ratio = one_grid if options.oversample == 1 else fine
        return SimpleNamespace(info={"error_over_floor": ratio, "oversample": options.oversample, "seconds": 1.0,
                                     "stop_reason": stop})

    out = _grid_from_fit(call, PtychoOptions(oversample=0), lambda done, total: seen.append((done, total)), True)
    assert out.info["oversample"] == kept
    reran = one_grid >= MODEL_LIMITED_FLOORS and stop == "converged"
    assert calls == ([1, 2] if reran else [1])
    assert starts == ([None, {"full": "the first run's positions"}] if reran else [None])
    if reran:  # one progress bar over both runs
        assert seen == [(5, 10), (15, 20)] and out.info["seconds"] == 2.0
        assert ("the finer grid kept" if kept == 2 else "the detector's grid kept") in out.info["oversample_rule"]


def test_the_finer_grids_halves_start_from_their_own_refined_positions():
    """``_grid_from_fit``'s plumbing with the split-half FRC: the first run hands over the refined
    positions (metres) of the full scan and of each half, the rows each used, and a run on the
    finer grid starts all three from them and still returns its FRC on the detector's grid."""
    scan, obj = alias_free_scan(1e7, seed=1)
    finals: dict = {}
    one = reconstruct(scan, "ePIE:5", object_shape=obj.shape, frc=True, options=PtychoOptions(oversample=1),
                      _final=finals)
    assert set(finals) == {"full", 0, 1}
    np.testing.assert_array_equal(finals["full"], one.info["positions_m"])
    assert finals[0].shape == (len(range(0, scan.n_frames, 2)), 2)
    assert finals[1].shape == (len(range(1, scan.n_frames, 2)), 2)
    np.testing.assert_allclose(finals[1], scan.positions_m[1::2], atol=2 * one.pixel_m)
    fine = reconstruct(scan, "ePIE:5", object_shape=obj.shape, frc=True, options=PtychoOptions(oversample=2),
                       _start=finals)
    assert fine.frc is not None and fine.transmission.shape == obj.shape
