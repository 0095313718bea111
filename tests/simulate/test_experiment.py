"""Tests of the whole virtual experiment (chemtomo.simulate.experiment)."""

import math

import numpy as np
import pytest

from chemtomo.core import InputError, Scan, object_pixel_size
from chemtomo.simulate import (
    PRESETS,
    absorption_coefficient,
    misalign,
    simulate_dataset,
)


@pytest.fixture(scope="module")
def ds():
    # the demo preset at three angles: the same physics, seconds instead of tens of seconds
    return simulate_dataset("demo", seed=3, soc=0.3, angles_deg=[-60.0, 0.0, 45.0])


def test_presets_sizes():
    demo, paper = PRESETS["demo"], PRESETS["paper"]
    assert len(demo.angles_deg) == 31 and demo.angles_deg[0] == -80 and demo.angles_deg[-1] == 77
    assert demo.energies_ev == (708.2, 710.2) and demo.voxel_m == 6.7e-9 and demo.frame_px == 64
    assert np.prod(demo.shape) < 200_000 and demo.n_particles == 10
    # the paper: 158 projections from −80° to +77°, 6.7 nm voxels, ~80 particles
    assert len(paper.angles_deg) == 158 and paper.angles_deg[0] == -80 and paper.angles_deg[-1] == 77
    assert paper.voxel_m == 6.7e-9 and paper.n_particles == 80 and paper.step_m == 70e-9


def test_scans_geometry(ds):
    assert len(ds.scans) == 6
    keys = ds.scan_keys
    for i, scan in enumerate(ds.scans):
        assert isinstance(scan, Scan)
        assert (scan.angle_deg, scan.energy_ev) == tuple(keys[i])
        assert scan.frames.dtype == np.float32 and scan.frames.shape[1:] == (64, 64)
        assert 40 <= scan.n_frames <= 60
        assert scan.positions_m.shape == (scan.n_frames, 2)
    # the object pixel follows λz/(np): the voxel size at 708.2 eV, 0.28 % smaller at 710.2 eV
    p1, p2 = ds.scans[0].pixel_m, ds.scans[1].pixel_m
    assert p1 == pytest.approx(6.7e-9, rel=1e-12)
    assert p2 == pytest.approx(object_pixel_size(710.2, ds.distance_m, ds.detector_pixel_m, 64), rel=1e-12)
    assert p2 / p1 == pytest.approx(708.2 / 710.2, rel=1e-12)


def test_truth_soc(ds):
    # the phantom places domains on 4^3 sub-samples per voxel: SOC exact to < 1e-3
    assert abs(ds.sample.soc - 0.3) < 0.01


def test_frame_counts_follow_dose(ds):
    # each frame's total = dose × mean |T|² under the probe + Σ background (valid pixels),
    # Poisson noise ~ sqrt(dose) ≪ the absorption; OD of a few plates is < 2, so |T|² > e^-2
    scan = ds.scans[0]
    totals = scan.frames.sum(axis=(1, 2))
    dose, bg = ds.preset.dose_photons, ds.background[ds.mask].sum()
    assert np.all(totals <= dose + bg + 5 * math.sqrt(dose))
    assert np.all(totals >= dose * math.exp(-2.0) * 0.95)
    # frames of empty regions (corners of the raster) carry the full dose minus masked photons
    assert np.max(totals) > 0.97 * dose


def test_scan_object_is_the_misaligned_truth(ds):
    # at the first energy the object pixel is the voxel, so the object's OD cropped around its
    # centre is the misaligned truth OD on the truth grid (same cubic interpolation; clipping of
    # negative ringing and float32 differ by < 1e-4 OD)
    i = 2  # angle 0°, 708.2 eV
    obj, _pixel = ds.scan_object(i)
    od = -np.log(np.abs(obj) ** 2)
    ny, nx = ds.sample.shape[0], ds.sample.shape[2]
    cy, cx = obj.shape[0] // 2, obj.shape[1] // 2
    crop = od[cy - ny // 2: cy + ny // 2 + 1, cx - nx // 2: cx + nx // 2 + 1]
    expected = misalign(ds.od_truth(708.2), ds.alignment, 708.2)[1]
    assert np.max(np.abs(crop - np.clip(expected, 0, None))) < 2e-3 * expected.max() + 1e-4
    # OD = 2 k ∫β dz: the 0° truth OD is the sum over z of μ per voxel × voxel size
    mu = ds.mu_volume(708.2)
    np.testing.assert_allclose(ds.od_truth(708.2)[1], mu.sum(axis=1) * ds.voxel_m, rtol=1e-3,
                               atol=1e-4 * expected.max())


def test_xas_stack_and_references(ds):
    assert ds.xas_od.shape == (len(ds.xas_energies_ev), 41, 65) and ds.xas_od.dtype == np.float32
    assert 20 <= len(ds.xas_energies_ev) <= 30
    assert list(ds.references.columns) == ["energy_eV", "LiFePO4", "FePO4"]
    assert {708.2, 710.2} <= set(ds.references.energy_eV.round(6))
    # the noise-free 0° OD at 708.2 eV is the truth; noise σ = 0.005 → residual std within 20 %
    i = int(np.argmin(np.abs(ds.xas_energies_ev - 708.2)))
    resid = ds.xas_od[i] - ds.od_truth(708.2)[1]
    assert np.std(resid) == pytest.approx(0.005, rel=0.2)


def test_positions_truth(ds):
    # the actual positions jitter around the 70 nm raster by 2 nm (±30 % for 6×54 samples per axis)
    dev = ds.positions_m - ds.nominal_positions_m[None]
    assert np.std(dev) == pytest.approx(2e-9, rel=0.3)
    np.testing.assert_array_equal(ds.recorded_positions_m, ds.positions_m)  # position_error_m = 0
    np.testing.assert_array_equal(ds.scans[3].positions_m, ds.recorded_positions_m[3])


def test_scans_are_deterministic(ds):
    np.testing.assert_array_equal(ds.scans[4].frames, ds.scans[4].frames)
    other = simulate_dataset("demo", seed=3, soc=0.3, angles_deg=[-60.0, 0.0, 45.0])
    np.testing.assert_array_equal(other.scans[5].frames, ds.scans[5].frames)


def test_noise_seed_changes_only_the_photon_noise(ds):
    # the default noise seed is the sample seed: the data are those of before the option
    same = simulate_dataset("demo", seed=3, soc=0.3, angles_deg=[-60.0, 0.0, 45.0], noise_seed=3)
    np.testing.assert_array_equal(same.scans[2].frames, ds.scans[2].frames)
    assert ds.noise_seed == 3
    other = simulate_dataset("demo", seed=3, soc=0.3, angles_deg=[-60.0, 0.0, 45.0], noise_seed=11)
    assert other.seed == 3 and other.noise_seed == 11
    # same sample, misalignment, positions and detector: only the counts differ
    np.testing.assert_array_equal(other.sample.fraction, ds.sample.fraction)
    np.testing.assert_array_equal(other.alignment.shifts_px, ds.alignment.shifts_px)
    np.testing.assert_array_equal(other.scans[2].positions_m, ds.scans[2].positions_m)
    np.testing.assert_array_equal(other.mask, ds.mask)
    a, b = ds.scans[2].frames.astype(np.float64), other.scans[2].frames.astype(np.float64)
    assert not np.array_equal(a, b)
    # independent Poisson draws of one expectation: var(a - b) = 2 E[counts] (summed over the
    # frames) to within the sampling error of ~10^5 pixels, far tighter than the 10 % allowed
    valid = np.broadcast_to(ds.mask, a.shape)
    assert np.var((a - b)[valid]) == pytest.approx(np.mean((a + b)[valid]), rel=0.1)
    # and the 2D XAS noise follows the noise seed too
    assert not np.array_equal(other.xas_od, ds.xas_od)


@pytest.mark.parametrize("bad", [-1, 1.5, "a"])
def test_bad_noise_seed_raises(bad):
    with pytest.raises(InputError, match="noise_seed must be a non-negative integer"):
        simulate_dataset("demo", seed=3, angles_deg=[0.0], noise_seed=bad)


def test_mu_volume_matches_references(ds):
    mu = ds.mu_volume(710.2)
    full = (ds.sample.occupancy == 1) & (ds.sample.fraction == 1)
    assert np.allclose(mu[full], absorption_coefficient("FePO4", 710.2), rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"preset": "nope"}, "preset must be one of"),
    ({"frobnicate": 1}, "unknown parameter"),
    ({"dose_photons": -5}, "dose_photons must be a positive"),
    ({"soc": 2.0}, "soc"),
    ({"energies_ev": [708.2, 708.2]}, "energies_ev must be distinct"),
    ({"angles_deg": [0.0, 95.0]}, "angles_deg must be distinct finite angles"),
    ({"probe_diameter_m": 1e-6}, "probe_diameter_m"),
])
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(InputError, match=message):
        simulate_dataset(**kwargs)


def test_second_energy_object_on_its_own_pixel_grid(ds):
    # at 710.2 eV the object pixel is p2 = p1·708.2/710.2; the raw pixel m of the E2 grid holds
    # the aligned truth at m = c + k (s R (p − c) + t + o_E), k = p1/p2 (DESIGN convention plus the
    # pixel ratio). Sampling the object there (cubic) must give the truth OD: two cubic
    # interpolations of sharp plate edges leave an RMS error below 1 % of the peak
    from scipy import ndimage

    i = 3  # angle 0°, 710.2 eV
    obj, p2 = ds.scan_object(i)
    od = -np.log(np.abs(obj) ** 2)
    k = ds.voxel_m / p2
    ny, nx = ds.sample.shape[0], ds.sample.shape[2]
    c = np.array([(ny - 1) / 2, (nx - 1) / 2])
    a = ds.alignment
    phi = np.radians(a.rotation_deg[1])
    r = a.scale[1] * np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    p = np.stack(np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")).reshape(2, -1) - c[:, None]
    g = r @ p + (a.shifts_px[1] + a.energy_offsets_px[1])[:, None]
    m = np.array([obj.shape[0] // 2, obj.shape[1] // 2])[:, None] + k * g
    sampled = ndimage.map_coordinates(od, m, order=3).reshape(ny, nx)
    truth = ds.od_truth(710.2)[1]
    rms = np.sqrt(np.mean((sampled - truth) ** 2))
    assert rms < 0.01 * truth.max()  # measured 0.5 % of the peak
    # a wrong pixel ratio (k = 1) is measurably worse at the field edges
    m1 = np.array([obj.shape[0] // 2, obj.shape[1] // 2])[:, None] + g
    wrong = ndimage.map_coordinates(od, m1, order=3).reshape(ny, nx)
    assert np.sqrt(np.mean((wrong - truth) ** 2)) > 1.05 * rms  # measured 1.14 × (0.09 px at the edges)


@pytest.mark.slow
def test_paper_preset_runs():
    # the paper's geometry end to end for one scan (~40 s: 158 projections of a 151×129×257 volume)
    ds = simulate_dataset("paper", seed=0, soc=0.162)
    assert len(ds.scans) == 316 and ds.sample.table.shape[0] == 80
    assert abs(ds.sample.soc - 0.162) < 0.01
    scan = ds.scans[157]
    assert scan.frames.shape[1:] == (64, 64) and scan.n_frames > 300
