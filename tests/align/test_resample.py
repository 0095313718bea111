"""resample_to_reference (align/energies.py): image by image and by cropping, as the 3D spline."""

import numpy as np
import pytest
from scipy import ndimage

from chemtomo.align.energies import resample_to_reference
from chemtomo.align.transform import centre


def _stack_spline(t, ratio, out_shape, order):
    """The former implementation: one spline over the whole (n, ny, nx) stack, sampled at whole
    image indices."""
    n, ny, nx = t.shape
    oy, ox = out_shape
    c = centre(t.shape)
    yy = c[0] + (np.arange(oy) - (oy - 1) / 2) * ratio
    xx = c[1] + (np.arange(ox) - (ox - 1) / 2) * ratio
    k, qy, qx = np.meshgrid(np.arange(n), yy, xx, indexing="ij")
    return ndimage.map_coordinates(t, [k, qy, qx], order=order, mode="constant", cval=0.0,
                                   prefilter=order > 1, output=np.float32)


@pytest.mark.parametrize("ratio, out_shape", [(1.0, (20, 30)), (1.0, (40, 52)), (1.0, (21, 31)),
                                              (1.013, (24, 36)), (0.97, (30, 40))])
@pytest.mark.parametrize("order", [1, 3])
def test_the_same_values_as_one_spline_over_the_stack(ratio, out_shape, order):
    # An interpolating spline over the stack, sampled at whole image indices, is each image's own
    # spline (exactly, in exact arithmetic), and at whole pixels it is the pixels: so image by
    # image, or a plain crop, agree with it to float32 rounding of values up to 3 (2e-6 absolute;
    # measured ≤ 5e-7).
    rng = np.random.default_rng(1)
    t = (3 * rng.random((5, 24, 36))).astype(np.float32)
    got = resample_to_reference(t, ratio, out_shape=out_shape, order=order)
    want = _stack_spline(t, ratio, out_shape, order)
    assert got.shape == want.shape == (5,) + out_shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_a_centred_crop_by_whole_pixels_is_the_pixels_themselves():
    rng = np.random.default_rng(2)
    t = rng.random((3, 24, 36)).astype(np.float32)
    crop = resample_to_reference(t, 1.0, out_shape=(20, 30))  # offsets 2 and 3 pixels
    assert np.array_equal(crop, t[:, 2:22, 3:33])
    padded = resample_to_reference(t, 1.0, out_shape=(28, 40), order=3)  # 2 pixels of 0 around
    assert np.array_equal(padded[:, 2:26, 2:38], t) and not padded[:, :2].any() and not padded[:, :, :2].any()
