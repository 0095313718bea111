"""Which ptychography code is most accurate depends on the data: a matrix of regimes, every
chemtomo algorithm and a textbook ePIE in each, OD error against the truth.

Each cell is a scan simulated here with ``chemtomo.simulate.ptychography`` (Poisson counts of
``|F[P·O]|²`` plus an optional detector background) of a textured object that both absorbs and
shifts the phase, with an area of air. Cells vary

* the probe: a defocused zone plate with a central stop (``chemtomo.ptycho.zone_plate_probe``),
  a Gaussian with a curved (quadratic) phase front, a pinhole propagated out of focus, the probe
  reconstructed from the measured Siemens star (``star_probe``);
* the probe guess handed to the reconstruction (the file's probe): the truth ("exact"), the truth
  propagated until its overlap with the truth is 0.9 ("defocus", as a previous reconstruction
  at another focus gives), the truth stretched 2× ("broad"), a flat disc of the nominal diameter
  ("disc");
* the dose (photons per frame, 1e4 .. 1e9), the frame size (64², a few 128², one 256²), the scan
  step as a fraction of the probe diameter (0.15 .. 0.6), a static background (2 photons/pixel)
  and position errors (the file's positions off by 1 px rms). The raster has random offsets of up
  to ±0.15 step (whole pixels), as real stages give;
* two cells are the pipeline's own scans (``simulate_dataset("demo")``: LiFePO4/FePO4 plates,
  zone plate, its dose, background, dead pixels, recorded positions off the actual ones);
* cells 24–31 (session 32) put the probe at true positions off the pixel grid, as a stage
  records them (the simulator's exact Fourier shift of the probe by each position's
  remainder); the textbook ePIE rounds them to whole pixels. Cells 0–23 have
  whole-pixel true positions, so they cannot show what rounding positions to sub-pixel bins
  costs (``PtychoOptions.subpixel``);
* cells 32–35 (session 33) are twins of 24–27 made with another simulator's forward model
  (``object_shift_frames``, pty-chi's patch extraction): the probe on the pixel grid and the
  object patch Fourier-shifted by the remainder. The same continuous wave sampled on a grid
  offset by the remainder; at high dose the difference in aliasing is a model error that no
  chemtomo code shares with that simulator; cells 36–39 are the same four made without
  aliasing (``alias_free_frames``: the exit wave on a grid twice as fine, the far field
  cropped to the detector, as the physics gives it).

Each axis value appears in at least two cells (not the Cartesian product); 256² frames once.

The probe diameter is ``2·sqrt(2 <r²>)`` of its intensity (the diameter of a flat disc with the
same second moment). Every reconstruction starts from unit transmission and the guess, runs on
one core, ``frc=False``. Codes:

* every chemtomo algorithm through ``chemtomo.ptycho.reconstruct`` with its default options
  (``--algos`` picks them; ``default`` is ``chemtomo.ptycho.DEFAULT_ALGORITHM``, which stops by
  itself, iterations a maximum);
* ``textbook``: plain ePIE (Maiden & Rodenburg, Ultramicroscopy 109, 1256 (2009)) written below,
  60 iterations, one frame at a time in a random order, object and probe updated from the start;
* ``PtyLab mPIE`` and ``pty-chi LSQML`` (where installed): the drivers of ``_anchors_ptycho.py``,
  50 iterations from the same guess scaled to the counts, the positions as the file records them
  (pty-chi shifts its object patches by their sub-pixel remainder, PtyLab rounds them itself;
  before session 33 both were handed whole pixels, ``--anchor-positions rounded``, which cost
  pty-chi up to 3.3× its error in the off-grid cells).

Two tables: the error at the end (chemtomo codes stop by themselves), and the error of the
object at the end of the first iteration past a fixed time (2 s per 49 frames of 64², scaled by
frames × pixels; start-up included). The default is chosen on seed 0; the table is printed for
``--seed`` (default 1, held out).

Error: OD = −2 ln|T| on the region lit by at least 25 % of the peak summed probe intensity, after
a 1/20-pixel registration of the complex images; the best constant OD offset removed (the air
reference of each code differs); RMS of the OD difference over the truth's OD spread (RMS about
its mean). 0 is perfect, 1 is no information. A cell's best is the lowest over all codes; the
last columns give the default's ratio to it (goal ≤ 1.05).

    PYTHONPATH=src .venv/bin/python benchmarks/ptycho_regimes.py [--cells 0 3 5] [--algos default RAAR:200] [--seed 1]

Not a test; not run in CI. All 32 cells and 12 codes take about two hours on a busy 2-core machine:
give ``--cells`` and ``--algos`` (docs/results/ptychography.md has the command used).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

os.environ.setdefault("TQDM_DISABLE", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _anchors_ptycho

import numpy as np
from scipy import ndimage

PIXEL_M = 20e-9
ENERGY_EV = 710.0
WAVELENGTH_M = 1.23984e-6 / ENERGY_EV
DETECTOR_PIXEL_M = 30e-6


@dataclass(frozen=True)
class Cell:
    probe: str  # "zone plate" | "gaussian" | "pinhole"
    guess: str  # "exact" | "defocus" | "broad" | "disc"
    dose: float
    n: int  # frame size (n × n)
    step: float  # scan step / probe diameter
    background: float = 0.0  # photons per pixel
    position_error_px: float = 0.0
    side: int = 7  # raster points per axis
    continuous: bool = False  # true positions off the pixel grid (as a stage records them)
    simulator: str = "chemtomo"  # forward model of the data: "chemtomo", "object shift" or "alias-free"

    @property
    def name(self) -> str:
        if self.probe == "demo":
            return f"demo plates, scan {self.side}"
        extra = []
        if self.background:
            extra.append(f"bg {self.background:g}")
        if self.position_error_px:
            extra.append(f"pos err {self.position_error_px:g} px")
        if self.continuous:
            extra.append("off-grid")
        if self.simulator != "chemtomo":
            extra.append(self.simulator)
        return (f"{self.probe}, {self.guess}, {self.dose:.0e}, {self.n}², {self.step:g}"
                + ("".join(f", {e}" for e in extra)))


CELLS = [
    Cell("zone plate", "defocus", 1e4, 64, 0.3),
    Cell("zone plate", "defocus", 1e6, 64, 0.35),
    Cell("zone plate", "defocus", 1e9, 128, 0.35, side=6),
    Cell("zone plate", "defocus", 1e6, 64, 0.6),
    Cell("zone plate", "defocus", 1e6, 64, 0.35, background=2.0),
    Cell("zone plate", "exact", 1e5, 64, 0.15, side=9),
    Cell("zone plate", "disc", 1e6, 64, 0.35),
    Cell("zone plate", "defocus", 1e5, 64, 0.35, position_error_px=1.0),
    Cell("gaussian", "defocus", 1e5, 128, 0.3, side=6),
    Cell("gaussian", "defocus", 1e6, 64, 0.35),
    Cell("gaussian", "broad", 1e6, 64, 0.35),
    Cell("gaussian", "exact", 1e4, 64, 0.5),
    Cell("pinhole", "defocus", 1e6, 128, 0.35, side=6),
    Cell("pinhole", "broad", 1e5, 64, 0.35),
    Cell("pinhole", "disc", 1e9, 64, 0.35),
    Cell("zone plate", "defocus", 1e6, 256, 0.35, side=5),
    # session 3: the measured star's probe, more guesses/doses/backgrounds/position errors, the demo
    Cell("star", "exact", 1e6, 64, 0.35),
    Cell("star", "disc", 1e5, 64, 0.3),
    Cell("star", "defocus", 1e5, 128, 0.35, side=6),
    Cell("pinhole", "exact", 1e4, 64, 0.3, background=2.0),
    Cell("gaussian", "disc", 1e9, 64, 0.35, position_error_px=1.0),
    Cell("zone plate", "broad", 1e4, 64, 0.35),
    Cell("demo", "file", 1e6, 64, 0.0, side=3),  # side = scan index: 0°, 710.2 eV
    Cell("demo", "file", 1e6, 64, 0.0, side=4),  # 50°, 708.2 eV
    # true positions off the pixel grid (session 32): the probe at a continuous position, as a
    # stage records it (the simulator's exact Fourier shift); the textbook ePIE rounds them
    Cell("zone plate", "defocus", 1e6, 64, 0.35, continuous=True),
    Cell("zone plate", "defocus", 1e9, 128, 0.35, side=6, continuous=True),
    Cell("gaussian", "defocus", 1e6, 64, 0.35, continuous=True),
    Cell("pinhole", "disc", 1e9, 64, 0.35, continuous=True),
    Cell("star", "exact", 1e6, 64, 0.35, continuous=True),
    Cell("zone plate", "defocus", 1e5, 64, 0.35, position_error_px=1.0, continuous=True),
    Cell("zone plate", "exact", 1e4, 64, 0.3, continuous=True),
    Cell("gaussian", "broad", 1e7, 64, 0.35, continuous=True),
    # session 33: another simulator's forward model (pty-chi's patch extraction): the probe on the
    # pixel grid, the object patch Fourier-shifted by each position's remainder; twins of 24-27
    Cell("zone plate", "defocus", 1e6, 64, 0.35, continuous=True, simulator="object shift"),
    Cell("zone plate", "defocus", 1e9, 128, 0.35, side=6, continuous=True, simulator="object shift"),
    Cell("gaussian", "defocus", 1e6, 64, 0.35, continuous=True, simulator="object shift"),
    Cell("pinhole", "disc", 1e9, 64, 0.35, continuous=True, simulator="object shift"),
    # the same four made without aliasing (the physics a detector sees): exit wave on a grid twice
    # as fine, far field cropped to the detector
    Cell("zone plate", "defocus", 1e6, 64, 0.35, continuous=True, simulator="alias-free"),
    Cell("zone plate", "defocus", 1e9, 128, 0.35, side=6, continuous=True, simulator="alias-free"),
    Cell("gaussian", "defocus", 1e6, 64, 0.35, continuous=True, simulator="alias-free"),
    Cell("pinhole", "disc", 1e9, 64, 0.35, continuous=True, simulator="alias-free"),
]

DEFAULT_ALGOS = ["default", "rPIE:300,ePIE:200", "LSQML:300", "ePIE:100", "rPIE:100", "mPIE:50", "RAAR:200", "DM:200",
                 "ML:200", "textbook", "PtyLab mPIE", "pty-chi LSQML"]


# ------------------------------------------------------------------------------------- probes
def _radius2(n: int) -> np.ndarray:
    y, x = np.indices((n, n)) - n // 2
    return (y * y + x * x).astype(np.float64)


def diameter_px(probe: np.ndarray) -> float:
    """``2·sqrt(2<r²>)`` of the intensity about its centroid (a flat disc's diameter)."""
    p = np.abs(probe) ** 2
    p = p / p.sum()
    y, x = np.indices(p.shape)
    cy, cx = (p * y).sum(), (p * x).sum()
    return float(2 * np.sqrt(2 * (p * ((y - cy) ** 2 + (x - cx) ** 2)).sum()))


def propagate(field: np.ndarray, lz_px2: float) -> np.ndarray:
    """Fresnel propagation by λz (in pixel² units) with the paraxial transfer function."""
    n = field.shape[0]
    q = np.fft.fftfreq(n)
    q2 = q[:, None] ** 2 + q[None, :] ** 2
    return np.fft.ifft2(np.fft.fft2(np.fft.ifftshift(field)) * np.exp(-1j * np.pi * lz_px2 * q2)).astype(np.complex128)


@functools.lru_cache(maxsize=4)
def star_probe(n: int) -> np.ndarray:
    """The probe reconstructed from the measured Siemens star (``probe`` of
    siemens-star-small.npz.bz2, 128²: $CHEMTOMO_STAR, else the file in $CHEMTOMO_MEASURED_DATA or
    tests/data/measured, ``measured.data_dir``), 2×2-binned down to n."""
    import bz2
    import io

    from measured import STAR, data_dir

    path = os.environ.get("CHEMTOMO_STAR") or data_dir(None) / STAR
    with bz2.open(path) as f:
        raw = np.load(io.BytesIO(f.read()))["probe"]
    p = raw.reshape(-1, *raw.shape[-2:])[0].astype(np.complex128)
    while p.shape[0] > n:
        p = p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).mean(axis=(1, 3))
    if p.shape != (n, n):
        raise ValueError(f"star probe: cannot make {n}² from {raw.shape}")
    return p


def true_probe(kind: str, n: int) -> np.ndarray:
    if kind == "zone plate":
        from chemtomo.ptycho import zone_plate_probe
        p = zone_plate_probe((n, n), PIXEL_M, ENERGY_EV, outer_zone_m=60e-9, central_stop=0.4)
    elif kind == "gaussian":
        w0 = 0.13 * n
        r2 = _radius2(n)
        p = np.exp(-r2 / w0 ** 2 + 1j * 3.0 * r2 / w0 ** 2)
    elif kind == "star":
        p = star_probe(n)
    elif kind == "pinhole":
        a = 0.1 * n
        disc = (np.sqrt(_radius2(n)) <= a).astype(np.complex128)
        p = np.fft.fftshift(propagate(disc, a * a / 1.5))
    else:
        raise ValueError(kind)
    p = np.asarray(p, np.complex128).reshape(n, n)
    return (p / np.sqrt(np.sum(np.abs(p) ** 2))).astype(np.complex64)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))


def guess_probe(kind: str, probe: np.ndarray) -> np.ndarray:
    n = probe.shape[0]
    if kind == "exact":
        g = probe.astype(np.complex128)
    elif kind == "defocus":  # propagate until the overlap with the truth is 0.9 (bisection on λz)
        lo, hi = 0.0, 50.0 * n
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if overlap(np.fft.fftshift(propagate(probe, mid)), probe) > 0.9:
                lo = mid
            else:
                hi = mid
        g = np.fft.fftshift(propagate(probe, 0.5 * (lo + hi)))
    elif kind == "broad":  # stretched 2×
        c = (n // 2) + (np.indices((n, n)) - n // 2) / 2.0
        g = (ndimage.map_coordinates(probe.real.astype(np.float64), c, order=1)
             + 1j * ndimage.map_coordinates(probe.imag.astype(np.float64), c, order=1))
    elif kind == "disc":
        g = (np.sqrt(_radius2(n)) <= diameter_px(probe) / 2).astype(np.complex128)
    else:
        raise ValueError(kind)
    return (g / np.sqrt(np.sum(np.abs(g) ** 2))).astype(np.complex64)


# ------------------------------------------------------------------------------------- object
def make_object(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Textured absorbing, phase-shifting object with empty areas: OD up to ~1, phase to −1.5 rad."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.5)
    field += 0.5 * ndimage.gaussian_filter(rng.standard_normal(shape), 0.8)
    field = (field - field.mean()) / field.std()
    t = np.clip(field + 0.2, 0, None)
    t = t / t.max()
    od = 1.0 * t  # −2 ln|T|
    return (np.exp(-od / 2) * np.exp(-1.5j * t)).astype(np.complex64)


@functools.lru_cache(maxsize=2)
def _demo_dataset(seed: int):
    from chemtomo.simulate import simulate_dataset

    return simulate_dataset("demo", seed=seed, angles_deg=[-40.0, 0.0, 50.0])


def simulate_demo(index: int, seed: int):
    """Scan ``index`` of the pipeline's own demo dataset (``simulate_dataset("demo")``, three of
    its angles, both energies): LiFePO4/FePO4 plates, zone plate, its dose, background, mask,
    recorded positions off the actual ones, and the file's probe (the true one)."""
    ds = _demo_dataset(seed)
    scan = ds.scans[index]
    obj, pixel = ds.scan_object(index)
    pos = ds.positions_m[index] / pixel
    probe = ds.probes[float(scan.energy_ev)]
    n = probe.shape[0]
    power = np.abs(probe) ** 2
    lit = np.zeros(obj.shape)
    centre = np.array(obj.shape) // 2 - n // 2
    for y, x in np.rint(pos).astype(int) + centre:
        lit[y:y + n, x:x + n] += power
    return scan, obj, lit, diameter_px(probe)


def simulate(cell: Cell, seed: int = 0):
    if cell.probe == "demo":
        return simulate_demo(cell.side, seed)
    from chemtomo.core import Scan
    from chemtomo.simulate.ptychography import detector_background, diffraction_frames

    n = cell.n
    probe = true_probe(cell.probe, n)
    d = diameter_px(probe)
    step = cell.step * d
    k = (np.arange(cell.side) - (cell.side - 1) / 2) * step
    raster = np.stack(np.meshgrid(k, k, indexing="ij"), -1).reshape(-1, 2)
    rng = np.random.default_rng(seed + 2)
    # ±0.15 step of random offsets breaks the raster's periodicity (the raster-grid pathology
    # of an exact grid with a refined probe); whole pixels, so the textbook ePIE is exact too,
    # except in the off-grid cells
    pos = raster + rng.uniform(-0.15, 0.15, raster.shape) * step
    if not cell.continuous:
        pos = np.rint(pos)
    extent = int(np.ceil(np.abs(pos).max())) + n // 2 + 6
    shape = (2 * extent + 1, 2 * extent + 1)
    obj = make_object(shape, seed)
    bg = detector_background((n, n), cell.background) if cell.background else None
    simulator = {"chemtomo": diffraction_frames, "object shift": object_shift_frames,
                 "alias-free": alias_free_frames}[cell.simulator]
    frames = simulator(obj, probe, pos, dose_photons=cell.dose, background=bg, seed=seed + 1)
    file_pos = pos + rng.standard_normal(pos.shape) * cell.position_error_px
    distance = PIXEL_M * n * DETECTOR_PIXEL_M / WAVELENGTH_M
    guess = guess_probe(cell.guess, probe)
    scan = Scan(frames=frames.astype(np.float32), positions_m=file_pos * PIXEL_M, energy_ev=ENERGY_EV,
                distance_m=distance, detector_pixel_m=DETECTOR_PIXEL_M, probe=guess[None])
    power = np.abs(probe) ** 2
    lit = np.zeros(shape)
    for y, x in np.rint(pos).astype(int) + extent - n // 2:
        lit[y:y + n, x:x + n] += power
    return scan, obj, lit, d


def object_shift_frames(obj: np.ndarray, probe: np.ndarray, positions_px: np.ndarray, *, dose_photons: float,
                        background: np.ndarray | None = None, seed: int = 0, margin: int = 2) -> np.ndarray:
    """Frames as pty-chi's forward model makes them (``extract_patches_fourier_shift``): the probe
    stays on the pixel grid and each object patch, cut with a ``margin`` around the rounded
    position, is Fourier-shifted by the position's remainder f, so the exit wave is
    ``P(k)·O(c + k + f)`` where chemtomo's simulator makes ``P(k − f)·O(c + k)``. The two are the
    same continuous wave sampled on grids offset by f; they differ by how the part of its
    spectrum beyond the detector aliases. Conventions (centres, scaling, noise) as
    ``chemtomo.simulate.ptychography.diffraction_frames``, which this equals on whole pixels."""
    from chemtomo.core.fft import fft2, fft2c, ifft2

    h, w = probe.shape
    pos = np.asarray(positions_px, np.float64)
    k = np.rint(pos).astype(np.int64)
    f = pos - k
    corner = k + np.array([obj.shape[0] // 2 - h // 2, obj.shape[1] // 2 - w // 2]) - margin
    hm, wm = h + 2 * margin, w + 2 * margin
    iy = corner[:, 0, None, None] + np.arange(hm)[None, :, None]
    ix = corner[:, 1, None, None] + np.arange(wm)[None, None, :]
    qy = np.fft.fftfreq(hm)[None, :, None]
    qx = np.fft.fftfreq(wm)[None, None, :]
    ramp = np.exp(2j * np.pi * (qy * f[:, 0, None, None] + qx * f[:, 1, None, None])).astype(np.complex64)
    patches = ifft2(fft2(obj[iy, ix].astype(np.complex64)) * ramp)[:, margin:margin + h, margin:margin + w]
    expected = dose_photons * np.abs(fft2c(probe.astype(np.complex64)[None] * patches)) ** 2
    if background is not None:
        expected = expected + background[None]
    return np.random.default_rng(seed).poisson(expected).astype(np.float32)


def _upsampled(a: np.ndarray, m: int) -> np.ndarray:
    """``a`` interpolated onto a grid m times finer by zero-padding its spectrum (band-limited:
    every m-th sample of the result is ``a``'s)."""
    ny, nx = a.shape
    padded = np.zeros((m * ny, m * nx), np.complex128)
    y0, x0 = (m * ny) // 2 - ny // 2, (m * nx) // 2 - nx // 2
    padded[y0:y0 + ny, x0:x0 + nx] = np.fft.fftshift(np.fft.fft2(a))
    return np.fft.ifft2(np.fft.ifftshift(padded)) * (m * m)


def alias_free_frames(obj: np.ndarray, probe: np.ndarray, positions_px: np.ndarray, *, dose_photons: float,
                      background: np.ndarray | None = None, seed: int = 0, m: int = 2) -> np.ndarray:
    """Frames without the aliasing every one-grid model has: the object and the probe (each
    band-limited to the frame's Nyquist frequency) interpolated onto a grid ``m`` times finer,
    the probe Fourier-shifted there by the position's remainder, the exit wave transformed on
    that grid (its spectrum, up to twice the detector's, has room) and cropped to the detector's
    n × n, as a detector sees the far field. Conventions as ``diffraction_frames``, which it
    equals (to 5·10⁻⁵ of the peak) on an empty object."""
    n = probe.shape[0]
    big = m * n
    fine_obj = _upsampled(obj.astype(np.complex128), m)
    spectrum = np.fft.fft2(_upsampled(probe.astype(np.complex128), m))
    q = np.fft.fftfreq(big)
    centre = np.array(obj.shape) // 2 - n // 2
    lo = big // 2 - n // 2
    rng = np.random.default_rng(seed)
    frames = np.empty((len(positions_px), n, n), np.float32)
    for j, p in enumerate(np.asarray(positions_px, np.float64)):
        k = np.rint(p).astype(np.int64)
        f = (p - k) * m  # the remainder in fine pixels
        shifted = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (q[:, None] * f[0] + q[None, :] * f[1])))
        y, x = (k + centre) * m
        far = np.fft.fftshift(np.fft.fft2(shifted * fine_obj[y:y + big, x:x + big], norm="ortho"))
        expected = dose_photons * np.abs(far[lo:lo + n, lo:lo + n]) ** 2 / (m * m)
        if background is not None:
            expected = expected + background
        frames[j] = rng.poisson(expected)
    return frames


# ----------------------------------------------------------------------------- textbook ePIE
def textbook_epie(scan, shape: tuple[int, int], iterations: int = 60, seed: int = 0,
                  fixed_s: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """ePIE as in Maiden & Rodenburg (2009): one frame at a time, random order, α = β = 1.

    O ← O + conj(P) Δψ / max|P|²,  P ← P + conj(O_j) Δψ / max|O_j|²,  Δψ = F⁻¹[√I Ψ/|Ψ|] − P·O_j.
    Masked detector pixels keep the model's value. The probe guess is scaled to the data's photon count (90th percentile of the frame sums).
    Returns the final object and the object after the first iteration ending past ``fixed_s``."""
    t0 = time.perf_counter()
    snap = None
    frames = np.fft.ifftshift(scan.frames, axes=(1, 2)).astype(np.float64)
    amp = np.sqrt(np.maximum(frames, 0))
    n = frames.shape[1]
    probe = scan.probe[0].astype(np.complex128)
    probe *= np.sqrt(np.percentile(frames.sum(axis=(1, 2)), 90) / np.sum(np.abs(probe) ** 2))
    obj = np.ones(shape, np.complex128)
    pixel = scan.distance_m * (1.23984e-6 / scan.energy_ev) / (n * scan.detector_pixel_m)
    corners = np.rint(scan.positions_m / pixel).astype(int) + np.array(shape) // 2 - n // 2
    valid = np.ones((n, n), bool) if scan.mask is None else np.fft.ifftshift(np.asarray(scan.mask, bool))
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        for j in rng.permutation(len(frames)):
            y, x = corners[j]
            o = obj[y:y + n, x:x + n]
            psi = probe * o
            f = np.fft.fft2(psi, norm="ortho")
            f = np.where(valid, amp[j] * np.exp(1j * np.angle(f)), f)  # masked pixels left free
            dpsi = np.fft.ifft2(f, norm="ortho") - psi
            o_old = o.copy()
            obj[y:y + n, x:x + n] = o + np.conj(probe) * dpsi / np.max(np.abs(probe) ** 2)
            probe = probe + np.conj(o_old) * dpsi / np.max(np.abs(o_old) ** 2)
        if snap is None and time.perf_counter() - t0 >= fixed_s:
            snap = obj.astype(np.complex64)
    final = obj.astype(np.complex64)
    return final, (final if snap is None else snap)


# ------------------------------------------------------------------------------------- error
def od_error(rec: np.ndarray, truth: np.ndarray, lit: np.ndarray) -> float:
    """RMS OD difference (best constant offset removed) over the truth's OD spread, lit region."""
    from skimage.registration import phase_cross_correlation

    m = lit >= 0.25 * lit.max()
    if not np.isfinite(rec[m]).all():
        return float("inf")
    a = np.where(m, truth - truth[m].mean(), 0)
    b = np.where(m, rec - rec[m].mean(), 0)
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=20, normalization=None)
    if np.any(np.abs(shift) > 1e-3):
        rec = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(rec), shift))
    od_t = -2 * np.log(np.maximum(np.abs(truth[m]), 1e-6))
    od_r = -2 * np.log(np.maximum(np.abs(rec[m]), 1e-6))
    diff = od_r - od_t
    diff -= diff.mean()
    return float(np.sqrt(np.mean(diff ** 2)) / np.std(od_t))


def _square(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` zero-padded to a square whose centre pixel (size // 2) is a's centre pixel."""
    size = max(a.shape) + (1 - max(a.shape) % 2)
    out = np.zeros((size, size), a.dtype)
    y0, x0 = size // 2 - a.shape[0] // 2, size // 2 - a.shape[1] // 2
    out[y0:y0 + a.shape[0], x0:x0 + a.shape[1]] = a
    return out, (y0, x0)


def anchor_scan(scan, truth: np.ndarray, lit: np.ndarray, d: float, recorded: bool = True):
    """The cell as ``_anchors_ptycho.BenchScan`` (square object, the file's probe guess scaled to
    the frames' photon count: the anchors start where chemtomo starts). Positions as the file
    records them (``recorded``: pty-chi shifts its object patches by the remainder, PtyLab rounds
    them itself), or rounded to whole pixels (the tables before session 33)."""
    import _anchors_ptycho as A

    frames = np.asarray(scan.frames, np.float32)
    if scan.mask is not None:
        frames = frames * scan.mask
    pixel = scan.distance_m * (1.23984e-6 / scan.energy_ev) / (frames.shape[-1] * scan.detector_pixel_m)
    guess = scan.probe[0].astype(np.complex64)
    guess = guess * np.float32(np.sqrt(np.percentile(frames.sum(axis=(1, 2)), 90) / np.sum(np.abs(guess) ** 2)))
    sq, _ = _square(truth)
    m, _ = _square((lit >= 0.25 * lit.max()).astype(bool))
    positions = scan.positions_m / pixel
    return A.BenchScan(frames=frames, positions_px=positions if recorded else np.rint(positions).astype(int), probe=guess,
                       truth=sq, mask=m, pixel_m=pixel, energy_ev=float(scan.energy_ev), distance_m=scan.distance_m,
                       detector_pixel_m=scan.detector_pixel_m, photons_per_frame=float(frames.sum(axis=(1, 2)).mean()),
                       step_px=1, beam_px=d)


ANCHORS = {"PtyLab mPIE": ("PtyLab", "mPIE", 50), "pty-chi LSQML": ("ptychi", "LSQML", 50)}


def run_anchor(algo: str, scan, truth, lit, d, fixed_s: float, recorded: bool = True):
    """PtyLab mPIE / pty-chi LSQML, 50 iterations one at a time; the object after the first
    iteration that ends past ``fixed_s`` seconds is the fixed-time snapshot."""
    import _anchors_ptycho as A

    package, engine, iterations = ANCHORS[algo]
    bench = anchor_scan(scan, truth, lit, d, recorded)
    runner = A.PtylabRunner(bench, engine) if package == "PtyLab" else A.PtychiRunner(bench, engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.setup()
        at_time, elapsed = None, 0.0
        for _ in range(iterations):
            t0 = time.perf_counter()
            runner.advance(1)
            elapsed += time.perf_counter() - t0
            if at_time is None and elapsed >= fixed_s:
                at_time = runner.object().copy()
        final = runner.object().copy()
        runner.close()
    _, (y0, x0) = _square(truth)
    crop = (slice(y0, y0 + truth.shape[0]), slice(x0, x0 + truth.shape[1]))
    return final[crop], (final if at_time is None else at_time)[crop], {"iterations": iterations}


def anchor_available(algo: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(ANCHORS[algo][0]) is not None


def run_code(algo: str, scan, shape, fixed_s: float = math.inf):
    """(final object, object at ``fixed_s`` seconds, info) of one chemtomo code or the textbook ePIE."""
    if algo == "textbook":
        return textbook_epie(scan, shape, fixed_s=fixed_s) + ({},)
    from chemtomo.core.fft import one_core
    from chemtomo.ptycho import DEFAULT_ALGORITHM, reconstruct

    chain = DEFAULT_ALGORITHM if algo == "default" else algo
    snap: list[np.ndarray] = []
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if FRC[0]:  # three runs in threads: no snapshot of the full scan's object here
            return
        frame = sys._getframe(1)  # the calling Run (through the default's wrapper of a second grid's run)
        while frame is not None and not hasattr(frame.f_locals.get("self"), "model"):
            frame = frame.f_back
        if frame is None:
            return
        run = frame.f_locals["self"]
        if run.model.n_frames != scan.n_frames:  # a split half (the default's FRC weighting at low dose)
            return
        if not snap and time.perf_counter() - t0 >= fixed_s:
            snap.append(np.array(run.state.obj))

    with warnings.catch_warnings(), one_core():
        warnings.simplefilter("ignore")
        p = reconstruct(scan, chain, object_shape=shape, frc=FRC[0], seed=0, progress=progress, options=OPTIONS[0])
    final = np.asarray(p.transmission)
    if snap and snap[0].shape != final.shape:  # the snapshot's run was on a finer grid (PtychoOptions.oversample;
        # the default's second run may be refused after the snapshot: the factor is the snapshot's own)
        from chemtomo.ptycho.finegrid import to_detector_grid

        snap[0] = to_detector_grid(snap[0], int(round(snap[0].shape[0] / final.shape[0])))
    return final, (snap[0] if snap else final), p.info


#: Solver options of every chemtomo run (``--convergence`` changes the stopping rule's fields).
OPTIONS = [None]
#: ``--frc``: every chemtomo run also reconstructs the split halves (as ``chemtomo ptycho`` does),
#: which turns on the split-half resolution rule; the error is the full scan's.
FRC = [False]


#: The dose rule the summary evaluates (not chemtomo's default): LSQML where the mean count per
#: detector pixel is below RULE_COUNTS, the default elsewhere (chosen on seed 0: LSQML won every
#: cell at ≤ 24 counts per pixel but one, lost every cell at ≥ 244).
RULE_LOW, RULE_COUNTS = "LSQML:300", 50.0


def _parses(kind, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def fixed_seconds(scan) -> float:
    """The fixed-time budget of a cell: 0.5 s per 49 frames of 64² (scaled by frames × pixels)."""
    return 2.0 * scan.n_frames / 49 * (scan.frames.shape[-1] / 64) ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", type=int, default=None, help="cell indices (default: all)")
    ap.add_argument("--algos", nargs="+", default=None, help=f"codes (default: {' '.join(DEFAULT_ALGOS)})")
    ap.add_argument("--seed", type=int, default=1,
                    help="simulation seed (default 1: held out; the default algorithm was chosen on seed 0)")
    ap.add_argument("--convergence", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="ConvergenceOptions fields for every chemtomo run, e.g. noise_floor=0 (the session-3 rule)")
    ap.add_argument("--set", nargs="*", default=[], metavar="[SECTION.]FIELD=VALUE",
                    help="other PtychoOptions fields for every chemtomo run, e.g. lsqml.momentum=0.5 or subpixel=2")
    ap.add_argument("--frc", action="store_true",
                    help="reconstruct the split halves too (chemtomo ptycho's default; the resolution rule)")
    ap.add_argument("--anchor-positions", choices=("rounded", "recorded"), default="recorded",
                    help="positions handed to PtyLab and pty-chi: as the file records them (default since "
                         "session 33; pty-chi shifts its object patches by the remainder, PtyLab rounds "
                         "them itself) or rounded to whole pixels (the tables before session 33)")
    args = ap.parse_args()
    FRC[0] = args.frc
    from chemtomo.ptycho import DEFAULT_ALGORITHM, PtychoOptions

    for item in [f"convergence.{c}" for c in args.convergence] + args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1) if "." in key else (None, key)  # FIELD: a top-level one
        base = OPTIONS[0] or PtychoOptions()
        sub = base if section is None else getattr(base, section)
        kind = type(getattr(sub, name))
        if kind is type(None):  # an optional field left at None: a number if the value reads as one
            kind = next((k for k in (int, float) if _parses(k, value)), str)
        parsed = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        changed = dataclasses.replace(sub, **{name: parsed})
        OPTIONS[0] = changed if section is None else dataclasses.replace(base, **{section: changed})

    algos = [a for a in (args.algos or DEFAULT_ALGOS) if a not in ANCHORS or anchor_available(a)]
    cells = [CELLS[i] for i in (args.cells if args.cells is not None else range(len(CELLS)))]
    print(f"{platform.machine()}, {os.cpu_count()} cores, load average {tuple(round(v, 1) for v in os.getloadavg())}; "
          f"one core per reconstruction; seed {args.seed}; default = {DEFAULT_ALGORITHM}; "
          f"options {OPTIONS[0] if OPTIONS[0] else 'defaults'}")
    print()
    header = "| cell: probe, guess, photons/frame, frame, step/diameter | " + " | ".join(algos) + " | default/best |"
    separator = "|---|" + "---:|" * len(algos) + "---:|"
    print(header)
    print(separator)
    ratios, ratios_t, timed_rows, rule = [], [], [], []
    t_start = time.perf_counter()
    for ci, cell in zip(args.cells if args.cells is not None else range(len(CELLS)), cells):
        scan, truth, lit, d = simulate(cell, seed=args.seed)
        fixed_s = fixed_seconds(scan)
        errs, errs_t, cells_txt = {}, {}, []
        for algo in algos:
            t0 = time.perf_counter()
            if algo in ANCHORS:
                rec, rec_t, info = run_anchor(algo, scan, truth, lit, d, fixed_s,
                                              args.anchor_positions == "recorded")
            else:
                rec, rec_t, info = run_code(algo, scan, truth.shape, fixed_s)
            dt = time.perf_counter() - t0
            errs[algo] = od_error(rec, truth, lit)
            errs_t[algo] = od_error(rec_t, truth, lit)
            it = ""
            if "iterations" in info and algo not in ANCHORS and algo != "textbook":  # chemtomo: per stage
                stages = info.get("stage_iterations") or []
                it = f", {'+'.join(str(n) for _, n in stages) if len(stages) > 1 else info['iterations']} it"
            if algo == "default" and info.get("convergence_rule"):
                it += f" ({info['convergence_rule']})"
            if algo == "default" and info.get("position_trials"):  # positions refined on trial: RMS, kept
                it += "; trial " + ", ".join(f"{r:.3f} px{' kept' if k else ''}" for r, k in info["position_trials"])
            if algo == "default" and info.get("default_rule"):  # the chain the default picked
                it += f", {info['algorithm']}"
            cells_txt.append(f"{errs[algo]:.3f} ({dt:.1f} s{it})")
        best = min(errs.values())
        for i, algo in enumerate(algos):
            if errs[algo] == best:
                cells_txt[i] = f"**{cells_txt[i]}**"
        ratio = errs["default"] / best if "default" in errs else float("nan")
        ratios.append(ratio)
        if "default" in errs and RULE_LOW in errs:
            counts = float(np.mean(scan.frames))  # mean counts per detector pixel
            rule.append(errs[RULE_LOW if counts < RULE_COUNTS else "default"] / best)
        best_t = min(errs_t.values())
        ratios_t.append(errs_t["default"] / best_t if "default" in errs_t else float("nan"))
        timed_rows.append(f"| {ci}: {cell.name} ({fixed_s:.2g} s) | "
                          + " | ".join(("**%.3f**" if errs_t[a] == best_t else "%.3f") % errs_t[a] for a in algos)
                          + f" | {ratios_t[-1]:.2f} |")
        print(f"| {ci}: {cell.name} ({scan.n_frames} frames) | " + " | ".join(cells_txt) + f" | {ratio:.2f} |",
              flush=True)
    print()
    print(f"At convergence, default/best: worst {max(ratios):.2f}, cells within 5 %: "
          f"{sum(r <= 1.05 for r in ratios)} of {len(ratios)}; missed: "
          f"{[c for c, r in zip(args.cells if args.cells is not None else range(len(CELLS)), ratios) if r > 1.05]}")
    if rule:
        print(f"Dose rule ({RULE_LOW} below {RULE_COUNTS:g} counts per detector pixel, else the default): "
              f"worst {max(rule):.2f}, cells within 5 %: {sum(r <= 1.05 for r in rule)} of {len(rule)}")
    print()
    print("After a fixed time (in brackets: 2 s per 49 frames of 64², the object at the end of the first "
          "iteration past it):")
    print()
    print(header.replace("default/best", "default/best at that time"))
    print(separator)
    print("\n".join(timed_rows))
    print()
    print(f"At the fixed time, default/best: worst {max(ratios_t):.2f}, cells within 5 %: "
          f"{sum(r <= 1.05 for r in ratios_t)} of {len(ratios_t)}; total {time.perf_counter() - t_start:.0f} s")
    print("error: RMS OD difference over the truth's OD spread, lit region (see the docstring); "
          "time per reconstruction in brackets")


if __name__ == "__main__":
    main()
