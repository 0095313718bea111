"""Held-out multi-energy tilt series for energy registration, written independently of chemtomo.simulate.

Nothing here comes from chemtomo: the sample is a set of spheres (two phases, some core–shell,
plus a faint binder ellipsoid) whose projections are computed analytically (chord lengths) on
each energy's own detector grid, 2×2 supersampled per pixel. So a pixel-size change between
energies and a sub-pixel drift are exact, not interpolated: the registration cannot profit from
the generator resampling images the way chemtomo's resampler does.

Per energy E (all drawn independently):

- pixel size p_E = p_0 (1 + δ_E), with δ spanning 1.5 % (default δ = 0, +1.5 %, −0.6 %, +0.8 %);
- a drift d_E of the field's origin, uniform in ±3 reference pixels on each axis, one per
  energy (the optics' refocus between energies), the same at every angle;
- OD noise σ_E (default 0.004, 0.02, 0.01, 0.006: each energy its own).

Per angle, common to all energies: a stage jitter uniform in ±2 px (what the tomographic
alignment later removes; it must not bias the energy registration).

Truth, in the convention of :class:`chemtomo.align.Alignment`: the reference energy's pixel x
shows the same physical point as pixel ``c + k_E (x − c + o_E)`` of energy E's raw projection,
``k_E = p_ref / p_E`` (``energy_pixel_ratio``) and ``o_E`` the drift difference in reference pixels (stated precisely in
:func:`heldout_series`).
"""

from __future__ import annotations

import numpy as np

ENERGIES = (706.0, 708.2, 710.2, 712.0)
# OD per micrometre of each phase at each energy: pre-edge, LiFePO4-like peak, FePO4-like peak, post
MU_PER_UM = {"A": (0.35, 1.60, 0.70, 0.90), "B": (0.35, 0.60, 1.50, 0.95), "binder": (0.05, 0.05, 0.05, 0.05)}
PIXEL_DELTA = (0.0, 0.015, -0.006, 0.008)
NOISE_OD = (0.004, 0.02, 0.01, 0.006)


def _sample(rng, n_spheres: int, radius_px: float):
    """Spheres (centre xyz in px of the reference pixel p_0, radius px, phase, core radius)."""
    out = []
    for _ in range(n_spheres):
        r = rng.uniform(2.5, 7.0)
        while True:
            c = rng.uniform(-radius_px, radius_px, 3)
            if np.hypot(c[0], c[2]) < radius_px - r and abs(c[1]) < radius_px - r:
                break
        phase = "A" if rng.random() < 0.5 else "B"
        core = rng.uniform(0.3, 0.7) * r if rng.random() < 0.4 else 0.0
        out.append((c, r, phase, core))
    # off-centre sample: shift every sphere by one common vector, so scale and shift couple
    bias = rng.uniform(-4, 4, 3)
    return [(c + bias, r, p, k) for c, r, p, k in out]


def _chord(u, v, cu, cv, r):
    return 2.0 * np.sqrt(np.clip(r * r - (u - cu) ** 2 - (v - cv) ** 2, 0.0, None))


def heldout_series(seed: int = 0, *, shape=(72, 72), n_angles: int = 30, pixel_nm: float = 20.0,
                   energies=ENERGIES, pixel_delta=PIXEL_DELTA, noise_od=NOISE_OD,
                   drift_px: float = 3.0, jitter_px: float = 2.0, n_spheres: int = 14):
    """Raw OD tilt series per energy and the true registration.

    Detector pixel q of energy E (array index, centre c = ((ny−1)/2, (nx−1)/2)) at angle i shows
    the physical point (in units of the nominal pixel p_0) ``(q − c)(1 + δ_E) + j_i + d_E``; so
    the reference pixel x shows ``(x − c)(1 + δ_ref) + j_i + d_ref``, which is energy E's pixel
    ``c + k_E (x − c + o_E)`` with ``k_E = (1 + δ_ref)/(1 + δ_E)`` and
    ``o_E = (d_ref − d_E)/(1 + δ_ref)``.

    Returns
    -------
    tilts : {energy_eV: (n_angles, ny, nx) float32}
    angles : (n_angles,) float64, degrees
    truth : dict with ``offsets_px`` {E: (2,)}, ``pixel_ratio`` {E: k_E}, ``reference_energy``,
        ``noise_od`` {E: σ}, ``pixel_m`` {E: p_E} (the true pixel sizes).
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    c = np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])
    angles = np.sort(rng.uniform(-70.0, 70.0, n_angles))
    spheres = _sample(rng, n_spheres, 0.3 * min(ny, nx))
    binder_axes = np.array([0.32 * ny, 0.34 * nx, 0.3 * nx])
    jitter = rng.uniform(-jitter_px, jitter_px, (n_angles, 2))
    drift = {e: rng.uniform(-drift_px, drift_px, 2) for e in energies}
    drift[energies[0]] = rng.uniform(-1.0, 1.0, 2)  # the reference drifts too
    sub = (np.array([-0.25, 0.25]))
    tilts = {}
    for ie, e in enumerate(energies):
        scale = 1.0 + pixel_delta[ie]
        img = np.zeros((n_angles, ny, nx))
        for ia, th in enumerate(np.deg2rad(angles)):
            acc = np.zeros((ny, nx))
            for sy in sub:
                for sx in sub:
                    v = (np.arange(ny)[:, None] + sy - c[0]) * scale + jitter[ia, 0] + drift[e][0]
                    u = (np.arange(nx)[None, :] + sx - c[1]) * scale + jitter[ia, 1] + drift[e][1]
                    od = np.zeros((ny, nx))
                    for (cx, cy, cz), r, phase, core in spheres:
                        cu = cx * np.cos(th) + cz * np.sin(th)
                        mu = MU_PER_UM[phase][ie] * pixel_nm * 1e-3  # OD per reference pixel of path
                        od += mu * _chord(u, v, cu, cy, r)
                        if core:
                            other = "B" if phase == "A" else "A"
                            od += (MU_PER_UM[other][ie] - MU_PER_UM[phase][ie]) * pixel_nm * 1e-3 \
                                * _chord(u, v, cu, cy, core)
                    # binder: ellipsoid, axes (y, x, z); its projection is analytic too
                    a_y, a_x, a_z = binder_axes
                    a_u = 1.0 / np.sqrt(np.cos(th) ** 2 / a_x ** 2 + np.sin(th) ** 2 / a_z ** 2)
                    t = 1.0 - (v / a_y) ** 2 - (u / a_u) ** 2
                    length = 2.0 * a_x * a_z / a_u * np.sqrt(np.clip(t, 0.0, None))
                    od += MU_PER_UM["binder"][ie] * pixel_nm * 1e-3 * length
                    acc += od
            img[ia] = acc / sub.size ** 2
        img += rng.normal(0.0, noise_od[ie], img.shape)
        tilts[e] = img.astype(np.float32)
    ref = energies[0]
    s_ref = 1.0 + pixel_delta[0]
    truth = {
        "reference_energy": ref,
        "offsets_px": {e: (drift[ref] - drift[e]) / s_ref for e in energies},
        "pixel_ratio": {e: s_ref / (1.0 + pixel_delta[ie]) for ie, e in enumerate(energies)},
        "noise_od": dict(zip(energies, noise_od)),
        "pixel_m": {e: pixel_nm * 1e-9 * (1.0 + pixel_delta[ie]) for ie, e in enumerate(energies)},
    }
    return tilts, angles, truth


def registration_error_px(shape, offsets, ratios, truth, *, gauge: bool = True) -> dict:
    """RMS over the field of the mapping error per energy, reference pixels.

    The estimate maps reference pixel x to ``c + k̂ (x − c + ô)`` of energy E; the truth to
    ``c + k (x − c + o)``; the difference divided by k is the error in reference pixels. With
    ``gauge`` the translation common to all energies (the reference's frame is arbitrary; the
    reference's own error is 0) is removed first: its mean over energies, reference included.
    Returns {E: rms px} for the non-reference energies and ``"all"``: RMS over the energies
    (the reference included when the gauge is removed).
    """
    ny, nx = shape
    yy, xx = np.meshgrid(np.arange(ny) - (ny - 1) / 2.0, np.arange(nx) - (nx - 1) / 2.0, indexing="ij")
    pts = np.stack([yy, xx])
    errs = {}
    for e, o_true in truth["offsets_px"].items():
        k, kh = truth["pixel_ratio"][e], float(ratios[e])
        oh = np.asarray(offsets[e], float)
        d = (kh * (pts + oh[:, None, None]) - k * (pts + np.asarray(o_true)[:, None, None])) / k
        errs[e] = d
    if gauge:
        mean = sum(d.mean(axis=(1, 2)) for d in errs.values()) / len(errs)
        errs = {e: d - mean[:, None, None] for e, d in errs.items()}
    ref = truth["reference_energy"]
    rms = {e: float(np.sqrt((d ** 2).sum(axis=0).mean())) for e, d in errs.items()}
    out = {e: v for e, v in rms.items() if e != ref}
    # with the gauge removed the reference carries its share of the error too
    out["all"] = float(np.sqrt(np.mean([v ** 2 for e, v in rms.items() if gauge or e != ref])))
    return out
