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


@pytest.mark.parametrize("block_pixels", [2 * 24 * 36, 1 << 30])
@pytest.mark.parametrize("ratio, out_shape", [(1.013, (24, 36)), (0.97, (30, 44)), (1.2, (18, 20))])
def test_cubic_in_two_passes_is_map_coordinates_image_by_image(monkeypatch, block_pixels, ratio, out_shape):
    """Cubic resampling runs as two 1D passes over each image's spline coefficients, a few images
    at a time (blocks of 2 of 5 images, or all): the values of ``map_coordinates(order=3,
    mode="constant")`` on each image, 0 outside the field (0.97 onto 30 × 44 reaches past it). The
    same sums in another order (a SciPy that adds its taps differently) may differ by an ulp:
    1 ulp of values up to 3 is 2.4e-7."""
    from chemtomo.align import energies

    monkeypatch.setattr(energies, "RESAMPLE_BLOCK_PIXELS", block_pixels)
    rng = np.random.default_rng(3)
    t = (3 * rng.random((5, 24, 36))).astype(np.float32)
    got = resample_to_reference(t, ratio, out_shape=out_shape, order=3)
    c = centre(t.shape)
    oy, ox = out_shape
    qy, qx = np.meshgrid(c[0] + (np.arange(oy) - (oy - 1) / 2) * ratio, c[1] + (np.arange(ox) - (ox - 1) / 2) * ratio,
                         indexing="ij")
    want = np.stack([ndimage.map_coordinates(im, [qy, qx], order=3, mode="constant", cval=0.0, output=np.float32)
                     for im in t])
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2.4e-7)
    assert (ratio != 0.97) or not got[:, 0].any()  # the rows past the field are 0
