"""The ptycho stage undoes each scan's frame drift (issue 24, part 2).

Far-field ptychography leaves one freedom per scan: probe and object moved together by the same
sub-pixel amount give the same diffraction patterns. ``probe_frame_shifts`` measures each scan's
drift on its probe (all scans of one energy share the optics) and ``shift_transmission`` moves
the object back, so that the objects of all scans sit where their positions put them again.
"""

import numpy as np
import pytest
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from chemtomo.pipeline.ptycho_stage import probe_frame_shifts, shift_transmission


def _moved(img, shift):
    """``img(r − shift)``: the content moved by ``shift`` pixels (exact Fourier shift)."""
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img), shift)).astype(np.complex64)


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:64, :64] - 31.5
    # a ring-shaped probe (a zone plate's with a central stop), band-limited
    r = np.hypot(y, x)
    probe = (np.exp(-((r - 9.0) / 3.0) ** 2) * np.exp(1j * 0.02 * r ** 2)).astype(np.complex64)
    # an object of smooth blobs (absorption and phase), well inside a unit-transmission field
    yy, xx = np.mgrid[:96, :128]
    thick = np.zeros((96, 128))
    for cy, cx, s in zip(rng.uniform(30, 66, 6), rng.uniform(30, 98, 6), rng.uniform(3, 7, 6)):
        thick += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s ** 2))
    obj = np.exp(-0.3 * thick - 1j * 0.6 * thick).astype(np.complex64)
    return probe, obj


def test_drift_measured_on_the_probe_is_undone_on_the_object():
    probe, obj = _scene()
    drifts = np.array([[0.0, 0.0], [0.13, -0.21], [-0.32, 0.08], [0.27, 0.35], [-0.05, -0.4]])
    probes = [_moved(probe, d)[None] for d in drifts]          # (n_modes=1, h, w) each
    objects = [_moved(obj, d) for d in drifts]
    shifts = probe_frame_shifts(probes)
    # measured against the scans' mean probe: the drifts up to their common mean; the
    # upsampled cross-correlation quantises to 1/100 px and the mean probe is slightly broadened,
    # so 0.02 px (two quantisation steps) is the tolerance
    np.testing.assert_allclose(-shifts - (-shifts).mean(axis=0), drifts - drifts.mean(axis=0), atol=0.02)
    fixed = [shift_transmission(o, s) for o, s in zip(objects, shifts)]
    # after the correction every scan's object sits at the same place (the common mean drift is
    # one constant for all scans, a frame convention the alignment absorbs)
    for f in fixed[1:]:
        rest, _, _ = phase_cross_correlation(np.angle(fixed[0]).astype(float), np.angle(f).astype(float),
                                             upsample_factor=100, normalization=None)
        assert np.abs(rest).max() <= 0.02, rest
    # and the correction never changes the transmission's values, only where they are
    assert np.abs(np.abs(fixed[1]).max() - np.abs(objects[1]).max()) < 1e-3


def test_no_probe_or_one_scan_leaves_the_objects_alone():
    probe, obj = _scene(1)
    assert np.array_equal(probe_frame_shifts([np.zeros((0, 0, 0), np.complex64)] * 3), np.zeros((3, 2)))
    assert np.array_equal(probe_frame_shifts([probe[None]]), np.zeros((1, 2)))
    assert shift_transmission(obj, (0.0, 0.0)) is obj
    # a probe moved by far more than a drift (a failed scan) is not "corrected"
    far = [probe[None], probe[None], np.roll(probe, 9, axis=1)[None]]
    assert np.array_equal(probe_frame_shifts(far)[2], np.zeros(2))


@pytest.mark.parametrize("n_modes", [2])
def test_modes_are_summed_before_registering(n_modes):
    probe, _ = _scene(2)
    d = np.array([0.25, -0.15])
    modes = np.stack([probe, 0.3 * np.roll(probe, 1, axis=0)])
    moved = np.stack([_moved(m, d) for m in modes])
    shifts = probe_frame_shifts([modes, moved])
    np.testing.assert_allclose(shifts[0] - shifts[1], d, atol=0.02)
