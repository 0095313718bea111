"""Tests of the full-field TXM simulator (chemtomo.simulate.txm): intensities, flats, darks, pixels."""

import math

import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.simulate import TXM_PRESETS, simulate_txm, zone_plate_pixel_m

SMALL = {"shape": (17, 25, 25), "voxel_m": 150e-9, "n_particles": 1, "angles_deg": [-60.0, -20.0, 20.0, 60.0],
         "energies_ev": [7100.0, 7125.0, 7132.0], "pad_px": 4}


@pytest.fixture(scope="module")
def small():
    return simulate_txm("txm", seed=3, soc=0.4, **SMALL)


def test_od_from_intensities_equals_truth_within_poisson_noise(small):
    # with the true incident intensity B·d_k and the true dark level, OD_est − OD_true has the
    # variance of the counts propagated through the log: (λ + σ_read² + 1/12) / λ², λ = B d e^−OD
    # (Poisson + read noise + rounding). Over ~10,000 pixels the z-scores' mean is within
    # 4/sqrt(n) of 0 and their standard deviation within 4/sqrt(2n) (+ 1 % for the log's
    # non-linearity at these counts) of 1
    ds = small
    read2 = ds.preset.read_noise_counts ** 2 + 1.0 / 12.0
    z = []
    for i in range(len(ds.energies_ev)):
        lam0 = ds.incident(i).astype(np.float64)
        lam = lam0 * np.exp(-ds.od_detector[i].astype(np.float64))
        od = -np.log((ds.data[i].astype(np.float64) - ds.dark_level) / lam0)
        z.append(((od - ds.od_detector[i]) / (np.sqrt(lam + read2) / lam)).ravel())
    z = np.concatenate(z)
    n = z.size
    assert n > 5_000
    assert abs(z.mean()) < 4.0 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 4.0 / math.sqrt(2 * n) + 0.01


def test_od_with_measured_flats_and_darks_differs_only_by_the_drift(small):
    # as a user computes it: OD = −ln((I − <dark>)/(<flat> − <dark>)). The flats bracket the
    # tilt series, so each frame's OD is offset by ln(<flat drift>/d_k) (≤ 1 %); after removing
    # that known offset the residual is the frame's noise plus the averaged flat's (n_flat frames):
    # z-scores as above
    ds = small
    read2 = ds.preset.read_noise_counts ** 2 + 1.0 / 12.0
    z = []
    for i in range(len(ds.energies_ev)):
        dark = ds.darks[i].astype(np.float64).mean(0)
        flat = ds.flats[i].astype(np.float64).mean(0) - dark
        od = -np.log((ds.data[i].astype(np.float64) - dark) / flat)
        offset = np.log(ds.flat_drift[i].mean() / ds.drift[i])[:, None, None]
        lam0 = ds.incident(i).astype(np.float64)
        lam = lam0 * np.exp(-ds.od_detector[i].astype(np.float64))
        b = ds.beam[i].astype(np.float64) * ds.flat_drift[i].mean()
        var = (lam + read2) / lam ** 2 + (b + read2 / ds.preset.n_flat) / (ds.preset.n_flat * b ** 2)
        z.append(((od - ds.od_detector[i] - offset) / np.sqrt(var)).ravel())
    z = np.concatenate(z)
    assert abs(z.mean()) < 4.0 / math.sqrt(z.size)
    assert abs(z.std() - 1.0) < 4.0 / math.sqrt(2 * z.size) + 0.02
    assert np.all(np.abs(np.log(ds.flat_drift.mean(1)[:, None] / ds.drift)) < 0.02)


def test_flats_and_darks(small):
    # darks: the offset with its fixed pattern (σ 2) and read noise (σ 3): per-pixel mean over
    # all darks ≈ dark_level; flats: the beam profile B at its peak ≈ photons_per_pixel, falling
    # by beam_falloff to the corners (±2 % ring ripple); counts as uint16, never saturated
    ds = small
    p = ds.preset
    darks = ds.darks.astype(np.float64)
    assert darks.mean() == pytest.approx(p.dark_offset_counts, abs=0.5)
    assert darks.std() == pytest.approx(math.hypot(p.dark_pattern_counts, p.read_noise_counts), rel=0.1)
    flat = ds.flats.astype(np.float64).mean(axis=(0, 1)) - ds.dark_level
    assert flat.max() == pytest.approx(p.photons_per_pixel, rel=0.05)
    corner = flat[[0, 0, -1, -1], [0, -1, 0, -1]].mean() / flat.max()
    assert corner == pytest.approx(1.0 - p.beam_falloff, abs=0.12)
    assert ds.data.dtype == np.uint16 and ds.data.max() < 65535 and ds.flats.max() < 65535


def test_pixel_size_follows_the_zone_plate_magnification_law():
    # thin lens refocused at fixed sample–detector distance: pixel ∝ E to first order; the
    # exact law deviates from E/E0 by ≈ (2/M)·(E/E0 − 1) relative (M = 40 → 5 % of the 1.3 %)
    e = np.asarray(TXM_PRESETS["txm"].energies_ev)
    px = zone_plate_pixel_m(e, pixel_ref_m=60e-9, energy_ref_ev=float(e[0]), magnification=40.0)
    linear = e / e[0]
    assert px[0] == pytest.approx(60e-9, rel=1e-12)
    assert np.all(np.diff(px) > 0)
    assert np.all(np.abs(px / 60e-9 - linear) <= 3.0 / 40.0 * (linear - 1.0) + 1e-12)
    assert px[-1] / px[0] - 1.0 == pytest.approx(90.0 / 7090.0, rel=0.1)
    # a larger magnification is closer to the linear law
    px_big = zone_plate_pixel_m(e, pixel_ref_m=60e-9, energy_ref_ev=float(e[0]), magnification=400.0)
    assert np.max(np.abs(px_big / 60e-9 - linear)) < np.max(np.abs(px / 60e-9 - linear)) / 5


def test_each_energy_is_imaged_with_its_pixel():
    # the recorded OD integrates to ∫OD dA / pixel²: Σ od_detector · pixel(E)² equals
    # Σ od_truth · voxel² · scale² (the misalignment scale stretches the image by s per axis).
    # Across 7090 → 7400 eV the pixel grows 4.4 %, the sum falls 8.5 %. Sampling the bilinear
    # image on a shifted, scaled grid is a Riemann sum whose error comes from the plate's edges:
    # ≲ 0.1 px of area per px of perimeter, relative ≈ 0.1·perimeter/area ≈ 0.6 % for a plate
    # ≈ 12 × 15 px in projection, hence 1 %
    e = [7090.0, 7400.0]
    ds = simulate_txm("txm", seed=4, soc=0.0, shape=(25, 33, 33), voxel_m=75e-9, n_particles=1,
                      angles_deg=[0.0, 50.0], energies_ev=e, pad_px=6)
    assert ds.pixel_m[1] / ds.pixel_m[0] == pytest.approx(7400.0 / 7090.0, rel=0.01)
    for i in range(2):
        det = ds.od_detector[i].astype(np.float64).sum(axis=(1, 2)) * ds.pixel_m[i] ** 2
        truth = ds.od_truth(i).astype(np.float64).sum(axis=(1, 2)) * ds.voxel_m ** 2 * ds.alignment.scale ** 2
        np.testing.assert_allclose(det, truth, rtol=0.01)


def test_reproducible_and_seed_dependent():
    a = simulate_txm("txm", seed=7, **SMALL)
    b = simulate_txm("txm", seed=7, **SMALL)
    c = simulate_txm("txm", seed=8, **SMALL)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.flats, b.flats)
    assert not np.array_equal(a.data, c.data)


def test_default_preset_sizes():
    # the demo-size contract with the end-to-end tests: 21 angles over 180°, 16 energies across
    # the Fe K-edge (denser across it), 60 nm voxels, detector = field + 2·8 px
    p = TXM_PRESETS["txm"]
    e = np.asarray(p.energies_ev)
    assert len(p.angles_deg) == 21 and e.size == 16
    assert 7085 <= e[0] < 7100 and 7170 < e[-1] <= 7185
    steps = np.diff(e)
    assert steps[(e[:-1] >= 7121) & (e[:-1] < 7129)].max() <= 2.0 < steps.max()


def test_bad_input():
    with pytest.raises(InputError, match="unknown preset"):
        simulate_txm("nope")
    with pytest.raises(InputError, match="unknown parameter"):
        simulate_txm("txm", frame_px=64)
    with pytest.raises(InputError, match="strictly increasing"):
        simulate_txm("txm", energies_ev=[7130.0, 7120.0])
    with pytest.raises(InputError, match="6950–7400 eV"):
        simulate_txm("txm", energies_ev=[708.2, 710.2])
    with pytest.raises(InputError, match="n_flat"):
        simulate_txm("txm", n_flat=0)
    with pytest.raises(InputError, match="magnification"):
        zone_plate_pixel_m([7100.0], pixel_ref_m=60e-9, energy_ref_ev=7100.0, magnification=1.0)
