"""Optical density from complex transmissions: air detection, normalisation, phase ramps."""

import logging
import sys

import numpy as np
import pytest

from chemtomo.chem import optical_density
from chemtomo.core import InputError


def _transmissions(n=3, shape=(64, 64), noise=0.004, seed=0):
    """Stack of T = A e^{iφ} with a disc (OD 0.3, phase −0.2) off centre, a global amplitude
    scale, a phase offset and a linear ramp that differ per image, plus complex noise."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    yc, xc = yy - (ny - 1) / 2, xx - (nx - 1) / 2
    disc = ((yy - 30) ** 2 + (xx - 26) ** 2 < 14 ** 2).astype(np.float64)
    od_true = 0.3 * disc
    phi_true = -0.2 * disc
    scale = rng.uniform(0.6, 0.9, n)
    offset = rng.uniform(-3, 3, n)
    ramp = rng.uniform(-0.3, 0.3, (n, 2))             # rad/pixel: wraps several times
    phase = phi_true + offset[:, None, None] + ramp[:, 0, None, None] * yc + ramp[:, 1, None, None] * xc
    t = scale[:, None, None] * np.exp(-od_true / 2) * np.exp(1j * phase)
    t = t + noise * scale[:, None, None] * (rng.normal(size=t.shape) + 1j * rng.normal(size=t.shape))
    return t.astype(np.complex64), od_true, phi_true, disc.astype(bool), ramp


def test_od_and_phase_recovered_with_automatic_air():
    t, _od_true, _phi_true, disc, ramp = _transmissions()
    od, phase, info = optical_density(t, return_phase=True, return_info=True)
    assert od.dtype == np.float32 and phase.dtype == np.float32 and od.shape == t.shape
    # the automatic air region avoids the disc and covers most of the rest
    assert not np.any(info.air_mask & disc[None])
    assert np.all(info.air_mask.reshape(3, -1).sum(1) > 0.5 * (~disc).sum())
    # per-pixel OD noise: complex noise 0.004 relative -> sigma(OD) = 2 x 0.004 = 0.008;
    # the mean over the ~600-pixel disc interior has sigma 3e-4: 0.002 is > 5 sigma
    inner = np.zeros_like(disc)
    inner[20:40, 16:36] = True
    inner &= disc
    assert np.all(np.abs(od[:, inner].mean(axis=1) - 0.3) < 2e-3)
    assert np.all(np.abs(phase[:, inner].mean(axis=1) + 0.2) < 2e-3)
    assert np.all(np.abs(np.nanmean(np.where(info.air_mask, od, np.nan), axis=(1, 2))) < 1e-3)
    # ramp recovered (rad/pixel), from ~3000 air pixels at 0.004 rad noise: error << 1e-4
    assert np.allclose(info.phase_plane[:, 1:], ramp, atol=1e-4)
    assert np.allclose(info.noise_sigma, 0.008, rtol=0.1)
    assert info.n_nonfinite == 0 and info.n_negative == 0


def test_single_image_and_given_air_mask():
    t, od_true, _, disc, _ = _transmissions(n=1, noise=0.0)
    air = np.ones(disc.shape, bool)
    air[8:54, 4:50] = False
    od = optical_density(t[0], air_mask=air)
    # noise-free: exact to float32 round-off of log and complex products
    assert od.shape == disc.shape
    assert np.max(np.abs(od - od_true)) < 1e-4


def test_image_without_sample_is_all_air():
    # pure noise: no class separation, so every pixel is air and the OD has zero mean
    rng = np.random.default_rng(3)
    t = (0.7 * np.exp(1j * 0.5) + 0.003 * (rng.normal(size=(48, 48)) + 1j * rng.normal(size=(48, 48))))
    od, info = optical_density(t.astype(np.complex64), return_info=True)
    assert info.air_mask.sum() > 0.8 * 48 * 48          # all but the 2-pixel eroded border
    assert abs(float(np.mean(od))) < 5 * 0.006 / 48     # sigma(OD) ~ 0.006 over 2304 pixels


def test_zero_and_bright_pixels_are_masked_and_counted(caplog):
    t, _, _, _, _ = _transmissions(n=2)
    t[0, 5, 5] = 0
    t[1, 6, 7] = np.nan
    t[1, 60, 60] *= 3.0                                  # |T| 3x the air: OD = -2.2, impossible
    with caplog.at_level(logging.INFO, logger="chemtomo.chem.optical_density"):  # 3 of 8192: logged as info
        od, info = optical_density(t, return_info=True)
    assert info.n_nonfinite == 2 and info.n_negative == 1
    assert np.isnan(od[0, 5, 5]) and np.isnan(od[1, 6, 7]) and np.isnan(od[1, 60, 60])
    assert info.invalid.sum() == 3
    assert "masked 2 pixels with zero or non-finite |T| and 1 with OD below" in caplog.text
    od0 = optical_density(t, fill=0.0)
    assert od0[1, 60, 60] == 0.0


def test_real_amplitude_input_and_errors():
    t, _, _, _, _ = _transmissions(n=1, noise=0.0)
    od_amp = optical_density(np.abs(t[0]))
    od_cplx = optical_density(t[0])
    assert np.max(np.abs(od_amp - od_cplx)) < 1e-5
    with pytest.raises(InputError, match=r"transmission must be an image \(ny, nx\) or a stack \(n, ny, nx\), got shape \(4,\)"):
        optical_density(np.ones(4, np.complex64))
    with pytest.raises(InputError, match=r"air_mask has shape \(3, 3\); expected \(64, 64\)"):
        optical_density(t, air_mask=np.ones((3, 3), bool))
    with pytest.raises(InputError, match=r"images \[0\] have fewer than 16 usable air pixels"):
        optical_density(t[0], air_mask=np.zeros((64, 64), bool))


def test_simulated_plate_projections_round_trip():
    # complex transmissions of simulated plates at 708.2 eV (OD from the simulator, phase from
    # its refractive index, DESIGN.md: T = exp(-OD/2) exp(-i k ∫δ dz)), distorted by a global
    # scale, offset and ramp as a ptychographic reconstruction is: the OD must come back to the
    # simulator's to within the noise (complex noise 0.002 -> sigma(OD) = 0.004 per pixel)
    from chem_sim import VOXEL_M, sample

    from chemtomo.core import energy_to_wavelength
    from chemtomo.simulate import od_tilt_series, phase_volume_projections, refractive_index

    s = sample()
    angles = np.array([-40.0, 0.0, 40.0])
    od_true = od_tilt_series(s, [708.2], angles)[708.2]
    lfp, fp = phase_volume_projections(s, angles)
    k = 2 * np.pi / energy_to_wavelength(708.2)
    delta = [refractive_index(p, 708.2)[0] for p in ("LiFePO4", "FePO4")]
    phi_true = -k * VOXEL_M * (delta[0] * lfp + delta[1] * fp)
    ny, nx = od_true.shape[1:]
    xx = np.arange(nx) - (nx - 1) / 2
    rng = np.random.default_rng(4)
    t = 0.7 * np.exp(-od_true / 2 + 1j * (phi_true + 1.0 + 0.1 * xx))
    t = (t + 0.7 * 0.002 * (rng.normal(size=t.shape) + 1j * rng.normal(size=t.shape))).astype(np.complex64)
    od, phase, info = optical_density(t, return_phase=True, return_info=True)
    # 5 sigma of the per-pixel noise, plus the bias of the air median normalisation (~1e-4)
    assert np.nanmax(np.abs(od - od_true)) < 5 * 0.004 + 1e-3
    assert np.nanmax(np.abs(phase - phi_true)) < 5 * 0.002 + 1e-3
    assert info.n_nonfinite == 0 and info.n_negative == 0


def _by_blocks(t, monkeypatch, pixels, **kw):
    """``optical_density`` taking ``pixels`` of images at a time (its module's ``CHUNK_PIXELS``;
    ``chemtomo.chem.optical_density`` names the function, hence ``sys.modules``)."""
    monkeypatch.setattr(sys.modules[optical_density.__module__], "CHUNK_PIXELS", pixels)
    return optical_density(t, return_phase=True, return_info=True, **kw)


def test_blocks_of_images_give_the_same_bits_as_the_whole_stack(monkeypatch):
    """Every step works image by image, so the images taken one at a time, three at a time (a
    last block of one) or all at once give the same OD, phase, air and masks to the bit; a few
    non-finite and zero pixels take the masked branches too."""
    t, *_ = _transmissions(n=7, noise=0.01, seed=3)
    t[2, 5, 7] = np.nan
    t[4, 40:42, 10] = 0
    runs = [_by_blocks(t, monkeypatch, px) for px in (1, 3 * 64 * 64, 1 << 30)]
    for od, phase, info in runs[1:]:
        np.testing.assert_array_equal(od, runs[0][0])
        np.testing.assert_array_equal(phase, runs[0][1])
        np.testing.assert_array_equal(info.air_mask, runs[0][2].air_mask)
        np.testing.assert_array_equal(info.invalid, runs[0][2].invalid)
        np.testing.assert_array_equal(info.noise_sigma, runs[0][2].noise_sigma)
        np.testing.assert_array_equal(info.phase_plane, runs[0][2].phase_plane)
        assert (info.n_nonfinite, info.n_negative) == (runs[0][2].n_nonfinite, runs[0][2].n_negative) == (3, 0)


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning", "ignore:Mean of empty slice:RuntimeWarning")
def test_too_little_air_names_the_images_of_the_whole_stack(monkeypatch):
    """The air check sees every block before it fails: images 1 and 5 of 6, taken two at a time,
    are named by their index in the stack, as when the stack is taken at once. (The empty images'
    medians warn where they share a block with others, as they always did.)"""
    t, *_ = _transmissions(n=6, noise=0.0)
    t[[1, 5]] = 0  # nothing usable at all in these two
    for px in (2 * 64 * 64, 1 << 30):
        with pytest.raises(InputError, match=r"images \[1, 5\] have fewer than 16 usable air pixels"):
            _by_blocks(t, monkeypatch, px)
    with pytest.raises(InputError, match="no finite, non-zero pixel"):
        _by_blocks(np.zeros((4, 16, 16), np.complex64), monkeypatch, 2 * 16 * 16)


def test_separable_phase_plane_matches_the_direct_fit():
    """The plane fit from row and column moments and the separable phase factor equal, to
    double-precision round-off, the direct least squares over every pixel and the direct
    exponential of the plane."""
    module = sys.modules[optical_density.__module__]
    rng = np.random.default_rng(1)
    n, ny, nx = 4, 23, 31
    values = rng.normal(size=(n, ny, nx))
    weights = rng.random((n, ny, nx)) > 0.3
    yv, xv = np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2
    yy, xx = np.meshgrid(yv, xv, indexing="ij")
    basis = np.stack([np.ones_like(yy), yy, xx])
    w = weights.astype(np.float64)
    m = np.einsum("nyx,iyx,jyx->nij", w, basis, basis)
    rhs = np.einsum("nyx,iyx->ni", w * np.where(weights, values, 0), basis)
    direct = np.linalg.solve(m, rhs[..., None])[..., 0]
    np.testing.assert_allclose(module._plane_fit(values, weights, yv, xv), direct, rtol=1e-12, atol=1e-14)
    mean_only = module._plane_fit(values, weights, yv, xv, ramp=False)
    np.testing.assert_allclose(mean_only[:, 0], (w * values).sum(axis=(1, 2)) / w.sum(axis=(1, 2)), rtol=1e-12)
    assert not mean_only[:, 1:].any()
    c = rng.normal(size=(3, n))
    factor = module._phase_factor(c[0], c[1], c[2], yv, xv)
    want = np.exp(-1j * (c[0, :, None, None] + c[1, :, None, None] * yy + c[2, :, None, None] * xx))
    # one rounding to complex64 of values equal to ~1e-15: within a float32 ulp (6e-8)
    assert factor.dtype == np.complex64 and np.max(np.abs(factor - want)) < 1.2e-7
