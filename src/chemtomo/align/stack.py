"""Registration of the images of a spectral stack (one field, many energies) to each other.

A STXM stack drifts between energies (stage and beam drift over minutes), so each energy's image
is translated relative to the others by up to a few pixels. Neighbouring energies look most
alike (the contrast changes gradually across an edge), so every image is registered to its
next ``max_gap`` neighbours by sub-pixel phase correlation (:func:`register_translation`) and
the shifts are the least-squares solution of those pairwise measurements, which averages the
random errors of the pairs instead of letting them accumulate along a chain.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .register import register_translation
from .transform import warp

__all__ = ["register_stack", "apply_stack_shifts"]


def register_stack(images, *, reference_index: int | None = None, max_gap: int = 3,
                   upsample: int = 50, normalization: str | None = None, return_residual: bool = False):
    """Sub-pixel shifts that align every image of a spectral stack onto one reference image.

    Parameters
    ----------
    images : (n_images, ny, nx) float, finite
        One field at successive energies (e.g. optical density), in energy order.
    reference_index : int, optional
        The image whose shift is zero (the gauge). Default: the image with the most contrast
        (largest standard deviation), usually one at the absorption maximum.
    max_gap : int
        Each image is registered to the next ``max_gap`` images; 1 is a plain neighbour chain.
    upsample : int
        Precision of each pairwise registration, 1/``upsample`` pixel.
    normalization : None or "phase"
        Plain cross-correlation (default) or phase correlation, as in
        :func:`register_translation`. STXM images are smooth and shot-noise limited; whitening
        the spectrum (phase correlation) lets the noise decide the peak: on
        ``benchmarks/stxm_xas.py`` (3000 counts per pixel, 64 x 96 pixels, 32 energies) the
        shifts came out to 0.038 px RMS with plain cross-correlation and 0.336 px with phase
        correlation (0.073 px for a plain neighbour chain, ``max_gap=1``).

    return_residual : bool
        Also return the RMS misfit of the pairwise measurements to the solution (px): how well
        the pairs agree with one set of shifts, a measure of the registration's own precision
        (0 for a plain chain, which has no redundancy).

    Returns
    -------
    shifts_px : (n_images, 2) float64, (dy, dx)
        ``images[i](p + shifts_px[i])`` ≈ ``images[reference](p)``: the convention of
        :func:`register_translation` and DESIGN.md, so :func:`apply_stack_shifts` aligns.
    residual_px : float, only with ``return_residual=True``

    Notes
    -----
    With ``d_ij`` the measured shift of image j relative to image i, the shifts minimise
    ``Σ_(i,j) |s_j − s_i − d_ij|²`` subject to ``s_ref = 0``, solved for y and x separately.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3:
        raise InputError(f"images must have shape (n_images, ny, nx), got {imgs.shape}")
    if not np.all(np.isfinite(imgs)):
        raise InputError("images hold non-finite values; register finite images (e.g. OD before masking)")
    n = imgs.shape[0]
    if max_gap < 1:
        raise InputError(f"max_gap must be at least 1, got {max_gap}")
    if reference_index is None:
        reference_index = int(np.argmax(imgs.reshape(n, -1).std(axis=1)))
    if not -n <= reference_index < n:
        raise InputError(f"reference_index {reference_index} is out of range for {n} images")
    ref = int(reference_index) % n
    if n == 1:
        return (np.zeros((1, 2)), 0.0) if return_residual else np.zeros((1, 2))
    pairs = [(i, i + g) for g in range(1, min(max_gap, n - 1) + 1) for i in range(n - g)]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    d = register_translation(imgs[a], imgs[b], upsample=upsample, normalization=normalization)
    design = np.zeros((len(pairs) + 1, n))
    design[np.arange(len(pairs)), b] = 1.0
    design[np.arange(len(pairs)), a] = -1.0
    design[-1, ref] = 1.0                      # the gauge: the reference does not move
    rhs = np.vstack([d, np.zeros((1, 2))])
    shifts, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    shifts[ref] = 0.0
    if not return_residual:
        return shifts
    misfit = d - (shifts[b] - shifts[a])
    return shifts, float(np.sqrt(np.mean(np.sum(misfit ** 2, axis=1))))


def apply_stack_shifts(images, shifts_px, *, order: int = 3, fill: float = np.nan) -> np.ndarray:
    """Aligned stack ``aligned[i](p) = images[i](p + shifts_px[i])``.

    Parameters
    ----------
    images : (n_images, ny, nx) float
    shifts_px : (n_images, 2) float, (dy, dx) from :func:`register_stack`
    order : spline order of the interpolation: 3 (cubic, default) or 1 (bilinear). Bilinear
        interpolation flattens the top of every particle's profile, so a fit of the shifted
        stack reads thicknesses low: on ``benchmarks/stxm_xas.py`` by 0.15 shot-noise sigma
        with order 1 and 0.01 sigma with order 3 (order 1 also averages neighbouring pixels'
        noise, 0.79 against 0.91 sigma RMS: less noise, but biased).
    fill : value of pixels that fall outside an image (NaN marks them as not measured)

    Returns
    -------
    aligned : (n_images, ny, nx) float32
    """
    imgs = np.asarray(images, dtype=np.float32)
    s = np.asarray(shifts_px, dtype=np.float64)
    if imgs.ndim != 3 or s.shape != (imgs.shape[0], 2):
        raise InputError(f"shifts_px must have shape (n_images, 2) = ({imgs.shape[0]}, 2) for images of shape "
                         f"{imgs.shape}, got {s.shape}")
    if order not in (1, 3):
        raise InputError(f"order must be 1 (bilinear) or 3 (cubic spline), got {order!r}")
    n = imgs.shape[0]
    return warp(imgs, s, np.zeros(n), np.ones(n), order=order, fill=fill)
