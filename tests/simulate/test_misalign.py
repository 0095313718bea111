"""Tests of the simulated misalignment (chemtomo.simulate.misalign) against DESIGN.md's convention."""

import numpy as np
import pytest
from scipy import ndimage

from chemtomo.core import InputError
from chemtomo.simulate import AlignmentTruth, draw_misalignment, misalign


def _truth(shift, rot, scale, offset=(0.0, 0.0)):
    return AlignmentTruth(np.array([shift], float), np.array([rot], float), np.array([scale], float),
                          np.array([[0.0, 0.0], offset], float), np.array([708.2, 710.2]))


@pytest.mark.parametrize("shift, rot, scale, offset", [
    ((2.5, -4.0), 0.0, 1.0, (0.0, 0.0)),
    ((1.0, 3.0), 7.0, 1.0, (0.0, 0.0)),
    ((-2.0, 1.5), -5.0, 1.04, (1.5, -2.0)),
])
def test_feature_lands_where_the_convention_says(shift, rot, scale, offset):
    # a Gaussian spot at p in the aligned image must appear in the raw one at
    # q = c + s R(φ)(p − c) + t + o (DESIGN.md); its centroid is exact to ~0.02 px for a σ = 1.5 px
    # spot with cubic interpolation
    ny, nx = 48, 64
    p = np.array([14.0, 45.0])
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    img = np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    energy = 710.2 if offset != (0.0, 0.0) else 708.2
    raw = misalign(img[None], _truth(shift, rot, scale, offset), energy)[0]
    c = np.array([(ny - 1) / 2, (nx - 1) / 2])
    phi = np.radians(rot)
    r = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    expected = c + scale * r @ (p - c) + np.array(shift) + np.array(offset)
    found = np.array(ndimage.center_of_mass(np.clip(raw, 0, None)))
    np.testing.assert_allclose(found, expected, atol=0.05)


def test_align_apply_undoes_it():
    # align.apply (the pipeline's pull warp) with the true parameters restores the aligned image;
    # the residual is bilinear-interpolation error of a smooth image (< 2 % of the peak)
    apply_mod = pytest.importorskip("chemtomo.align.apply")
    alignment_mod = pytest.importorskip("chemtomo.align.alignment")
    ny, nx = 40, 56
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    img = np.exp(-((yy - 18) ** 2 / 40 + (xx - 30) ** 2 / 90)).astype(np.float32)[None]
    t = _truth((3.0, -2.0), 0.8, 1.008, (1.0, -1.5))
    raw = misalign(img, t, 710.2)
    al = alignment_mod.Alignment(shifts_px=t.shifts_px, rotation_deg=t.rotation_deg, scale=t.scale,
                         energy_offsets_px=t.offsets())
    back = apply_mod.apply(raw, al, 710.2)
    assert np.max(np.abs(back - img)) < 0.02


def test_draw_misalignment_distribution_and_limits():
    # 2000 draws: the std of a clipped normal N(0, 3) clipped at 10 is 3.0 within ~3 %
    a = draw_misalignment(2000, [708.2, 710.2], seed=1)
    assert np.abs(a.shifts_px).max() <= 10 and np.abs(a.rotation_deg).max() <= 1
    assert np.abs(a.scale - 1).max() <= 0.01 + 1e-12
    assert np.std(a.shifts_px) == pytest.approx(3.0, rel=0.06)
    assert np.std(a.rotation_deg) == pytest.approx(0.3, rel=0.06)
    np.testing.assert_array_equal(a.energy_offsets_px[0], [0, 0])
    assert np.abs(a.energy_offsets_px).max() <= 3
    assert a.offsets()[710.2] == tuple(a.energy_offsets_px[1])


def test_bad_parameters_raise():
    with pytest.raises(InputError, match="shift_sigma_px must be a finite number >= 0"):
        draw_misalignment(3, [708.2], shift_sigma_px=-1)
    with pytest.raises(InputError, match="n_angles must be a positive integer"):
        draw_misalignment(0, [708.2])
    with pytest.raises(InputError, match="no energy offset for 700"):
        misalign(np.zeros((1, 8, 8)), _truth((0, 0), 0, 1), 700.0)
    with pytest.raises(InputError, match="images must be"):
        misalign(np.zeros((2, 8, 8)), _truth((0, 0), 0, 1), 708.2)
