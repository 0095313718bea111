"""Which ptychography code is most accurate depends on the data: a matrix of regimes, every
chemtomo algorithm and a textbook ePIE in each, OD error against the truth.

Each cell is a scan simulated here with ``chemtomo.simulate.ptychography`` (Poisson counts of
``|F[P·O]|²`` plus an optional detector background) of a textured object that both absorbs and
shifts the phase, with an area of air. Cells vary

* the probe: a defocused zone plate with a central stop (``chemtomo.ptycho.zone_plate_probe``),
  a Gaussian with a curved (quadratic) phase front, a pinhole propagated out of focus;
* the probe guess handed to the reconstruction (the file's probe): the truth ("exact"), the truth
  propagated until its overlap with the truth is 0.9 ("defocus", as a previous reconstruction
  at another focus gives), the truth stretched 2× ("broad"), a flat disc of the nominal diameter
  ("disc");
* the dose (photons per frame, 1e4 .. 1e9), the frame size (64², a few 128², one 256²), the scan
  step as a fraction of the probe diameter (0.15 .. 0.6), a static background (2 photons/pixel)
  and position errors (the file's positions off by 1 px rms). The raster has random offsets of up
  to ±0.15 step (whole pixels), as real stages give.

The probe diameter is ``2·sqrt(2 <r²>)`` of its intensity (the diameter of a flat disc with the
same second moment). Every reconstruction starts from unit transmission and the guess, runs on
one core, ``frc=False``. Codes:

* every chemtomo algorithm through ``chemtomo.ptycho.reconstruct`` with its default options
  (``--algos`` picks them; ``default`` is ``chemtomo.ptycho.DEFAULT_ALGORITHM``, which stops by
  itself, iterations a maximum);
* ``textbook``: plain ePIE (Maiden & Rodenburg, Ultramicroscopy 109, 1256 (2009)) written below,
  60 iterations, one frame at a time in a random order, object and probe updated from the start;
* PtyLab mPIE and pty-chi LSQML are not installed here (no torch), so they are not in the table.

Error: OD = −2 ln|T| on the region lit by at least 25 % of the peak summed probe intensity, after
a 1/20-pixel registration of the complex images; the best constant OD offset removed (the air
reference of each code differs); RMS of the OD difference over the truth's OD spread (RMS about
its mean). 0 is perfect, 1 is no information. A cell's best is the lowest over all codes; the
last columns give the default's ratio to it (goal ≤ 1.05).

    PYTHONPATH=src .venv/bin/python benchmarks/ptycho_regimes.py [--cells 0 3 5] [--algos default RAAR:200]

Not a test; not run in CI. About 5 minutes on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

os.environ.setdefault("TQDM_DISABLE", "1")

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

    @property
    def name(self) -> str:
        extra = []
        if self.background:
            extra.append(f"bg {self.background:g}")
        if self.position_error_px:
            extra.append(f"pos err {self.position_error_px:g} px")
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
]

DEFAULT_ALGOS = ["default", "mPIE:5,ePIE:45", "ePIE:100", "rPIE:100", "mPIE:50", "RAAR:200", "DM:200", "ML:200", "textbook"]


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


def true_probe(kind: str, n: int) -> np.ndarray:
    if kind == "zone plate":
        from chemtomo.ptycho import zone_plate_probe
        p = zone_plate_probe((n, n), PIXEL_M, ENERGY_EV, outer_zone_m=60e-9, central_stop=0.4)
    elif kind == "gaussian":
        w0 = 0.13 * n
        r2 = _radius2(n)
        p = np.exp(-r2 / w0 ** 2 + 1j * 3.0 * r2 / w0 ** 2)
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


def simulate(cell: Cell, seed: int = 0):
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
    # of an exact grid with a refined probe); whole pixels, so the textbook ePIE is exact too
    pos = np.rint(raster + rng.uniform(-0.15, 0.15, raster.shape) * step)
    extent = int(np.ceil(np.abs(pos).max())) + n // 2 + 6
    shape = (2 * extent + 1, 2 * extent + 1)
    obj = make_object(shape, seed)
    bg = detector_background((n, n), cell.background) if cell.background else None
    frames = diffraction_frames(obj, probe, pos, dose_photons=cell.dose, background=bg, seed=seed + 1)
    file_pos = pos + rng.standard_normal(pos.shape) * cell.position_error_px
    distance = PIXEL_M * n * DETECTOR_PIXEL_M / WAVELENGTH_M
    guess = guess_probe(cell.guess, probe)
    scan = Scan(frames=frames.astype(np.float32), positions_m=file_pos * PIXEL_M, energy_ev=ENERGY_EV,
                distance_m=distance, detector_pixel_m=DETECTOR_PIXEL_M, probe=guess[None])
    power = np.abs(probe) ** 2
    lit = np.zeros(shape)
    for y, x in pos.astype(int) + extent - n // 2:
        lit[y:y + n, x:x + n] += power
    return scan, obj, lit, d


# ----------------------------------------------------------------------------- textbook ePIE
def textbook_epie(scan, shape: tuple[int, int], iterations: int = 60, seed: int = 0) -> np.ndarray:
    """ePIE as in Maiden & Rodenburg (2009): one frame at a time, random order, α = β = 1.

    O ← O + conj(P) Δψ / max|P|²,  P ← P + conj(O_j) Δψ / max|O_j|²,  Δψ = F⁻¹[√I Ψ/|Ψ|] − P·O_j.
    The probe guess is scaled to the data's photon count (90th percentile of the frame sums)."""
    frames = np.fft.ifftshift(scan.frames, axes=(1, 2)).astype(np.float64)
    amp = np.sqrt(np.maximum(frames, 0))
    n = frames.shape[1]
    probe = scan.probe[0].astype(np.complex128)
    probe *= np.sqrt(np.percentile(frames.sum(axis=(1, 2)), 90) / np.sum(np.abs(probe) ** 2))
    obj = np.ones(shape, np.complex128)
    corners = np.rint(scan.positions_m / PIXEL_M).astype(int) + np.array(shape) // 2 - n // 2
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        for j in rng.permutation(len(frames)):
            y, x = corners[j]
            o = obj[y:y + n, x:x + n]
            psi = probe * o
            f = np.fft.fft2(psi, norm="ortho")
            f = amp[j] * np.exp(1j * np.angle(f))
            dpsi = np.fft.ifft2(f, norm="ortho") - psi
            o_old = o.copy()
            obj[y:y + n, x:x + n] = o + np.conj(probe) * dpsi / np.max(np.abs(probe) ** 2)
            probe = probe + np.conj(o_old) * dpsi / np.max(np.abs(o_old) ** 2)
    return obj.astype(np.complex64)


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


def run_code(algo: str, scan, shape):
    if algo == "textbook":
        return textbook_epie(scan, shape), {}
    from chemtomo.core.fft import one_core
    from chemtomo.ptycho import DEFAULT_ALGORITHM, reconstruct

    chain = DEFAULT_ALGORITHM if algo == "default" else algo
    with warnings.catch_warnings(), one_core():
        warnings.simplefilter("ignore")
        p = reconstruct(scan, chain, object_shape=shape, frc=False, seed=0)
    return np.asarray(p.transmission), p.info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", type=int, default=None, help="cell indices (default: all)")
    ap.add_argument("--algos", nargs="+", default=None, help=f"codes (default: {' '.join(DEFAULT_ALGOS)})")
    args = ap.parse_args()
    from chemtomo.ptycho import DEFAULT_ALGORITHM

    algos = args.algos or DEFAULT_ALGOS
    cells = [CELLS[i] for i in (args.cells if args.cells is not None else range(len(CELLS)))]
    print(f"{platform.machine()}, {os.cpu_count()} cores, load average {tuple(round(v, 1) for v in os.getloadavg())}; "
          f"one core per reconstruction; default = {DEFAULT_ALGORITHM}")
    print()
    print("| probe, guess, photons/frame, frame, step/diameter | " + " | ".join(algos) + " | default/best |")
    print("|---|" + "---:|" * len(algos) + "---:|")
    ratios = []
    for cell in cells:
        scan, truth, lit, _ = simulate(cell)
        errs, cells_txt = {}, []
        for algo in algos:
            t0 = time.perf_counter()
            rec, info = run_code(algo, scan, truth.shape)
            dt = time.perf_counter() - t0
            e = od_error(rec, truth, lit)
            errs[algo] = e
            it = f", {info['iterations']} it" if algo == "default" and "iterations" in info else ""
            cells_txt.append(f"{e:.3f} ({dt:.1f} s{it})")
        best = min(errs.values())
        for i, algo in enumerate(algos):
            if errs[algo] == best:
                cells_txt[i] = f"**{cells_txt[i]}**"
        ratio = errs["default"] / best if "default" in errs else float("nan")
        ratios.append(ratio)
        print(f"| {cell.name} ({scan.n_frames} frames) | " + " | ".join(cells_txt) + f" | {ratio:.2f} |", flush=True)
    print()
    print(f"default/best: worst {max(ratios):.2f}, cells within 5 %: {sum(r <= 1.05 for r in ratios)} of {len(ratios)}")
    print("error: RMS OD difference over the truth's OD spread, lit region (see the docstring); "
          "time per reconstruction in brackets")


if __name__ == "__main__":
    main()
