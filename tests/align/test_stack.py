"""align.register_stack: sub-pixel drift of a spectral stack recovered from neighbour pairs."""

import numpy as np
import pytest

from chemtomo.align import apply_stack_shifts, register_stack
from chemtomo.core import InputError


def _blobs(yy, xx, contrast):
    """Smooth features whose contrast changes with energy (as across an absorption edge)."""
    a = np.exp(-(((yy - 20.0) / 5) ** 2 + ((xx - 22.0) / 7) ** 2))
    b = np.exp(-(((yy - 40.0) / 6) ** 2 + ((xx - 44.0) / 4) ** 2))
    return contrast[0] * a + contrast[1] * b


def _stack(n=12, shape=(56, 64), noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    shifts = np.cumsum(rng.normal(0, 0.4, (n, 2)), axis=0)
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    t = np.linspace(0, 1, n)
    imgs = np.stack([_blobs(yy - shifts[i, 0], xx - shifts[i, 1], (1.0 - 0.6 * t[i], 0.4 + 0.6 * t[i]))
                     for i in range(n)])
    return imgs + rng.normal(0, noise, imgs.shape), shifts


def test_register_stack_recovers_drift():
    # noise 0.02 on unit-contrast blobs: pairwise cross-correlation error ~0.02 px; the least
    # squares over 3 neighbours keeps the accumulated error of 12 energies below 0.05 px
    imgs, true = _stack()
    est, residual = register_stack(imgs, reference_index=4, return_residual=True)
    assert np.all(est[4] == 0)
    assert 0 < residual < 0.1          # the redundant pairs agree to the pairwise precision
    err = est - (true - true[4])
    assert np.sqrt(np.mean(err ** 2)) < 0.05
    # applying the shifts puts every energy's features where the reference has them: what is left
    # against the noise-free image in the reference frame is the noise (0.02, changed by < 10 %
    # by the cubic interpolation) plus misregistration; 1.5x the noise bounds both
    aligned = apply_stack_shifts(imgs, est)
    yy, xx = np.mgrid[:56, :64].astype(float)
    t = np.linspace(0, 1, imgs.shape[0])
    ideal = np.stack([_blobs(yy - true[4, 0], xx - true[4, 1], (1.0 - 0.6 * t[i], 0.4 + 0.6 * t[i]))
                      for i in range(imgs.shape[0])])
    inner = np.s_[:, 8:-8, 8:-8]
    assert np.all(np.isfinite(aligned[inner]))
    assert np.std(aligned[inner] - ideal[inner], axis=(1, 2)).max() < 1.5 * 0.02
    assert np.std(imgs[inner] - ideal[inner], axis=(1, 2)).max() > 3 * 0.02       # before: far off


def test_more_neighbours_average_the_chain():
    # a plain chain (max_gap=1) accumulates pair errors; more neighbours do not do worse
    imgs, true = _stack(n=16, noise=0.06, seed=3)
    errs = []
    for gap in (1, 3):
        est = register_stack(imgs, reference_index=0, max_gap=gap)
        errs.append(np.sqrt(np.mean((est - (true - true[0])) ** 2)))
    assert errs[1] <= errs[0] * 1.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.ones((4, 4))), r"images must have shape \(n_images, ny, nx\)"),
    (dict(images=np.full((2, 4, 4), np.nan)), r"images hold non-finite values"),
    (dict(images=np.ones((2, 4, 4)), max_gap=0), r"max_gap must be at least 1"),
    (dict(images=np.ones((2, 4, 4)), reference_index=5), r"reference_index 5 is out of range for 2 images"),
])
def test_register_stack_errors(kwargs, message):
    images = kwargs.pop("images")
    with pytest.raises(InputError, match=message):
        register_stack(images, **kwargs)


def test_apply_order_checked():
    with pytest.raises(InputError, match=r"order must be 1 \(bilinear\) or 3 \(cubic spline\), got 2"):
        apply_stack_shifts(np.ones((2, 4, 4)), np.zeros((2, 2)), order=2)
