"""FBP: filtered back-projection for parallel beams, any angle set.

Each projection is filtered along the detector with a ramp |ν| (times an optional window) in
Fourier space, weighted by the angle interval it represents, and back-projected with the exact
adjoint of the projector (:func:`.project.backproject`):

    f(x, z) ≈ Σ_i Δθ_i · (h ∗ p_i)(x cos θ_i + z sin θ_i),   Δθ_i in radians

The ramp is the band-limited filter of Ramachandran & Lakshminarayanan built in real space and
transformed (Kak & Slaney, eq. 3.61), which has the correct zero-frequency value; projections are
zero-padded to at least twice their width to avoid wrap-around. Δθ_i is half the distance between
an angle's neighbours, so non-uniform angle sets are weighted properly; at the ends of a limited
range (a missing wedge) the outer half-interval equals the inner one, and a set spanning 180° or
more is weighted on the circle of directions (angles modulo 180°), so 0–360° scans count each
direction once.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ..core.errors import InputError
from .problem import check_choice, prepare

__all__ = ["FILTERS", "angle_weights", "fbp", "ramp_filter"]

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hann")


def ramp_filter(n_pad: int, name: str = "ram-lak") -> np.ndarray:
    """Frequency response (n_pad // 2 + 1,) float64 of the named filter, for :func:`numpy.fft.rfft`.

    ``ram-lak`` is |ν| (ν in cycles per pixel); the others multiply it by a window:
    shepp-logan sinc(ν), cosine cos(πν), hann ½(1 + cos 2πν).
    """
    check_choice(name, FILTERS, "filter", "fbp")
    m = np.concatenate([np.arange(1, n_pad // 2 + 1, 2), np.arange(n_pad // 2 - 1, 0, -2)])
    h = np.zeros(n_pad)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * m) ** 2
    resp = np.real(np.fft.rfft(h))
    nu = np.fft.rfftfreq(n_pad)
    if name == "shepp-logan":
        resp *= np.sinc(nu)
    elif name == "cosine":
        resp *= np.cos(np.pi * nu)
    elif name == "hann":
        resp *= 0.5 * (1.0 + np.cos(2.0 * np.pi * nu))
    return resp


def angle_weights(angles_deg) -> np.ndarray:
    """Angular interval Δθ_i, radians, represented by each projection (module notes)."""
    a = np.asarray(angles_deg, np.float64)
    n = a.size
    if n == 1:
        return np.array([np.pi])
    order = np.argsort(a, kind="stable")
    s = a[order]
    span = s[-1] - s[0]
    step = span / (n - 1)
    w = np.empty(n)
    if span + step >= 180.0 - 1e-6:  # covers all directions: weight on the circle mod 180°
        m = np.mod(a, 180.0)
        order = np.argsort(m, kind="stable")
        s = m[order]
        gaps = np.diff(np.concatenate([s, [s[0] + 180.0]]))
        w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    else:
        gaps = np.diff(s)
        w_sorted = np.empty(n)
        w_sorted[1:-1] = 0.5 * (gaps[1:] + gaps[:-1])
        w_sorted[0], w_sorted[-1] = gaps[0], gaps[-1]
    w[order] = w_sorted
    return np.deg2rad(w)


def fbp(tilt, angles_deg, *, filter: str = "ram-lak", nonneg: bool = True, **common) -> np.ndarray:
    """Filtered back-projection of a parallel-beam tilt series.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals; rotation axis along y. Must be finite (FBP cannot leave rays out).
    angles_deg : (n_angles,) float
        Tilt angles, degrees, any order and spacing.
    filter : {"ram-lak", "shepp-logan", "cosine", "hann"}
        Ramp filter window (module notes).
    nonneg : bool
        Clip the result at zero.
    **common
        x0 is not used; support, cor_offset_px, nz, memory_limit_bytes as in
        :mod:`chemtomo.tomo.problem` (callback/progress are called once, tol is ignored).

    Returns
    -------
    volume : (ny, nz, nx) float32

    References
    ----------
    Kak & Slaney, Principles of Computerized Tomographic Imaging (IEEE, 1988), ch. 3.

    Examples
    --------
    >>> from chemtomo.tomo import project
    >>> vol = np.zeros((1, 32, 32), np.float32); vol[0, 12:20, 10:22] = 1.0
    >>> angles = np.arange(0, 180, 2.0)
    >>> rec = fbp(project(vol, angles), angles)
    >>> bool(abs(rec[0, 16, 16] - 1.0) < 0.1)
    True
    """
    check_choice(filter, FILTERS, "filter", "fbp")
    if common.get("x0") is not None:
        raise InputError("fbp: x0 (initial volume) has no meaning for FBP, which is not iterative; "
                         "use an iterative algorithm (art, sart, sirt, cgls, tv) to start from a volume")
    p = prepare(tilt, angles_deg, "fbp", n_volumes=1, n_sinograms=3, allow_missing=False,
                nonneg=nonneg, **common)
    g = p.geometry
    n_pad = max(64, int(2 ** np.ceil(np.log2(2 * g.nu))))
    resp = ramp_filter(n_pad, filter).astype(np.float32)
    spec = scipy.fft.rfft(p.b, n=n_pad, axis=1, workers=-1)
    spec *= resp[None, :, None]
    q = scipy.fft.irfft(spec, n=n_pad, axis=1, workers=-1)[:, :g.nu, :].astype(np.float32)
    q *= angle_weights(g.angles_deg).astype(np.float32)[:, None, None]
    p.x = p.op.backward(q)
    return p.iterate(1, lambda k: None)
