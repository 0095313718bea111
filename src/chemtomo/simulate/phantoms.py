"""A virtual sample: LiFePO4 nano-plates with known lithiation patterns (Yu et al. 2018, Fig. 4).

The sample is a volume ``(ny, nz, nx)`` (DESIGN.md): y the rotation axis, z the beam at 0°, x the
detector's horizontal at 0°. The plates lie roughly flat on a support perpendicular to z: their
large (ac) facet in the y–x plane, their thickness along z, a random in-plane orientation and
small tilts of a few degrees. A plate that lands over an earlier one rests on top of it (touching,
and overlapping in projection); some are put edge to edge beside an earlier one.

Each plate is a rectangular cuboid length × width × thickness, rasterised with partial-volume
occupancy (``supersample``³ points per voxel). Its lithiation pattern is one of

- ``"lithiated"``   : all LiFePO4 (FePO4 fraction 0)
- ``"delithiated"`` : all FePO4 (fraction 1)
- ``"edges"``       : FePO4 grown in from the plate's edges (a rim around a LiFePO4 core)
- ``"facet"``       : FePO4 grown from one large facet (a layer through the thickness)
- ``"split"``       : two large domains split by a plane normal to the facet

with sharp boundaries placed so that each plate's FePO4 fraction is exactly its assigned value,
and the fractions are chosen so that the occupancy-weighted mean over all material equals the
requested state of charge ``soc``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import InputError

__all__ = ["PAPER_SIZES", "PATTERNS", "TXM_SIZES", "PlateSizes", "Sample", "plate_sample"]

#: Lithiation patterns a plate can carry (see the module docstring).
PATTERNS = ("lithiated", "delithiated", "edges", "facet", "split")
_TWO_PHASE = ("edges", "facet", "split")
#: Plates stay within this fraction of the width from the centre along x (room for tilting).
_X_LIMIT = 0.42


@dataclass(frozen=True)
class Sample:
    """Ground truth of a virtual sample.

    occupancy : (ny, nz, nx) float32 in [0, 1]
        Fraction of each voxel filled with material (LiFePO4 or FePO4).
    fraction : (ny, nz, nx) float32
        FePO4 fraction x_FP of the material in each voxel, in [0, 1]; NaN where occupancy is 0.
    labels : (ny, nz, nx) int32
        Particle label (1..n) of each voxel at least half filled by that particle; 0 elsewhere.
    table : pandas.DataFrame
        One row per particle: ``label``, ``length_nm``, ``width_nm``, ``thickness_nm``,
        ``facet_area_nm2`` (length·width), ``volume_nm3`` (rasterised occupancy × voxel
        volume), ``fp_fraction`` (occupancy-weighted FePO4 fraction), ``pattern``,
        ``orientation_deg`` (in-plane angle of the long axis from +x towards +y),
        ``tilt_deg`` (angle between the facet normal and z), ``centroid_y_px``,
        ``centroid_z_px``, ``centroid_x_px`` (occupancy-weighted, voxel indices).
    voxel_m : float
        Voxel edge length, metres.
    """

    occupancy: np.ndarray
    fraction: np.ndarray
    labels: np.ndarray
    table: pd.DataFrame
    voxel_m: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.occupancy.shape)

    @property
    def soc(self) -> float:
        """State of charge: occupancy-weighted mean FePO4 fraction over all material."""
        occ = self.occupancy
        inside = occ > 0
        return float(np.sum(occ[inside] * self.fraction[inside], dtype=np.float64)
                     / np.sum(occ[inside], dtype=np.float64))

    def phase_volumes(self) -> tuple[np.ndarray, np.ndarray]:
        """Volume fraction of LiFePO4 and of FePO4 in each voxel, (ny, nz, nx) float32 each."""
        x = np.nan_to_num(self.fraction, nan=0.0)
        fp = (self.occupancy * x).astype(np.float32)
        return (self.occupancy - fp).astype(np.float32), fp


@dataclass
class _Plate:
    """One plate during construction (voxel units)."""

    centre: np.ndarray          # (y, z, x) voxel coordinates from the array centre
    rotation: np.ndarray        # (3, 3): columns are the local a, b, t axes in (y, z, x)
    half: np.ndarray            # (3,) half length, half width, half thickness, voxels
    orientation_deg: float
    tilt_deg: float
    lo: np.ndarray | None = None          # bounding box start index (y, z, x)
    occ: np.ndarray | None = None         # (by, bz, bx) occupancy in the bounding box
    local: np.ndarray | None = None       # (m, 3) local coordinates of inside sub-samples / half
    sub_voxel: np.ndarray | None = None   # (m,) flat bbox-voxel index of each inside sub-sample
    pattern: str = "lithiated"
    x_fp: float = 0.0


def _check(shape, voxel_m, n_particles, soc, supersample, two_phase_fraction) -> tuple[int, int, int]:
    if len(tuple(shape)) != 3 or any(int(n) != n or n < 8 for n in shape):
        raise InputError(f"plate_sample: shape must be three integers (ny, nz, nx), each >= 8, got {shape!r}")
    if not (isinstance(voxel_m, (int, float)) and math.isfinite(voxel_m) and 0 < voxel_m < 1e-6):
        raise InputError(f"plate_sample: voxel_m must be a voxel size in metres in (0, 1e-6), got {voxel_m!r}")
    if int(n_particles) != n_particles or n_particles < 1:
        raise InputError(f"plate_sample: n_particles must be a positive integer, got {n_particles!r}")
    if not (isinstance(soc, (int, float)) and 0.0 <= soc <= 1.0):
        raise InputError(f"plate_sample: soc (mean FePO4 fraction) must be in [0, 1], got {soc!r}")
    if int(supersample) != supersample or not 1 <= supersample <= 8:
        raise InputError(f"plate_sample: supersample must be an integer in 1..8, got {supersample!r}")
    if not 0.0 <= two_phase_fraction <= 1.0:
        raise InputError(f"plate_sample: two_phase_fraction must be in [0, 1], got {two_phase_fraction!r}")
    return tuple(int(n) for n in shape)


def _rotation(psi: float, tilt_axis: float, tilt: float) -> np.ndarray:
    """Columns: local axes a (length), b (width), t (normal) in (y, z, x) components.

    In-plane rotation ψ about z, then a tilt by ``tilt`` about the in-plane axis at ``tilt_axis``.
    """
    # in (x, y, z) first, then reorder to (y, z, x)
    c, s = math.cos(psi), math.sin(psi)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    u = np.array([math.cos(tilt_axis), math.sin(tilt_axis), 0.0])
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    rt = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * (k @ k)  # Rodrigues
    r_xyz = rt @ rz
    perm = [1, 2, 0]  # rows (x, y, z) -> (y, z, x)
    return r_xyz[perm, :]


@dataclass(frozen=True)
class PlateSizes:
    """Size distribution of the plates (nm).

    The facet area (length × width) is log-normal with median ``facet_median_nm2`` and log
    standard deviation ``facet_log_sigma``, truncated to ``facet_range_nm2``; the aspect
    length/width is uniform in ``aspect_range``; the thickness is normal (``thickness_mean_nm``,
    ``thickness_sigma_nm``) truncated to ``thickness_range_nm``. The defaults are the paper's
    nano-plates (Yu et al. 2018); :data:`TXM_SIZES` are micron-scale plates for hard X-rays.
    """

    facet_median_nm2: float = 8000.0
    facet_log_sigma: float = 0.55
    facet_range_nm2: tuple[float, float] = (2500.0, 40000.0)
    aspect_range: tuple[float, float] = (1.0, 1.6)
    thickness_mean_nm: float = 20.0
    thickness_sigma_nm: float = 5.0
    thickness_range_nm: tuple[float, float] = (10.0, 30.0)


#: The paper's nano-plates: facet 2,500–40,000 nm² around 100 × 80 nm, thickness 10–30 nm.
PAPER_SIZES = PlateSizes()
#: Micron-scale plates for Fe K-edge full-field TXM (:mod:`.txm`): facet 0.3–1.2 µm² around
#: 0.85 × 0.7 µm, thickness 0.5–1.0 µm (hydrothermal LiFePO4 platelets; see :mod:`.txm` for why).
TXM_SIZES = PlateSizes(facet_median_nm2=6.0e5, facet_log_sigma=0.3, facet_range_nm2=(3.0e5, 1.2e6),
                       aspect_range=(1.0, 1.5), thickness_mean_nm=700.0, thickness_sigma_nm=150.0,
                       thickness_range_nm=(500.0, 1000.0))


def _draw_size(rng: np.random.Generator, voxel_nm: float, sizes: PlateSizes = PAPER_SIZES) -> np.ndarray:
    """Half length, half width, half thickness in voxels, drawn from ``sizes``."""
    area = float(np.clip(rng.lognormal(math.log(sizes.facet_median_nm2), sizes.facet_log_sigma),
                         *sizes.facet_range_nm2))
    aspect = float(rng.uniform(*sizes.aspect_range))
    length = math.sqrt(area * aspect)
    width = area / length
    thickness = float(np.clip(rng.normal(sizes.thickness_mean_nm, sizes.thickness_sigma_nm),
                              *sizes.thickness_range_nm))
    return np.array([length, width, thickness]) / (2.0 * voxel_nm)


def _rasterise(p: _Plate, shape: tuple[int, int, int], ss: int) -> None:
    """Occupancy of plate ``p`` in its bounding box, with its inside sub-samples kept."""
    ext = np.abs(p.rotation) @ p.half  # half extent along (y, z, x), voxels
    centre_idx = p.centre + (np.asarray(shape) - 1) / 2.0
    lo = np.maximum(np.floor(centre_idx - ext - 0.5).astype(int), 0)
    hi = np.minimum(np.ceil(centre_idx + ext + 0.5).astype(int) + 1, shape)
    box = hi - lo
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    axes = [(lo[i] + np.arange(box[i]))[:, None] + offs[None, :] for i in range(3)]
    # sub-sample coordinates relative to the plate centre, voxel units, shape (by·ss, bz·ss, bx·ss)
    gy, gz, gx = np.meshgrid(axes[0].ravel() - centre_idx[0], axes[1].ravel() - centre_idx[1],
                             axes[2].ravel() - centre_idx[2], indexing="ij", sparse=True)
    r = p.rotation
    local = [(gy * r[0, k] + gz * r[1, k] + gx * r[2, k]) / p.half[k] for k in range(3)]
    inside = (np.abs(local[0]) <= 1) & (np.abs(local[1]) <= 1) & (np.abs(local[2]) <= 1)
    occ = inside.reshape(box[0], ss, box[1], ss, box[2], ss).mean(axis=(1, 3, 5))
    idx = np.nonzero(inside)
    vox = np.ravel_multi_index((idx[0] // ss, idx[1] // ss, idx[2] // ss), tuple(box))
    p.lo, p.occ, p.sub_voxel = lo, occ.astype(np.float32), vox
    p.local = np.stack([np.broadcast_to(c, inside.shape)[idx] for c in local], axis=1).astype(np.float32)


def _lateral_centre(rng, shape, plates, rot, half, ext, touch_p) -> tuple[float, float]:
    """In-plane centre (y, x) from the array centre, voxels: random, or edge to edge with a plate."""
    ny, _, nx = shape
    if plates and rng.uniform() < touch_p:
        # beside a random earlier plate, along one of its in-plane axes, footprints touching
        q = plates[rng.integers(len(plates))]
        k = int(rng.integers(2))
        direction = q.rotation[:, k] * rng.choice([-1.0, 1.0])
        direction[1] = 0.0
        direction /= np.linalg.norm(direction)
        reach = q.half[k] + float(np.abs(direction @ rot[:, :2]) @ half[:2])
        return q.centre[0] + direction[0] * reach, q.centre[2] + direction[2] * reach
    room_y, room_x = ny / 2 - 2 - ext[0], _X_LIMIT * nx - ext[2]
    if room_y <= 0 or room_x <= 0:
        return math.inf, math.inf
    return rng.uniform(-room_y, room_y), rng.uniform(-room_x, room_x)


def _fits(shape, centre, ext) -> bool:
    """Inside the field, and inside the cylinder that every tilt projects onto the detector."""
    ny, nz, nx = shape
    cy, cz, cx = centre
    radius = math.hypot(abs(cx) + ext[2], abs(cz) + ext[1])
    return (abs(cy) + ext[0] <= ny / 2 - 2 and abs(cx) + ext[2] <= _X_LIMIT * nx
            and abs(cz) + ext[1] <= nz / 2 - 2 and radius <= nx / 2 - 2)


def _rest_height(height, shape, cy, cx, ext) -> float:
    """Highest surface (support or earlier plate) under a footprint, z voxels from the centre."""
    ny, _, nx = shape
    y0, y1 = cy + (ny - 1) / 2 - ext[0], cy + (ny - 1) / 2 + ext[0]
    x0, x1 = cx + (nx - 1) / 2 - ext[2], cx + (nx - 1) / 2 + ext[2]
    return float(height[max(math.floor(y0), 0):math.ceil(y1) + 1,
                        max(math.floor(x0), 0):math.ceil(x1) + 1].max())


def _raise_height(height, plate: _Plate, nz: int) -> None:
    """Put the plate's top surface into the height map (z voxels from the centre)."""
    occupied = plate.occ > 0
    foot = occupied.any(axis=1)
    top_index = np.where(occupied, np.arange(plate.occ.shape[1])[None, :, None], -1).max(axis=1)
    top = plate.lo[1] + top_index + 0.5 - (nz - 1) / 2.0
    sl = (slice(plate.lo[0], plate.lo[0] + foot.shape[0]), slice(plate.lo[2], plate.lo[2] + foot.shape[1]))
    height[sl] = np.where(foot, np.maximum(height[sl], top), height[sl])


def _place(rng, shape, voxel_nm, plates, height, ss, touch_p, tilt_sigma_deg, sizes, max_tries=400):
    """Draw one plate that fits in the field, resting on the support or on earlier plates."""
    for _ in range(max_tries):
        half = _draw_size(rng, voxel_nm, sizes)
        psi = rng.uniform(0, math.pi)
        tilt = math.radians(min(abs(rng.normal(0.0, tilt_sigma_deg)), 3 * tilt_sigma_deg))
        rot = _rotation(psi, rng.uniform(0, 2 * math.pi), tilt)
        ext = np.abs(rot) @ half  # half extent along (y, z, x), voxels
        cy, cx = _lateral_centre(rng, shape, plates, rot, half, ext, touch_p)
        if not math.isfinite(cy):
            continue
        cz = _rest_height(height, shape, cy, cx, ext) + ext[1] if _fits(shape, (cy, 0.0, cx), ext) else math.inf
        if not (math.isfinite(cz) and _fits(shape, (cy, cz, cx), ext)):
            continue
        plate = _Plate(np.array([cy, cz, cx]), rot, half, math.degrees(psi) % 180.0, math.degrees(tilt))
        _rasterise(plate, shape, ss)
        if _overlaps(plate, plates):
            continue
        _raise_height(height, plate, shape[1])
        return plate
    raise InputError(f"plate_sample: could not place particle {len(plates) + 1} in a field of shape {shape} "
                     f"(voxel {voxel_nm:.2f} nm) after {max_tries} tries; use a larger shape or fewer particles")


def _overlaps(p: _Plate, plates: list[_Plate], tol: float = 0.35) -> bool:
    """True when ``p`` shares more than a thin partial-volume layer with an earlier plate."""
    for q in plates:
        lo = np.maximum(p.lo, q.lo)
        hi = np.minimum(p.lo + p.occ.shape, q.lo + q.occ.shape)
        if np.any(hi <= lo):
            continue
        a = p.occ[tuple(slice(lo[i] - p.lo[i], hi[i] - p.lo[i]) for i in range(3))]
        b = q.occ[tuple(slice(lo[i] - q.lo[i], hi[i] - q.lo[i]) for i in range(3))]
        if np.any(a + b > 1.0 + tol):
            return True
    return False


def _assign_fractions(rng, plates: list[_Plate], soc: float, two_phase_fraction: float) -> None:
    """Patterns and FePO4 fractions so that the occupancy-weighted mean equals ``soc``."""
    vol = np.array([float(p.occ.sum()) for p in plates])
    n = len(plates)
    two = rng.uniform(size=n) < two_phase_fraction
    x = np.where(two, rng.uniform(0.2, 0.8, size=n), 0.0)
    target = soc * vol.sum()
    # end members: delithiate whole plates, in random order, while they fit under the target
    remaining = target - float(np.sum(vol[two] * x[two]))
    for i in rng.permutation(np.flatnonzero(~two)):
        if vol[i] <= remaining:
            x[i] = 1.0
            remaining -= vol[i]
    # the two-phase plates absorb the rest (fractions kept in 3–97 %); when they cannot, convert
    # the smallest helpful end member to two-phase; as a last resort widen the range to 0–100 %
    for _ in range(2 * n + 2):
        resid = target - float(np.sum(vol * x))
        if abs(resid) <= 1e-9 * vol.sum():
            break
        lo, hi = (0.03, 0.97) if np.any(two) else (0.0, 1.0)
        free = np.flatnonzero(two)
        room = (hi - x[free]) * vol[free] if resid > 0 else (x[free] - lo) * vol[free]
        room = np.maximum(room, 0.0)
        if free.size and room.sum() >= abs(resid):
            x[free] += np.sign(resid) * room / room.sum() * abs(resid) / vol[free]
            continue
        if free.size:
            x[free] = hi if resid > 0 else lo
        cand = np.flatnonzero(~two & ((x == 0.0) if resid > 0 else (x == 1.0)))
        if cand.size:
            i = cand[np.argmin(vol[cand])]
            two[i] = True
            x[i] = 0.5
            continue
        # every plate is two-phase at its bound: let the fractions reach the end members
        room = (1.0 - x) * vol if resid > 0 else x * vol
        x += np.sign(resid) * room / max(room.sum(), 1e-300) * min(abs(resid), room.sum()) / vol
        break
    x = np.clip(x, 0.0, 1.0)
    for p, is_two, xi in zip(plates, two, x):
        if is_two and 1e-6 < xi < 1.0 - 1e-6:
            p.pattern = str(rng.choice(_TWO_PHASE))
        else:
            xi = 1.0 if xi >= 0.5 else 0.0
            p.pattern = "delithiated" if xi == 1.0 else "lithiated"
        p.x_fp = float(xi)


def _fp_amount(rng, p: _Plate, ss: int) -> np.ndarray:
    """FePO4 volume per bounding-box voxel for plate ``p``: sharp domains of its pattern."""
    n_sub = p.local.shape[0]
    if p.pattern == "lithiated" or n_sub == 0:
        return np.zeros(p.occ.shape, np.float32)
    if p.pattern == "delithiated":
        return p.occ.copy()
    a, b, t = p.local[:, 0], p.local[:, 1], p.local[:, 2]
    if p.pattern == "edges":
        # distance to the nearest lateral edge, in voxels; FePO4 where it is small
        field = -np.minimum((1 - np.abs(a)) * p.half[0], (1 - np.abs(b)) * p.half[1])
    elif p.pattern == "facet":
        field = t * rng.choice([-1.0, 1.0])
    else:  # split
        phi = rng.uniform(0, 2 * math.pi)
        field = math.cos(phi) * a * p.half[0] + math.sin(phi) * b * p.half[1]
    # threshold so that exactly x_fp of the sub-samples are FePO4 (FePO4 where field is largest)
    k = round((1.0 - p.x_fp) * n_sub)
    order = np.argsort(field, kind="stable")
    fp = np.zeros(n_sub, bool)
    fp[order[k:]] = True
    counts = np.bincount(p.sub_voxel[fp], minlength=p.occ.size)
    return (counts.reshape(p.occ.shape) / float(ss ** 3)).astype(np.float32)


def plate_sample(shape=(40, 64, 64), voxel_m: float = 6.7e-9, *, n_particles: int = 10, soc: float = 0.5,
                 seed: int | np.random.Generator = 0, two_phase_fraction: float = 0.35,
                 touch_probability: float = 0.3, tilt_sigma_deg: float = 3.0, supersample: int = 4,
                 sizes: PlateSizes = PAPER_SIZES) -> Sample:
    """A field of LiFePO4/FePO4 nano-plates with known lithiation patterns.

    Parameters
    ----------
    shape : (ny, nz, nx) ints
        Volume shape in voxels; y is the rotation axis, z the beam at 0°.
    voxel_m : float
        Voxel edge length, metres (paper: 6.7e-9).
    n_particles : int
        Number of plates.
    soc : float
        State of charge: occupancy-weighted mean FePO4 fraction over all material, in [0, 1].
        The result matches it to about 1e-3 (sub-sample quantisation).
    seed : int or numpy.random.Generator
    two_phase_fraction : float
        Probability that a plate is drawn two-phase (``edges``/``facet``/``split``); the rest
        are end members, possibly converted to two-phase to reach ``soc``.
    touch_probability : float
        Probability that a plate is put edge to edge beside an earlier one.
    tilt_sigma_deg : float
        Standard deviation of the plates' tilt away from flat, degrees (capped at 3σ).
    supersample : int
        Sub-samples per voxel edge for the partial-volume occupancy.
    sizes : PlateSizes
        Size distribution of the plates (default: the paper's nano-plates, :data:`PAPER_SIZES`).

    Returns
    -------
    Sample
        Occupancy, FePO4 fraction, labels and a per-particle table (see :class:`Sample`).

    Notes
    -----
    Sizes (default :data:`PAPER_SIZES`): the facet area is log-normal around 100 × 80 nm =
    8,000 nm², truncated to 2,500–40,000 nm²; aspect length/width uniform in 1–1.6; thickness
    normal 20 ± 5 nm truncated to 10–30 nm (Yu et al. 2018). Plates rest on a support plane a few voxels below the volume
    centre or on earlier plates.

    Examples
    --------
    >>> s = plate_sample((32, 32, 48), 6.7e-9, n_particles=3, soc=0.4, seed=1)
    >>> abs(s.soc - 0.4) < 0.01
    True
    """
    shape = _check(shape, voxel_m, n_particles, soc, supersample, two_phase_fraction)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ny, nz, nx = shape
    voxel_nm = voxel_m * 1e9
    height = np.full((ny, nx), -min(6.0, nz / 4.0))  # the support plane, z voxels from the centre
    plates: list[_Plate] = []
    for _ in range(int(n_particles)):
        plates.append(_place(rng, shape, voxel_nm, plates, height, int(supersample), touch_probability,
                             tilt_sigma_deg, sizes))
    _assign_fractions(rng, plates, float(soc), float(two_phase_fraction))

    occ_sum = np.zeros(shape, np.float32)
    fp_sum = np.zeros(shape, np.float32)
    best = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int32)
    rows = []
    for lab, p in enumerate(plates, start=1):
        sl = tuple(slice(p.lo[i], p.lo[i] + p.occ.shape[i]) for i in range(3))
        fp = _fp_amount(rng, p, int(supersample))
        occ_sum[sl] += p.occ
        fp_sum[sl] += fp
        take = (p.occ >= 0.5) & (p.occ > best[sl])
        labels[sl][take] = lab
        best[sl] = np.maximum(best[sl], p.occ)
        w = p.occ.sum(dtype=np.float64)
        grid = np.meshgrid(*[p.lo[i] + np.arange(p.occ.shape[i]) for i in range(3)], indexing="ij")
        cy, cz, cx = (float(np.sum(g * p.occ) / w) for g in grid)
        length, width, thick = 2 * p.half * voxel_nm
        rows.append({"label": lab, "length_nm": length, "width_nm": width, "thickness_nm": thick,
                         "facet_area_nm2": length * width, "volume_nm3": w * voxel_nm ** 3,
                         "fp_fraction": float(fp.sum(dtype=np.float64) / w), "pattern": p.pattern,
                         "orientation_deg": p.orientation_deg, "tilt_deg": p.tilt_deg,
                         "centroid_y_px": cy, "centroid_z_px": cz, "centroid_x_px": cx})
    inside = occ_sum > 0
    fraction = np.full(shape, np.nan, np.float32)
    fraction[inside] = np.clip(fp_sum[inside] / occ_sum[inside], 0.0, 1.0)
    occupancy = np.clip(occ_sum, 0.0, 1.0).astype(np.float32)
    table = pd.DataFrame(rows)
    return Sample(occupancy=occupancy, fraction=fraction, labels=labels, table=table, voxel_m=float(voxel_m))
