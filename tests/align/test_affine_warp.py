"""The compiled similarity warps (``align._kernels.affine_warp``/``affine_warp3``) against the
path they replace: ``transform.raw_coordinates`` + ``bilinear_warp``. They compute each pixel's
raw coordinates in the loop with the same float64 operations, so the results are the same bits
(exact equality is the test: any change of rounding would show)."""

import numpy as np
import pytest

from chemtomo.align._kernels import affine_warp, affine_warp3, bilinear_warp
from chemtomo.align.transform import centre, raw_coordinates


@pytest.fixture
def stack():
    rng = np.random.default_rng(7)
    n = 6
    imgs = rng.normal(size=(n, 41, 29)).astype(np.float32)
    # shifts of several pixels push part of each field outside: the fill path is exercised
    return imgs, rng.normal(0, 6, (n, 2)), rng.normal(0, 4, n), 1 + rng.normal(0, 0.03, n)


@pytest.mark.parametrize("ratio", [1.0, 1.015])
def test_affine_warp_is_the_coordinate_path(stack, ratio):
    imgs, t, rot, s = stack
    q = raw_coordinates(imgs.shape[1:], t, rot, s)
    if ratio != 1.0:
        c = centre(imgs.shape)[:, None, None, None]
        q = c + ratio * (q - c)
    expect = bilinear_warp(imgs, q, np.nan)
    assert np.isnan(expect).any() and np.isfinite(expect).any()
    np.testing.assert_array_equal(affine_warp(imgs, t, rot, s, np.nan, ratio), expect)


def test_affine_warp_rows_are_the_rows_of_the_whole(stack):
    imgs, t, rot, s = stack
    whole = affine_warp(imgs, t, rot, s, np.nan)
    for r0, r1 in [(0, 41), (5, 18), (40, 41), (7, 7)]:
        np.testing.assert_array_equal(affine_warp(imgs, t, rot, s, np.nan, rows=(r0, r1)), whole[:, r0:r1])
    with pytest.raises(ValueError, match="rows"):
        affine_warp(imgs, t, rot, s, rows=(3, 42))


def test_affine_warp3_is_three_warps_and_the_mask(stack):
    imgs, t, rot, s = stack
    gy, gx = (np.ascontiguousarray(g, np.float32) for g in np.gradient(imgs, axis=(1, 2)))
    for idx in (np.array([4, 1, 5]), slice(None)):
        k = np.arange(imgs.shape[0])[idx]
        rad = np.deg2rad(rot[k])
        q = raw_coordinates(imgs.shape[1:], t[k], np.rad2deg(rad), s[k])
        m, my, mx, inside = affine_warp3(imgs, gy, gx, idx, t[k], rad, s[k])
        for got, img in ((m, imgs), (my, gy), (mx, gx)):
            np.testing.assert_array_equal(got, bilinear_warp(img[k], q).astype(np.float64))
        ny, nx = imgs.shape[1:]
        np.testing.assert_array_equal(inside, (q[0] >= 0) & (q[0] <= ny - 1) & (q[1] >= 0) & (q[1] <= nx - 1))
        assert not inside.all() and inside.any()
