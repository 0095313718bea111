"""Apply an :class:`~chemtomo.align.Alignment` to the tilt series of one energy."""

from __future__ import annotations

import numpy as np

from ..core.backend import to_numpy
from ..core.errors import InputError
from .alignment import Alignment
from ._kernels import affine_warp
from .transform import centre, raw_coordinates, warp_stack

__all__ = ["apply"]


def _energy_key(alignment: Alignment, energy_eV):
    """The key of ``energy_offsets_px`` that matches ``energy_eV`` (to 1 meV), or None."""
    if energy_eV is None:
        return None
    for key in alignment.energy_offsets_px:
        if abs(float(key) - float(energy_eV)) < 1e-3:
            return key
    return None


def apply(tilt, alignment: Alignment, energy_eV=None, *, fill: float = 0.0, order: int = 1) -> np.ndarray:
    """Align a tilt series: ``aligned[i](p) = raw[i](c + k_E (s_i R(φ_i)(p − c) + t_i + o_E))``.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Raw projections of one energy, in acquisition order (the order of
        ``alignment.angles_deg``).
    alignment : Alignment
    energy_eV : float, optional
        Which energy ``tilt`` was recorded at; selects its offset ``o_E`` and pixel ratio ``k_E``.
        Required when the alignment holds offsets for several energies; None means the
        reference energy.
    fill : float
        Value for aligned pixels whose source lies outside the raw field. 0 suits optical density
        (no sample outside the field); use the background value for other kinds of data.
    order : int
        Interpolation order; 1 (bilinear, the paper's choice) by default.

    Returns
    -------
    aligned : (n_angles, ny, nx) float32

    Examples
    --------
    >>> raw = np.zeros((1, 8, 8), np.float32); raw[0, 5, 4] = 1
    >>> al = Alignment(np.array([[1.0, 0.0]]), np.zeros(1), np.ones(1))
    >>> int(np.argmax(apply(raw, al)[0]))  # the point moves up one row: 4·8 + 4
    36
    """
    t = np.asarray(to_numpy(tilt))
    if t.ndim != 3:
        raise InputError(f"apply: tilt must be (n_angles, ny, nx), got shape {t.shape}")
    if t.shape[0] != alignment.n_angles:
        raise InputError(f"apply: tilt has {t.shape[0]} projections but the alignment has "
                         f"{alignment.n_angles} angles; expected one transform per projection")
    if alignment.shape is not None and tuple(alignment.shape) != t.shape[1:]:
        raise InputError(f"apply: tilt projections are {t.shape[1:]} but the alignment was made for "
                         f"{tuple(alignment.shape)}")
    key = _energy_key(alignment, energy_eV)
    if energy_eV is not None and key is None and alignment.energy_offsets_px:
        known = sorted(float(k) for k in alignment.energy_offsets_px)
        raise InputError(f"apply: energy_eV={energy_eV} is not in the alignment; it holds {known}")
    if energy_eV is None and len(alignment.energy_offsets_px) > 1:
        raise InputError("apply: the alignment holds offsets for several energies "
                         f"{sorted(float(k) for k in alignment.energy_offsets_px)}; pass energy_eV")
    offset = np.zeros(2) if key is None else np.asarray(alignment.energy_offsets_px[key], np.float64)
    ratio = 1.0 if key is None else float(alignment.energy_pixel_ratio.get(key, 1.0))
    shifts, rot, scale = alignment.params
    if order == 1:  # the coordinates computed in the kernel: the same bits as below, without the (2, n, ny, nx) array
        return affine_warp(t.astype(np.float32, copy=False), shifts + offset[None, :], rot, scale, fill, ratio)
    q = raw_coordinates(t.shape[1:], shifts + offset[None, :], rot, scale)
    if ratio != 1.0:
        c = centre(t.shape)
        q = c[:, None, None, None] + ratio * (q - c[:, None, None, None])
    return warp_stack(t.astype(np.float32, copy=False), q, order=order, fill=fill)
