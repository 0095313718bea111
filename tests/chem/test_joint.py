"""chem.joint_reconstruct: phase concentrations and chemical maps straight from OD tilt series."""

import numpy as np
import pytest

from chemtomo import chem
from chemtomo.core.errors import InputError
from chemtomo.simulate import reference_spectra
from chemtomo.tomo import project

VOXEL_M = 6.7e-9
ENERGIES = [708.2, 710.2]
REFS = reference_spectra(ENERGIES)[["LiFePO4", "FePO4"]].to_numpy()
ANGLES = np.arange(-90.0, 90.0, 3.0)


def plates(ny: int = 3, n: int = 40) -> np.ndarray:
    """Volume fractions (2, ny, n, n): a LiFePO4 plate, an FePO4 plate, a half-and-half plate."""
    c = np.zeros((2, ny, n, n), np.float32)
    c[0, :, 8:12, 4:20] = 1.0
    c[1, :, 8:12, 22:36] = 1.0
    c[:, :, 24:28, 8:32] = 0.5
    return c


def ods(c: np.ndarray, refs=REFS, energies=ENERGIES, angles=ANGLES) -> dict:
    return {e: project(np.tensordot(r * VOXEL_M, c, 1), angles) for e, r in zip(energies, refs)}


def test_noise_free_fraction_and_soc():
    c = plates()
    res = chem.joint_reconstruct(ods(c), ANGLES, REFS, voxel_m=VOXEL_M, iterations=40, energies_ev=ENERGIES)
    assert res.concentrations.shape == c.shape and res.concentrations.dtype == np.float32
    core = np.zeros(c.shape[1:], bool)          # plate interiors: away from the partial-volume rims
    core[:, 9:11, 6:18] = core[:, 9:11, 24:34] = core[:, 25:27, 10:30] = True
    with np.errstate(invalid="ignore"):
        truth = c[1] / c.sum(0)
    # noise-free, full angular range: the solver's convergence at 40 sweeps (~1 % in the volumes,
    # tests/tomo/test_joint.py) bounds the fraction error in the interiors
    assert np.nanmax(np.abs(res.fraction[core] - truth[core])) < 0.03
    assert res.soc == pytest.approx(c[1].sum() / c.sum(), abs=0.01)
    assert set(np.unique(res.labels[core])) <= {1, 2, 3}
    assert res.mask[core].all() and not res.mask[:, 0, 0].any()


def test_noise_gives_finite_sigma_inside_the_sample_only():
    rng = np.random.default_rng(0)
    data = {e: t + rng.normal(0, 0.005, t.shape).astype(np.float32) for e, t in ods(plates()).items()}
    res = chem.joint_reconstruct(data, ANGLES, REFS, voxel_m=VOXEL_M, iterations=10)
    assert np.all(np.isfinite(res.sigma_fraction[res.mask])) and np.all(np.isnan(res.sigma_fraction[~res.mask]))
    assert np.all(res.sigma_concentrations >= 0) and res.concentrations.min() >= 0


def test_occupancy_bound_and_its_requirement():
    rng = np.random.default_rng(1)
    data = {e: t + rng.normal(0, 0.02, t.shape).astype(np.float32) for e, t in ods(plates()).items()}
    res = chem.joint_reconstruct(data, ANGLES, REFS, voxel_m=VOXEL_M, iterations=5, occupancy=True)
    assert res.density.max() <= 1.0 + 1e-6    # capped-simplex projection, exact to float32 rounding
    with pytest.raises(InputError, match="occupancy .* needs voxel_m"):
        chem.joint_reconstruct(data, ANGLES, REFS, iterations=1, occupancy=True)


def test_rank_deficient_references_refused_with_singular_values():
    refs = np.array([[8.8e6, 4.4e6], [5.4e6, 2.7e6], [2.0e6, 1.0e6]])   # proportional spectra
    data = ods(plates(), refs=refs, energies=[706.0, 708.2, 710.2])
    with pytest.raises(InputError, match=r"rank-deficient or ill-conditioned: singular values .* condition"):
        chem.joint_reconstruct(data, ANGLES, refs, voxel_m=VOXEL_M, iterations=1)


def test_more_phases_than_energies_refused():
    data = ods(plates())
    with pytest.raises(InputError):
        chem.joint_reconstruct(data, ANGLES, np.ones((2, 3)), voxel_m=VOXEL_M, iterations=1)


def test_energies_must_match_the_references():
    with pytest.raises(InputError, match="same order"):
        chem.joint_reconstruct(ods(plates()), ANGLES, REFS, voxel_m=VOXEL_M, iterations=1,
                               energies_ev=[710.2, 708.2])


def test_pixel_ratio_resamples_onto_the_reference_grid():
    # the second energy recorded with pixels 2 % larger (as at a beamline: pixel ∝ wavelength):
    # its projections are the reference ones shrunk about the centre; resampled back they agree
    # with the reference-grid series up to the cubic interpolation of sharp plate edges
    c = plates()
    data = ods(c)
    ratio = 1.0 / 1.02
    from scipy import ndimage

    t = data[710.2]
    n, ny, nx = t.shape
    yy = (ny - 1) / 2 + (np.arange(ny) - (ny - 1) / 2) / ratio
    xx = (nx - 1) / 2 + (np.arange(nx) - (nx - 1) / 2) / ratio
    k, qy, qx = np.meshgrid(np.arange(n), yy, xx, indexing="ij")
    coarse = ndimage.map_coordinates(t, [k, qy, qx], order=3, mode="nearest").astype(np.float32)
    on_grid = chem.joint_reconstruct(data, ANGLES, REFS, voxel_m=VOXEL_M, iterations=10)
    fixed = chem.joint_reconstruct({708.2: data[708.2], 710.2: coarse}, ANGLES, REFS, voxel_m=VOXEL_M,
                                   iterations=10, pixel_ratio={708.2: 1.0, 710.2: ratio})
    unfixed = chem.joint_reconstruct({708.2: data[708.2], 710.2: coarse}, ANGLES, REFS, voxel_m=VOXEL_M,
                                     iterations=10)
    err_fixed = np.abs(fixed.concentrations - on_grid.concentrations).mean()
    err_unfixed = np.abs(unfixed.concentrations - on_grid.concentrations).mean()
    assert err_fixed < 0.5 * err_unfixed, (err_fixed, err_unfixed)


def test_soc_from_projection_totals_unless_the_sample_leaves_the_field():
    c = plates()
    c[1, :, 24:28, 8:32] = 0.2                   # an SOC away from 0.5, where clipping would bias it
    data = ods(c)
    res = chem.joint_reconstruct(data, ANGLES, REFS, voxel_m=VOXEL_M, iterations=3)
    # projection totals are exact line-integral sums: that SOC is right to float32 summation
    # rounding even after 3 sweeps, whatever the volumes' state
    assert res.soc_projections == pytest.approx(c[1].sum() / c.sum(), abs=1e-4)
    cut = {e: t.copy() for e, t in data.items()}
    for t in cut.values():
        t[:, :, 30:] = np.nan                     # every projection misses part of the field
    res = chem.joint_reconstruct(cut, ANGLES, REFS, voxel_m=VOXEL_M, iterations=3)
    assert np.isnan(res.soc_projections) and np.isfinite(res.soc)
