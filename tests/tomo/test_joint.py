"""Joint spectral reconstruction (tomo/joint.py): the stacked component volumes fitted to every energy."""

import numpy as np
import pytest

from chemtomo.core.errors import InputError
from chemtomo.tomo import joint_reconstruct, project, sart
from chemtomo.tomo.joint import check_mixing

ANGLES = np.arange(-80.0, 80.0, 4.0)          # 40 angles over 160°
FULL = np.arange(-90.0, 90.0, 3.0)            # 60 angles, no missing wedge: a unique solution
MIX = np.array([[0.059, 0.022], [0.036, 0.052]], np.float32)   # μ·voxel of LiFePO4/FePO4 at 708.2/710.2 eV


def phantom(n: int = 32, ny: int = 3) -> np.ndarray:
    """Two components (K, ny, n, n): a plate of one, a plate of the other, an overlap of both."""
    c = np.zeros((2, ny, n, n), np.float32)
    c[0, :, 10:14, 4:20] = 1.0
    c[1, :, 10:14, 14:28] = 0.8
    c[0, :, 18:22, 8:24] = 0.3
    c[1, :, 18:22, 8:24] = 0.7
    return c


def tilts_of(c: np.ndarray, mix: np.ndarray, angles=ANGLES) -> np.ndarray:
    return np.stack([project(np.tensordot(m, c, 1), angles) for m in mix])


def test_noise_free_recovery_of_both_components():
    c = phantom()
    full = FULL
    rec = joint_reconstruct(tilts_of(c, MIX, full), full, MIX, iterations=40)
    assert rec.shape == c.shape and rec.dtype == np.float32
    # the preconditioned update is SART's on every energy, unmixed: after the same number of
    # sweeps each component is as far from the truth as SART's volume is from its own, times the
    # unmixing's amplification of relative errors (≤ cond(M) ≈ 3; 2 allows for the constraint's gain)
    v = np.tensordot(MIX[0], c, 1)
    v_rec = sart(project(v, full), full, iterations=40)
    tol = 2.0 * np.linalg.norm(v_rec - v) / np.linalg.norm(v)
    assert tol < 0.05, tol  # SART itself has nearly converged at 40 sweeps
    for k in range(2):
        err = np.linalg.norm(rec[k] - c[k]) / np.linalg.norm(c[k])
        assert err < tol, (k, err, tol)


def test_unconstrained_joint_equals_unmixed_per_energy_sart():
    # with N = K and no constraint, the spectrally preconditioned update is exactly the SART update
    # of each energy's volume, unmixed: the two must agree to float32 rounding over 10 sweeps
    rng = np.random.default_rng(0)
    t = tilts_of(phantom(), MIX) + rng.normal(0, 0.01, (2, ANGLES.size, 3, 32)).astype(np.float32)
    rec = joint_reconstruct(t, ANGLES, MIX, iterations=10, nonneg=False, relaxation=1.0)
    vols = np.stack([sart(t[e], ANGLES, iterations=10, nonneg=False, relaxation=1.0) for e in range(2)])
    two_step = np.tensordot(np.linalg.inv(MIX.astype(np.float64)), vols, 1)
    scale = np.abs(two_step).max()
    assert np.abs(rec - two_step).max() < 1e-4 * scale


def test_non_negativity_holds_on_noisy_data():
    rng = np.random.default_rng(1)
    t = tilts_of(phantom(), MIX) + rng.normal(0, 0.05, (2, ANGLES.size, 3, 32)).astype(np.float32)
    rec = joint_reconstruct(t, ANGLES, MIX, iterations=5)
    free = joint_reconstruct(t, ANGLES, MIX, iterations=5, nonneg=False)
    assert free.min() < -0.05          # the noise does push components negative without the constraint
    assert rec.min() >= 0.0


def test_occupancy_bound_is_respected():
    rng = np.random.default_rng(2)
    c = phantom()
    c[:, :, 10:14, 14:20] = [[[[0.5]]], [[[0.5]]]]     # full voxels where the plates meet: Σ c = 1
    t = tilts_of(c, MIX) + rng.normal(0, 0.05, (2, ANGLES.size, 3, 32)).astype(np.float32)
    free = joint_reconstruct(t, ANGLES, MIX, iterations=5)
    rec = joint_reconstruct(t, ANGLES, MIX, iterations=5, occupancy=1.0)
    assert free.sum(axis=0).max() > 1.05   # noise overfills voxels without the bound
    # the capped-simplex projection is exact up to float32 rounding of the sum of two values
    assert rec.sum(axis=0).max() <= 1.0 + 1e-6 and rec.min() >= 0.0


def test_missing_projections_equal_absent_ones():
    # a projection that is NaN at every energy gives every ray weight zero: the SART update of
    # its subset is zero, so the result equals the reconstruction without that angle (to rounding)
    rng = np.random.default_rng(3)
    t = tilts_of(phantom(), MIX) + rng.normal(0, 0.01, (2, ANGLES.size, 3, 32)).astype(np.float32)
    drop = [5, 17, 30]
    t_nan = t.copy()
    t_nan[:, drop] = np.nan
    keep = np.setdiff1d(np.arange(ANGLES.size), drop)
    with_nan = joint_reconstruct(t_nan, ANGLES, MIX, iterations=8)
    absent = joint_reconstruct(t[:, keep], ANGLES[keep], MIX, iterations=8)
    assert np.abs(with_nan - absent).max() < 1e-5 * np.abs(absent).max()


def test_missing_rays_at_one_energy_are_left_out():
    # NaN rays at one energy must not pull the components towards zero: the result stays as close
    # to the truth as with complete data (10 % of one energy's rays lost changes the error little)
    rng = np.random.default_rng(4)
    c = phantom()
    t = tilts_of(c, MIX)
    t_nan = t.copy()
    holes = rng.random(t.shape[1:]) < 0.1
    t_nan[1][holes] = np.nan
    full = joint_reconstruct(t, ANGLES, MIX, iterations=20)
    part = joint_reconstruct(t_nan, ANGLES, MIX, iterations=20)
    e_full = np.linalg.norm(full - c) / np.linalg.norm(c)
    e_part = np.linalg.norm(part - c) / np.linalg.norm(c)
    assert np.all(np.isfinite(part)) and e_part < 1.5 * e_full + 0.01, (e_part, e_full)


def test_three_energies_two_components():
    mix3 = np.vstack([MIX, [[0.012, 0.011]]])   # a pre-edge row: both absorb little, alike
    c = phantom()
    rec = joint_reconstruct(tilts_of(c, mix3, FULL), FULL, mix3, iterations=40)
    # as the two-energy recovery (test above: SART's error at 40 sweeps is ≈ 1 %, ×2)
    assert np.linalg.norm(rec - c) / np.linalg.norm(c) < 0.03


def test_rank_deficient_mixing_is_refused_with_its_singular_values():
    mix = np.array([[1.0, 2.0], [0.5, 1.0], [2.0, 4.0]], np.float32)   # second column = 2 × first
    t = np.zeros((3, ANGLES.size, 2, 16), np.float32)
    with pytest.raises(InputError, match=r"singular values .* condition number inf"):
        joint_reconstruct(t, ANGLES, mix, iterations=1)
    with pytest.raises(InputError, match="condition number"):
        check_mixing([[1.0, 1.0], [1.0, 1.0001]], 2)


@pytest.mark.parametrize("kwargs, message", [
    ({"mixing": np.ones((2, 3))}, "at least as many energies as components"),
    ({"mixing": np.ones((3, 2))}, "one row per energy"),
    ({"occupancy": 1.0, "nonneg": False}, "needs nonneg"),
    ({"tv": -1.0}, "tv must be"),
    ({"subsets": 0}, "subsets must be"),
    ({"x0": np.zeros((2, 3, 8, 8))}, "x0 must have shape"),
])
def test_bad_input_is_refused(kwargs, message):
    t = np.zeros((2, ANGLES.size, 3, 16), np.float32)
    args = {"mixing": MIX, **kwargs}
    mix = args.pop("mixing")
    with pytest.raises(InputError, match=message):
        joint_reconstruct(t, ANGLES, mix, iterations=1, **args)


def test_tv_step_flattens_noise_inside_the_plates():
    # TV favours piecewise-constant components: on noisy data the spread inside a plate drops
    rng = np.random.default_rng(5)
    c = phantom()
    t = tilts_of(c, MIX) + rng.normal(0, 0.03, (2, ANGLES.size, 3, 32)).astype(np.float32)
    plain = joint_reconstruct(t, ANGLES, MIX, iterations=10)
    smooth = joint_reconstruct(t, ANGLES, MIX, iterations=10, tv=0.05)
    inside = (slice(None), slice(11, 13), slice(6, 12))
    assert smooth[0][inside].std() < 0.8 * plain[0][inside].std()


def test_info_reports_residual_and_local_sigma():
    rng = np.random.default_rng(6)
    sigma = 0.01
    t = tilts_of(phantom(), MIX, FULL) + rng.normal(0, sigma, (2, FULL.size, 3, 32)).astype(np.float32)
    rec, info = joint_reconstruct(t, FULL, MIX, iterations=40, relaxation=1.0, return_info=True)
    # the residual holds the noise (60 rays per pixel against 2 unknowns: the fit absorbs ~3 % of
    # it), plus SART's cycle: with λ = 1 it does not settle on the least-squares point of
    # inconsistent data (measured 1.6-1.8 σ at λ = 1; 2.6-2.9 σ at the default λ = 1.8); 2.5 σ
    # bounds it at λ = 1, below 0.9 σ it would fit noise
    assert np.all((info.residual_rms > 0.9 * sigma) & (info.residual_rms < 2.5 * sigma)), info.residual_rms
    assert info.sigma.shape == rec.shape and np.all(info.sigma[:, :, 8:24, 8:24] > 0)
    # s² is the residual's mean square per measured ray. The former denominator, rays − unknowns,
    # made it 2.1× larger here (11520 rays, 6144 unknowns) and was ≤ 0 on grids with more voxels
    # than rays (the held-out series of tests/chem), where s² became the raw sum of squares
    assert info.noise_variance == pytest.approx(np.mean(info.residual_rms ** 2), rel=1e-3)
    assert info.condition_number == pytest.approx(np.linalg.cond(MIX.astype(np.float64)), rel=1e-6)


def test_slab_depth_nz_differs_from_the_width():
    # a slab of 16 voxels along the beam (plates lie flat): the same recovery as the square slice
    # (tolerance of test_noise_free_recovery_of_both_components: 2 × SART's error at 40 sweeps ≈ 2 %)
    c = phantom()[:, :, 8:24, :]
    t = np.stack([project(np.tensordot(m, c, 1), FULL) for m in MIX])
    rec = joint_reconstruct(t, FULL, MIX, iterations=40, nz=16)
    assert rec.shape == c.shape
    assert np.linalg.norm(rec - c) / np.linalg.norm(c) < 0.03
