"""The energy registration's scale-and-shift warp (align/energies.py, ``_warp_similarity``) in two
1D cubic passes (align/_kernels.py, ``separable_cubic``) against scipy's ``map_coordinates``."""

import numpy as np
import pytest
from scipy import ndimage

from chemtomo.align._kernels import cubic_taps
from chemtomo.align.energies import _SplineStack, _warp_similarity
from chemtomo.align.transform import centre


def _map_coordinates_warp(stack, s, t):
    """The former implementation: ``map_coordinates`` image by image (order 3, mode "constant",
    its own prefilter) at the scale-and-shift grid."""
    n, ny, nx = stack.shape
    c = centre(stack.shape)
    yy = c[0] + s * (np.arange(ny) - c[0]) + t[0]
    xx = c[1] + s * (np.arange(nx) - c[1]) + t[1]
    out = np.empty_like(stack, dtype=np.float32)
    for i in range(n):
        out[i] = ndimage.map_coordinates(stack[i], np.meshgrid(yy, xx, indexing="ij"), order=3,
                                         mode="constant", cval=0.0, output=np.float32)
    return out


@pytest.mark.parametrize("shape", [(3, 17, 26), (2, 40, 31), (1, 5, 4), (2, 2, 9), (1, 1, 6)])
@pytest.mark.parametrize("s, t", [(1.0, (0.0, 0.0)), (1.0, (0.5, -0.25)), (1.0021, (0.37, -1.21)),
                                  (0.985, (-2.6, 3.3)), (1.03, (7.0, -40.0)), (1.0, (2.0, -3.0))])
def test_the_same_values_as_map_coordinates(shape, s, t):
    # The same cubic B-spline on the same coefficients (scipy's prefilter, mirror-extended at the
    # edges, 0 outside [0, n - 1]) evaluated in the same float64 arithmetic up to the order of the
    # sums over the 16 taps: rounded to float32, the images agree to the bit on every case tried
    # here (small fields, shifts past the edge, scale about the centre). Allow 1 float32 ulp of
    # the data's range anyway, so that a SciPy that sums its taps in another order does not fail.
    rng = np.random.default_rng(sum(shape))
    stack = ndimage.gaussian_filter(rng.standard_normal(shape), (0, 1.5, 1.5)).astype(np.float32)
    want = _map_coordinates_warp(stack, s, np.array(t))
    got = _warp_similarity(_SplineStack.of(stack), s, np.array(t))
    assert got.dtype == np.float32 and got.shape == stack.shape
    assert np.array_equal(got == 0, want == 0)  # the same pixels fall outside the image
    np.testing.assert_allclose(got, want, rtol=0, atol=np.spacing(np.float32(np.abs(stack).max())))


def test_taps_mirror_at_the_edges_and_mark_positions_outside():
    idx, w, inside = cubic_taps(np.array([-0.01, 0.0, 0.25, 3.0, 3.01]), 4)
    assert inside.tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)  # a partition of unity
    assert idx[1].tolist() == [1, 0, 1, 2]   # the tap left of pixel 0 is pixel 1 (mirror)
    assert idx[3].tolist() == [2, 3, 2, 1]   # right of the last pixel, pixel n - 2
    np.testing.assert_allclose(w[1], [1 / 6, 2 / 3, 1 / 6, 0.0])


def test_a_subset_of_the_images_is_warped_in_place_as_its_copy():
    # the jackknife's subsets: rows of the coefficients read in place give what a copy gives
    rng = np.random.default_rng(5)
    stack = ndimage.gaussian_filter(rng.standard_normal((6, 21, 30)), (0, 1.5, 1.5)).astype(np.float32)
    keep = np.array([0, 2, 3, 5])
    got = _warp_similarity(_SplineStack.of(stack).subset(keep), 1.004, np.array([0.3, -0.8]))
    want = _warp_similarity(_SplineStack.of(stack[keep]), 1.004, np.array([0.3, -0.8]))
    assert np.array_equal(got, want)
