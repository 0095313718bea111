"""Held-out two-energy tilt series for joint spectral tomography, written independently of chemtomo.simulate.

Nothing here comes from chemtomo's simulator or projector: the sample is a set of non-overlapping
spherical particles of LiFePO4/FePO4 (pure, core–shell either way, or uniformly mixed), the
tilt series are their analytic projections (chord lengths through each sphere, 2×2
supersampled per detector pixel), and the voxel truth is rasterised by 3×3×3 supersampling. So
the reconstruction grid is not the simulation's, and a method tuned on ``chemtomo.simulate``'s
plates cannot profit from its generator.

Geometry (the convention of :func:`chemtomo.tomo.project`, checked by tests/chem/test_joint.py):
volume (ny, nz, nx), tilt axis along y through the centre of the (nz, nx) slice, detector
coordinate ``u = x cos θ + z sin θ`` about the centre.
"""

from __future__ import annotations

import numpy as np

VOXEL_M = 6.7e-9
ENERGIES = (708.2, 710.2)


def _particles(rng, shape, n_particles, r_range=(3.0, 6.5)):
    ny, _, nx = shape
    out = []
    tries = 0
    while len(out) < n_particles and tries < 10000:
        tries += 1
        r = rng.uniform(r_range[0], min(r_range[1], (ny - 3) / 2.0))
        c = np.array([rng.uniform(r + 1, ny - 2 - r), rng.uniform(-0.38 * nx + r, 0.38 * nx - r),
                      rng.uniform(-0.38 * nx + r, 0.38 * nx - r)])          # (y index, z, x) about the centre
        if np.hypot(c[1], c[2]) > 0.42 * nx - r:
            continue
        if any(np.linalg.norm(c - d) < r + s + 1.0 for d, s, *_ in out):
            continue
        kind = rng.choice(["lfp", "fp", "core_fp", "core_lfp", "mixed"], p=[0.25, 0.2, 0.2, 0.15, 0.2])
        shell_f = {"lfp": 0.0, "fp": 1.0, "core_fp": 0.0, "core_lfp": 1.0, "mixed": rng.uniform(0.2, 0.8)}[kind]
        core = rng.uniform(0.45, 0.75) * r if kind.startswith("core") else 0.0
        core_f = 1.0 - shell_f if core else shell_f
        out.append((c, r, float(shell_f), float(core), float(core_f)))
    return out


def heldout_joint_series(seed: int = 0, *, shape=(24, 64, 64), n_angles: int = 37, span_deg=(-75.0, 75.0),
                         sigma_od: float = 0.0035, n_particles: int = 12, mu=None):
    """Noisy OD tilt series at 708.2 and 710.2 eV and the voxel truth.

    Parameters
    ----------
    seed : int
    shape : (ny, nz, nx) reconstruction grid, voxels of ``VOXEL_M``
    n_angles, span_deg : evenly spaced tilt angles over the span, degrees
    sigma_od : white Gaussian OD noise per detector pixel (both energies)
    n_particles : particles placed (fewer if they do not fit)
    mu : (2 energies, 2 phases) μ in 1/m, LiFePO4 first; default chemtomo's reference spectra
        at 708.2 and 710.2 eV, passed in by the caller (so this module imports nothing of chemtomo)

    Returns
    -------
    tilts : (2, n_angles, ny, nx) float32, OD
    angles : (n_angles,) float64, degrees
    truth : dict with ``occupancy`` (ny, nz, nx) in [0, 1], ``fraction`` (ny, nz, nx) FePO4
        fraction (NaN where empty), ``soc`` (Σ FePO4 / Σ material), ``particles`` (list)
    """
    if mu is None:
        raise ValueError("pass mu (2 × 2, 1/m): the references the series is made with")
    mu = np.asarray(mu, np.float64)
    rng = np.random.default_rng([seed, 24])
    ny, nz, nx = shape
    parts = _particles(rng, shape, n_particles)
    angles = np.linspace(*span_deg, n_angles)

    # voxel truth, 3×3×3 supersampled
    s = (np.arange(3) - 1) / 3.0
    occ = np.zeros(shape)
    fp = np.zeros(shape)
    yy, zz, xx = np.meshgrid(np.arange(ny), np.arange(nz) - (nz - 1) / 2, np.arange(nx) - (nx - 1) / 2,
                             indexing="ij")
    for dy in s:
        for dz in s:
            for dx in s:
                for c, r, shell_f, core, core_f in parts:
                    d = np.sqrt((yy + dy - c[0]) ** 2 + (zz + dz - c[1]) ** 2 + (xx + dx - c[2]) ** 2)
                    inside = d <= r
                    occ += inside
                    fp += np.where(d <= core, core_f, shell_f) * inside
    occ /= 27.0
    fp /= 27.0
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(occ > 0, fp / occ, np.nan)

    # analytic projections, 2×2 supersampled detector pixels
    v0 = np.arange(ny)[:, None]
    u0 = np.arange(nx)[None, :] - (nx - 1) / 2
    tilts = np.zeros((2, n_angles, ny, nx))
    for ia, th in enumerate(np.deg2rad(angles)):
        for sv in (-0.25, 0.25):
            for su in (-0.25, 0.25):
                v, u = v0 + sv, u0 + su
                for c, r, shell_f, core, core_f in parts:
                    cu = c[2] * np.cos(th) + c[1] * np.sin(th)
                    chord = 2.0 * np.sqrt(np.clip(r * r - (u - cu) ** 2 - (v - c[0]) ** 2, 0.0, None))
                    mu_shell = mu[:, 0] * (1 - shell_f) + mu[:, 1] * shell_f
                    tilts[:, ia] += mu_shell[:, None, None] * chord * VOXEL_M / 4.0
                    if core:
                        chord_c = 2.0 * np.sqrt(np.clip(core * core - (u - cu) ** 2 - (v - c[0]) ** 2, 0.0, None))
                        mu_core = mu[:, 0] * (1 - core_f) + mu[:, 1] * core_f
                        tilts[:, ia] += (mu_core - mu_shell)[:, None, None] * chord_c * VOXEL_M / 4.0
    tilts += rng.normal(0.0, sigma_od, tilts.shape)
    soc = float(fp.sum() / occ.sum())
    return tilts.astype(np.float32), angles, {"occupancy": occ.astype(np.float32), "fraction": frac.astype(np.float32),
                                              "soc": soc, "particles": parts}
