"""Misaligned tilt series with known truth, for the alignment tests and benchmark.

A small phantom of plate-like ellipsoids made of two materials (so that two energies show
different chemical contrast but share their edges) is projected with ``chemtomo.tomo.project``;
each projection is then moved by the *inverse* of a known alignment (cubic interpolation, so the
data are not made with the bilinear warp the aligner uses), offset per energy, given an intensity
gain and offset drift, and Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chemtomo import tomo
from chemtomo.align.transform import inverse_params, raw_coordinates


def phantom(ny=32, nx=48, *, seed=0, n_plates=7, radius_frac=0.22):
    """Two material volumes (ny, nx, nx) float32 of plate-like ellipsoids near the centre."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = None, None, None
    y, z, x = np.meshgrid(np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2,
                          np.arange(nx) - (nx - 1) / 2, indexing="ij")
    mats = np.zeros((2, ny, nx, nx), np.float32)
    r_xy = radius_frac * nx
    for k in range(n_plates):
        cy = rng.uniform(-0.18, 0.18) * ny
        cz, cx = rng.uniform(-r_xy, r_xy, 2) * 0.8
        ax = rng.uniform(2.0, 5.0, 3)  # semi-axes y, z, x
        ang = rng.uniform(0, np.pi)
        zr = (z - cz) * np.cos(ang) + (x - cx) * np.sin(ang)
        xr = -(z - cz) * np.sin(ang) + (x - cx) * np.cos(ang)
        inside = ((y - cy) / ax[0]) ** 2 + (zr / ax[1]) ** 2 + (xr / (0.5 * ax[2])) ** 2 <= 1
        mats[k % 2][inside] = rng.uniform(0.05, 0.1)
    del zz, yy, xx
    return mats


@dataclass
class Misaligned:
    raw: dict            # {energy: (n, ny, nx) float32} misaligned, noisy
    perfect: dict        # {energy: (n, ny, nx) float32} perfectly aligned, noise-free
    angles_deg: np.ndarray
    shifts_px: np.ndarray
    rotation_deg: np.ndarray
    scale: np.ndarray
    offsets_px: dict     # {energy: (2,)}
    volumes: dict        # {energy: (ny, nx, nx)}

    @property
    def truth(self):
        return self.shifts_px, self.rotation_deg, self.scale


def misaligned_series(ny=32, nx=48, n_angles=36, *, seed=1, max_shift_px=(6.0, 10.0),
                      max_rotation_deg=1.0, max_scale=0.01, energies=(708.2, 710.2),
                      max_offset_px=3.0, noise=0.01, drift=0.05, angle_range=(-70.0, 70.0),
                      radius_frac=0.22):
    """A tilt series per energy with known misalignment (DESIGN convention).

    ``radius_frac`` sets how far from the axis (as a fraction of nx) the plates reach; above
    ≈ 0.4 material leaves the field at high tilt."""
    rng = np.random.default_rng(seed)
    mats = phantom(ny, nx, seed=seed, radius_frac=radius_frac)
    angles = np.linspace(angle_range[0], angle_range[1], n_angles)
    shifts = rng.uniform(-1, 1, (n_angles, 2)) * np.asarray(max_shift_px)
    rot = rng.uniform(-1, 1, n_angles) * max_rotation_deg
    scale = 1 + rng.uniform(-1, 1, n_angles) * max_scale
    # material contrast differs per energy: material 0 brighter at E1, material 1 at E2
    contrast = {e: (np.array([1.0, 0.4]) if k == 0 else np.array([0.5, 1.2]))
                for k, e in enumerate(energies)}
    raw, perfect, volumes, offsets = {}, {}, {}, {}
    for k, e in enumerate(energies):
        vol = (contrast[e][0] * mats[0] + contrast[e][1] * mats[1]).astype(np.float32)
        proj = tomo.project(vol, angles)
        off = np.zeros(2) if k == 0 else rng.uniform(-1, 1, 2) * max_offset_px
        ti, ri, si = inverse_params(shifts, rot, scale)
        # raw(x) = perfect(q⁻¹(x − o)): content at aligned p sits at q(p) + o
        q = raw_coordinates((ny, nx), ti, ri, si)
        # q⁻¹(x − o) = q⁻¹(x) − (1/s) R(−φ) o
        phi = np.deg2rad(ri)
        oy = si * (np.cos(phi) * off[0] - np.sin(phi) * off[1])
        ox = si * (np.sin(phi) * off[0] + np.cos(phi) * off[1])
        q = q - np.stack([oy, ox])[:, :, None, None]
        moved = np.stack([ndimage.map_coordinates(proj[i], q[:, i], order=3, mode="constant", cval=0.0)
                          for i in range(n_angles)])
        gain = 1 + drift * rng.uniform(-1, 1, n_angles)
        bias = 0.2 * drift * rng.uniform(-1, 1, n_angles) * proj.max()
        moved = moved * gain[:, None, None] + bias[:, None, None]
        moved += noise * proj.max() * rng.standard_normal(moved.shape)
        raw[e] = moved.astype(np.float32)
        perfect[e] = proj
        volumes[e] = vol
        offsets[e] = off
    return Misaligned(raw, perfect, angles, shifts, rot, scale, offsets, volumes)
