"""Helpers for ``benchmarks/ptycho.py``: the benchmark scan, the error metric, timing and memory
probes, and one runner per ptychography code (chemtomo, pty-chi, PtyLab).

Every runner sees the same data in the same convention and starts from the same object (ones)
and the same probe (the true zone-plate probe, scaled to each code's FFT normalisation). A
runner advances its reconstruction by a given number of iterations (``advance``), and the driver
times those calls and snapshots the object between them, so the error at 1, 2, ..., 50
iterations comes from one continuous reconstruction per code.

Conventions shared with the truth:

- object array ``(n_obj, n_obj)``; a frame ``j`` at integer pixel position ``p_j = (y, x)``
  illuminates ``object[c + p_j - n//2 : c + p_j - n//2 + n]`` with ``c = n_obj // 2`` (the
  probe's centre pixel ``n//2`` sits on object pixel ``c + p_j``);
- far field ``fft2c`` (centred, orthonormal): ``sum |P|² = photons per frame`` through air.

Positions are whole pixels (the jitter too), so that PtyLab, which rounds positions to whole
pixels, sees the same forward model as the codes with sub-pixel shifts; no code is handicapped by
interpolation it does not do.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from chemtomo.core import energy_to_wavelength, fft2c

# Resonant optical constants of LiFePO4 at the Fe L3 white line (708.2 eV). The tabulated
# (off-resonance, Henke) values from xraydb are beta = 4.0e-4, delta = 7.4e-4 at 3.6 g/cm³; at
# the white line the absorption is several times higher, so the benchmark uses values of the
# order measured there: a 20 nm plate absorbs ~13 % in amplitude and shifts the phase ~0.1 rad.
LFP_BETA = 2.0e-3
LFP_DELTA = 1.5e-3
# Amorphous carbon (1.5 g/cm³) at 708.2 eV, xraydb: the support film under the plates.
CARBON_BETA = 1.11e-4
CARBON_DELTA = 6.55e-4


# --------------------------------------------------------------------------------------------
# The benchmark scan
# --------------------------------------------------------------------------------------------

@dataclass
class BenchScan:
    """A simulated far-field ptychography scan with its ground truth.

    frames        : (n_frames, n, n) float32 photon counts, zero frequency at the centre
    positions_px  : (n_frames, 2) int, probe-centre (y, x) in object pixels relative to n_obj//2
    probe         : (n, n) complex64, true probe, sum |P|² = photons per frame
    truth         : (n_obj, n_obj) complex64 true transmission
    mask          : (n_obj, n_obj) bool, the well-illuminated region where errors are computed
    """

    frames: np.ndarray
    positions_px: np.ndarray
    probe: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    pixel_m: float
    energy_ev: float
    distance_m: float
    detector_pixel_m: float
    photons_per_frame: float
    step_px: int
    beam_px: float
    description: str = ""

    @property
    def n(self) -> int:
        return int(self.frames.shape[-1])

    @property
    def n_obj(self) -> int:
        return int(self.truth.shape[-1])

    @property
    def positions_m(self) -> np.ndarray:
        return self.positions_px.astype(np.float64) * self.pixel_m


def _plates_thickness_m(n_obj: int, pixel_m: float, region_px: float, rng: np.random.Generator) -> np.ndarray:
    """Summed thickness (m) of LiFePO4 plates, ~100 × 80 nm facets, 10–30 nm thick, scattered
    over the central ``region_px`` square, random in-plane rotation, anti-aliased edges."""
    yy, xx = np.mgrid[0:n_obj, 0:n_obj].astype(np.float64)
    c = n_obj // 2
    area = (region_px * pixel_m) ** 2
    n_plates = round(0.35 * area / (100e-9 * 80e-9))           # ~35 % of the area covered
    thickness = np.zeros((n_obj, n_obj))
    for _ in range(n_plates):                                    # a few dozen plates: set-up only
        cy, cx = c + (rng.random(2) - 0.5) * region_px
        a = rng.uniform(70e-9, 130e-9) / pixel_m / 2             # half side lengths, pixels
        b = rng.uniform(50e-9, 100e-9) / pixel_m / 2
        t = rng.uniform(10e-9, 30e-9)
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        inside = np.clip(0.5 + np.minimum(a - np.abs(u), b - np.abs(v)), 0.0, 1.0)
        thickness += t * inside
    return thickness


def _spheres_thickness_m(n_obj: int, pixel_m: float, region_px: float, rng: np.random.Generator) -> np.ndarray:
    """Summed chord length (m) through spheres of 30–150 nm diameter (a powder of round
    particles, ≈ 30 % of the area covered) over the central ``region_px`` square."""
    yy, xx = np.mgrid[0:n_obj, 0:n_obj].astype(np.float64)
    c = n_obj // 2
    area = (region_px * pixel_m) ** 2
    thickness = np.zeros((n_obj, n_obj))
    covered = 0.0
    while covered < 0.3 * area:                                  # ~100 spheres: set-up only
        cy, cx = c + (rng.random(2) - 0.5) * region_px
        r = rng.uniform(15e-9, 75e-9) / pixel_m                  # radius, pixels
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        thickness += 2 * np.sqrt(np.clip(r * r - d2, 0, None)) * pixel_m
        covered += math.pi * (r * pixel_m) ** 2
    return thickness


def make_scan(*, n: int = 128, grid: int = 20, photons: float = 1e6, energy_ev: float = 708.2,
              pixel_m: float = 7e-9, detector_pixel_m: float = 30e-6, jitter_px: int = 2,
              seed: int = 0, phantom: str = "plates", outer_zone_m: float = 100e-9,
              beam_fraction: float = 0.3) -> BenchScan:
    """Simulate the benchmark scan: zone-plate probe (``outer_zone_m``, defocused to a beam of
    ``beam_fraction`` of the field), LiFePO4 ``phantom`` ("plates" or "spheres") on a carbon film,
    ``grid × grid`` raster with integer jitter (step 0.27 beam), Poisson noise at ``photons``/frame."""
    from chemtomo.ptycho import zone_plate_probe

    rng = np.random.default_rng(seed)
    wavelength = energy_to_wavelength(energy_ev)
    distance_m = pixel_m * n * detector_pixel_m / wavelength     # object pixel = λ z / (n p)

    beam_px = beam_fraction * n
    # geometric beam diameter λ z / Δr_N (see zone_plate_probe; written as its default's formula)
    defocus_m = beam_fraction * (n * pixel_m) * outer_zone_m / wavelength
    probe = zone_plate_probe((n, n), pixel_m, energy_ev, outer_zone_m=outer_zone_m, defocus_m=defocus_m)
    probe = (probe * np.float32(math.sqrt(photons))).astype(np.complex64)
    step_px = max(1, round(0.27 * beam_px))                      # ~70 nm at n = 128, 7 nm pixels

    ij = (np.arange(grid) - (grid - 1) / 2.0) * step_px
    py, px = np.meshgrid(np.round(ij), np.round(ij), indexing="ij")
    positions = np.stack([py.ravel(), px.ravel()], axis=1).astype(np.int64)
    positions += rng.integers(-jitter_px, jitter_px + 1, size=positions.shape)

    span = int(np.max(positions.max(0) - positions.min(0)))
    n_obj = int(span + n + 16)
    n_obj += n_obj % 2
    c = n_obj // 2

    # The truth: plates over the scanned area on a 10 ± 3 nm carbon film.
    k = 2 * np.pi / wavelength
    if phantom not in ("plates", "spheres"):
        raise ValueError(f"phantom must be 'plates' or 'spheres', got {phantom!r}")
    shapes = _plates_thickness_m if phantom == "plates" else _spheres_thickness_m
    plates = shapes(n_obj, pixel_m, span + 0.6 * beam_px, rng)
    rough = ndimage.gaussian_filter(rng.standard_normal((n_obj, n_obj)), 6.0)
    film = 10e-9 + 3e-9 * rough / rough.std()
    phase = -k * (LFP_DELTA * plates + CARBON_DELTA * film)
    log_amp = -k * (LFP_BETA * plates + CARBON_BETA * film)
    truth = np.exp(log_amp + 1j * phase).astype(np.complex64)

    # Far-field intensities of all exit waves, batched.
    corner = positions + c - n // 2
    iy = corner[:, 0, None, None] + np.arange(n)[None, :, None]
    ix = corner[:, 1, None, None] + np.arange(n)[None, None, :]
    exit_waves = truth[iy, ix] * probe[None]
    intensity = np.abs(fft2c(exit_waves)) ** 2
    frames = rng.poisson(intensity).astype(np.float32)

    illum = np.zeros((n_obj, n_obj), np.float64)
    np.add.at(illum, (iy, ix), np.broadcast_to(np.abs(probe) ** 2, (len(positions), n, n)))
    mask = illum >= 0.25 * illum.max()

    desc = (f"{len(positions)} frames of {n}×{n}, {grid}×{grid} raster, step {step_px} px "
            f"({step_px * pixel_m * 1e9:.0f} nm) ±{jitter_px} px jitter, pixel {pixel_m * 1e9:.1f} nm, "
            f"{energy_ev} eV, zone plate {outer_zone_m * 1e9:.0f} nm outer zone (beam ≈ "
            f"{beam_px * pixel_m * 1e9:.0f} nm, defocus {defocus_m * 1e6:.1f} µm), LiFePO4 {phantom} on carbon, "
            f"{photons:.0e} photons/frame Poisson, seed {seed}, object {n_obj}² px")
    return BenchScan(frames=frames, positions_px=positions, probe=probe, truth=truth, mask=mask,
                     pixel_m=pixel_m, energy_ev=energy_ev, distance_m=distance_m,
                     detector_pixel_m=detector_pixel_m, photons_per_frame=photons, step_px=step_px,
                     beam_px=beam_px, description=desc)


# --------------------------------------------------------------------------------------------
# The error metric
# --------------------------------------------------------------------------------------------

def embed(obj: np.ndarray, n_obj: int) -> np.ndarray:
    """Crop or pad (with ones) a reconstruction about its centre pixel ``shape//2`` to n_obj²."""
    out = np.ones((n_obj, n_obj), np.complex64)
    h, w = obj.shape
    oy, ox = n_obj // 2 - h // 2, n_obj // 2 - w // 2
    ys, xs = max(0, oy), max(0, ox)
    ye, xe = min(n_obj, oy + h), min(n_obj, ox + w)
    out[ys:ye, xs:xe] = obj[ys - oy:ye - oy, xs - ox:xe - ox]
    return out


def registration_shift(rec: np.ndarray, scan: BenchScan) -> np.ndarray:
    """Sub-pixel (dy, dx) that moves ``rec`` onto the truth (phase correlation, 1/20 px)."""
    from skimage.registration import phase_cross_correlation

    m = scan.mask
    a = np.where(m, scan.truth - scan.truth[m].mean(), 0)
    b = np.where(m, rec - rec[m].mean(), 0)
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=20, normalization=None)
    return np.asarray(shift, float)


def relative_error(rec: np.ndarray, scan: BenchScan, shift: np.ndarray | None = None) -> float:
    """min over complex c of ||c·rec − truth|| / ||truth|| in the well-illuminated region,
    after moving ``rec`` by ``shift`` (pixels, Fourier shift)."""
    if shift is not None and np.any(np.abs(shift) > 1e-3):
        rec = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(rec), shift))
    m = scan.mask
    r, t = rec[m].astype(np.complex128), scan.truth[m].astype(np.complex128)
    c = np.vdot(r, t) / max(np.vdot(r, r).real, 1e-300)
    return float(np.linalg.norm(c * r - t) / np.linalg.norm(t))


# --------------------------------------------------------------------------------------------
# Timing and memory probes
# --------------------------------------------------------------------------------------------

def fft_floor_s(scan: BenchScan, repeats: int = 10) -> float:
    """Seconds for one forward plus one inverse FFT of all frames (complex64, scipy.fft, all
    cores): the least any batched iteration must spend. Mean of ``repeats`` back-to-back pairs
    after three warm-up pairs (a sustained rate, as an iteration loop sees it on a shared machine)."""
    a = np.empty(scan.frames.shape, np.complex64)
    a[...] = np.sqrt(scan.frames)
    workers = os.cpu_count() or 1
    for _ in range(3):        # plans, thread pool, first-touch pages: the first pair is ~3x slower
        b = sfft.fft2(a, axes=(-2, -1), workers=workers)
        sfft.ifft2(b, axes=(-2, -1), workers=workers, overwrite_x=True)
    t0 = time.perf_counter()
    for _ in range(repeats):
        b = sfft.fft2(a, axes=(-2, -1), workers=workers)
        sfft.ifft2(b, axes=(-2, -1), workers=workers, overwrite_x=True)
    return (time.perf_counter() - t0) / repeats


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so the next RSS baseline is low."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class PeakRSS:
    """Peak resident set size above the level at ``start()``, sampled every ``interval_s`` by a
    background thread reading /proc/self/statm (it sees NumPy, torch and every other allocator)."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        release_memory()
        self.base = self.peak = _rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> float:
        """Stop sampling; return the peak increase in MiB."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        return (self.peak - self.base) / 2**20


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What one code did: error and cumulative wall time at each checkpoint iteration."""

    name: str
    iterations: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)      # cumulative, advance() calls only
    errors: list[float] = field(default_factory=list)
    setup_s: float = float("nan")
    floor_s: float = float("nan")                             # FFT floor measured just before
    peak_mib: float = float("nan")
    failure: str = ""
    note: str = ""

    def error_at(self, it: int) -> float:
        return self.errors[self.iterations.index(it)] if it in self.iterations else float("nan")

    def seconds_per_iteration(self) -> float:
        if not self.iterations:
            return float("nan")
        return self.seconds[-1] / self.iterations[-1]

    def time_to_error(self, target: float) -> float:
        """Wall time at which the error first falls to ``target``: interpolated between
        checkpoints in (time, log error); NaN if never within the run."""
        t_prev, e_prev = 0.0, math.inf
        for t, e in zip(self.seconds, self.errors):
            if e <= target:
                if not math.isfinite(e_prev):
                    return t
                f = (math.log(e_prev) - math.log(target)) / (math.log(e_prev) - math.log(e))
                return t_prev + f * (t - t_prev)
            t_prev, e_prev = t, e
        return float("nan")


class Runner:
    """One code on the benchmark scan. ``setup`` builds its state (untimed in s/iteration),
    ``advance(k)`` runs k more iterations, ``object()`` returns the current object on the truth's
    grid convention (centre pixel ``n_obj//2``)."""

    name = "?"

    def __init__(self, scan: BenchScan):
        self.scan = scan

    def setup(self) -> None:
        raise RuntimeError(f"{type(self).__name__} does not define setup()")

    def advance(self, k: int) -> None:
        raise RuntimeError(f"{type(self).__name__} does not define advance()")

    def object(self) -> np.ndarray:
        raise RuntimeError(f"{type(self).__name__} does not define object()")

    def close(self) -> None:
        """Drop large state so that the next runner's memory baseline is clean."""

    def run(self, checkpoints: list[int]):
        """Yield ``(iteration, seconds in advance() so far, object copy)`` at each checkpoint."""
        done, elapsed = 0, 0.0
        for it in checkpoints:
            t0 = time.perf_counter()
            self.advance(it - done)
            elapsed += time.perf_counter() - t0
            done = it
            yield it, elapsed, self.object().copy()


_TORCHVISION_LIBRARY = None


def _torchvision_op_schemas() -> None:
    """Let torchvision import when its compiled operators cannot load (a CUDA build of torchvision
    next to a CPU build of torch: its ``_C.so`` needs libtorch_cuda). torchvision then still
    registers fake kernels for ``torchvision::nms`` and ``qnms`` at import, which fails unless the
    operators exist; this declares their schemas (no kernels). pty-chi only uses torchvision's
    pure-Python ``GaussianBlur``, so nothing it runs needs the missing kernels."""
    global _TORCHVISION_LIBRARY
    import sys

    import torch

    if _TORCHVISION_LIBRARY is not None or "torchvision" in sys.modules:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018 - present when torchvision's _C loaded
        return
    except (AttributeError, RuntimeError):
        pass
    import subprocess

    # Whether torchvision imports as it is, asked of a child process: a failed load of its
    # compiled operators here cannot be undone (torch.ops.load_library also fails where
    # torchvision's own import loads them, and declaring the schemas first then aborts the
    # process on the duplicate registration: torch 2.14 with torchvision 0.29).
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, check=False)
    if probe.returncode == 0:
        return
    lib = torch.library.Library("torchvision", "DEF")
    for name in ("nms", "qnms"):
        lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_LIBRARY = lib


class PtychiRunner(Runner):
    """pty-chi 2.x (``import ptychi``) on the CPU through torch: LSQML, DM or RAAR.

    Options follow pty-chi's own 2D tests (``tests/test_2d_ptycho_{lsqml,dm}.py``): object from
    ones, probe refined from the given guess, positions fixed, LSQML with 100-frame mini-batches
    and a Gaussian noise model, DM/RAAR with 100-frame chunks (RAAR β = 0.75, its default).
    pty-chi's far field is an unnormalised FFT without shifts, so the probe is divided by n to
    give the same photon counts, and the centred frames are FFT-shifted by pty-chi
    (``data_options.fft_shift``)."""

    def __init__(self, scan: BenchScan, algorithm: str, options_hook=None):
        super().__init__(scan)
        self.algorithm = algorithm
        self.name = f"pty-chi {algorithm}"
        self.task = None
        self.options_hook = options_hook

    def setup(self) -> None:
        import torch

        _torchvision_op_schemas()
        from ptychi import api
        from ptychi.api.task import PtychographyTask

        logging.getLogger("ptychi").setLevel(logging.WARNING)
        torch.set_default_device("cpu")
        scan = self.scan
        options = {"LSQML": api.LSQMLOptions, "DM": api.DMOptions, "RAAR": api.RAAROptions}[self.algorithm]()
        ro = options.reconstructor_options
        ro.default_device = api.Devices.CPU
        ro.num_epochs = 1
        ro.random_seed = 0
        if self.algorithm == "LSQML":
            ro.batch_size = 100
            ro.noise_model = api.NoiseModels.GAUSSIAN
        else:
            ro.chunk_length = 100
        options.data_options.wavelength_m = energy_to_wavelength(scan.energy_ev)
        options.data_options.fft_shift = True
        options.object_options.pixel_size_m = scan.pixel_m
        options.object_options.optimizable = True
        options.probe_options.optimizable = True
        options.probe_position_options.optimizable = False
        if self.options_hook is not None:
            self.options_hook(options)
        probe = (scan.probe / scan.n).astype(np.complex64)[None, None]
        obj = np.ones((1, scan.n_obj, scan.n_obj), np.complex64)
        self.task = PtychographyTask(
            options,
            diffraction_data=torch.from_numpy(scan.frames),
            object_data=torch.from_numpy(obj),
            probe_data=torch.from_numpy(probe),
            probe_position_x_px=torch.from_numpy(scan.positions_px[:, 1].astype(np.float32)),
            probe_position_y_px=torch.from_numpy(scan.positions_px[:, 0].astype(np.float32)),
        )

    def advance(self, k: int) -> None:
        self.task.run(n_epochs=k)

    def object(self) -> np.ndarray:
        return embed(self.task.get_data_to_cpu("object", as_numpy=True)[0], self.scan.n_obj)

    def close(self) -> None:
        self.task = None


class PtylabRunner(Runner):
    """PtyLab (PyPI ``ptylab``, ``import PtyLab``) on the CPU (NumPy): ePIE or mPIE with their
    default step sizes (β_O = β_P = 0.25; mPIE momentum 0.3 / friction 0.7), random position
    order, Fraunhofer propagator, probe refined from the given guess. PtyLab reads its data from
    an HDF5 file; here the same fields are set in memory (``ExperimentalData(None)`` then
    ``_setData()``), which is what its loader does after reading."""

    def __init__(self, scan: BenchScan, engine: str):
        super().__init__(scan)
        self.engine_name = engine
        self.name = f"PtyLab {engine}"
        self.engine = None
        self.reconstruction = None

    def setup(self) -> None:
        os.environ.setdefault("TQDM_DISABLE", "1")
        from PtyLab import Engines
        from PtyLab.ExperimentalData.ExperimentalData import ExperimentalData
        from PtyLab.Monitor.Monitor import DummyMonitor
        from PtyLab.Params.Params import Params
        from PtyLab.Reconstruction.Reconstruction import Reconstruction

        for name in ("ExperimentalData", "Reconstruction", "Params", "ePIE", "mPIE", "BaseEngine"):
            logging.getLogger(name).setLevel(logging.WARNING)
        scan = self.scan
        data = ExperimentalData(None, operationMode="CPM")
        data.ptychogram = scan.frames
        data.wavelength = energy_to_wavelength(scan.energy_ev)
        data.dxd = scan.detector_pixel_m
        data.zo = scan.distance_m
        data.encoder = scan.positions_px.astype(np.float64) * scan.pixel_m   # (y, x), metres
        data.entrancePupilDiameter = scan.beam_px * scan.pixel_m
        data.spectralDensity = None
        data.theta = None
        data.emptyBeam = None
        data._setData()

        params = Params()
        params.gpuSwitch = False
        params.propagatorType = "Fraunhofer"
        params.positionOrder = "random"
        params.probePowerCorrectionSwitch = False
        params.comStabilizationSwitch = False
        params.orthogonalizationSwitch = False
        rec = Reconstruction(data, params)
        rec.No = scan.n_obj
        rec.initializeObjectProbe()
        rec.object = np.ones_like(rec.object)
        rec.probe = np.broadcast_to(scan.probe, rec.probe.shape).astype(np.complex64).copy()
        if not np.allclose(rec.dxp, scan.pixel_m, rtol=1e-6):
            raise RuntimeError(f"PtyLab pixel {rec.dxp} m differs from the scan's {scan.pixel_m} m")
        np.random.seed(0)
        self.engine = getattr(Engines, self.engine_name)(rec, data, params, DummyMonitor())
        self.reconstruction = rec

    def advance(self, k: int) -> None:
        import contextlib
        import io

        self.engine.numIterations = k
        with contextlib.redirect_stdout(io.StringIO()):     # one "Starting ePIE" line per call
            self.engine.reconstruct()

    def object(self) -> np.ndarray:
        return embed(np.asarray(self.reconstruction.object)[0, 0, 0, 0], self.scan.n_obj)

    def close(self) -> None:
        self.engine = None
        self.reconstruction = None



class ChemtomoRunner(Runner):
    """``chemtomo.ptycho.reconstruct`` with the given algorithm and its default options (probe
    refinement, background retrieval), the true probe as the initial guess, the truth's object
    shape, ``frc=False`` (the split-half FRC is two more reconstructions, not part of an
    iteration).

    ``reconstruct`` returns only the final result, so the runner makes one call for all
    checkpoints and copies the object out of the solver's state in the ``progress`` callback
    (found as the calling ``Run``); the copying time is subtracted. The timed call includes
    chemtomo's own set-up (validation, probe scaling, model build), which the anchors' rows
    report separately, so chemtomo's s/iteration is if anything overstated. ``setup`` makes one
    1-iteration call first so that numba's one-off compilation is not timed (it is in setup s)."""

    def __init__(self, scan: BenchScan, algorithm: str, *, default: bool = False, **kwargs):
        super().__init__(scan)
        self.algorithm = algorithm       # a name ("RAAR"), or a whole chain ("mPIE:5,ePIE:45")
        self.kwargs = kwargs
        extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        self.name = f"chemtomo {algorithm}" + (" (default)" if default else "") + (f" [{extra}]" if extra else "")
        self.cscan = None

    def chain(self, iterations: int) -> str:
        """The algorithm string for ``iterations`` in all: a name runs them all; a chain whose
        total differs (``--quick``) has its stages scaled, keeping each at least 1."""
        return scaled_chain(self.algorithm, iterations)

    def setup(self) -> None:
        from chemtomo.core import Scan
        from chemtomo.ptycho import reconstruct

        s = self.scan
        self.cscan = Scan(frames=s.frames, positions_m=s.positions_m, energy_ev=s.energy_ev,
                          distance_m=s.distance_m, detector_pixel_m=s.detector_pixel_m)
        reconstruct(self.cscan, self.chain(len(self.algorithm.split(","))), **self._call_kwargs())

    def _call_kwargs(self) -> dict:
        return dict(probe=self.scan.probe, object_shape=(self.scan.n_obj, self.scan.n_obj), frc=False,
                    **self.kwargs)

    def run(self, checkpoints: list[int]):
        import sys

        from chemtomo.ptycho import reconstruct

        wanted = set(checkpoints)
        out: list[tuple[int, float, np.ndarray]] = []
        spent = [0.0]

        def progress(done: int, total: int) -> None:
            if done in wanted:
                t = time.perf_counter()
                run = sys._getframe(1).f_locals["self"]       # chemtomo.ptycho.engine.Run
                obj = embed(np.array(run.state.obj), self.scan.n_obj)
                out.append((done, t - t0 - spent[0], obj))
                spent[0] += time.perf_counter() - t

        t0 = time.perf_counter()
        proj = reconstruct(self.cscan, self.chain(max(checkpoints)), progress=progress, **self._call_kwargs())
        if proj.info.get("diverged"):
            self.note = "chemtomo reported divergence (kept its best state)"
        yield from out

    def close(self) -> None:
        self.cscan = None


def scaled_chain(algorithm: str, iterations: int) -> str:
    """``algorithm`` ("NAME" or "NAME:n,NAME:m") as a chain of ``iterations`` in all."""
    from chemtomo.ptycho import parse_algorithm

    if ":" not in algorithm:
        return f"{algorithm}:{iterations}"
    stages = parse_algorithm(algorithm)
    total = sum(n for _, n in stages)
    if total == iterations:
        return algorithm
    counts = [max(1, round(n * iterations / total)) for _, n in stages]
    counts[-1] = max(1, iterations - sum(counts[:-1]))
    return ",".join(f"{name}:{c}" for (name, _), c in zip(stages, counts))


def default_algorithm() -> str:
    """chemtomo.ptycho.reconstruct's default algorithm chain."""
    import inspect

    from chemtomo.ptycho import reconstruct

    return inspect.signature(reconstruct).parameters["algorithm"].default


def chemtomo_runners(scan: BenchScan) -> list[Runner]:
    """chemtomo's default chain with its default options first, then the paper's RAAR with the
    default options, then every solver without background retrieval (the scan has none and the
    anchors retrieve none)."""
    default = default_algorithm()
    runners: list[Runner] = [ChemtomoRunner(scan, default, default=True)]
    runners.append(ChemtomoRunner(scan, "RAAR"))
    for a in [default, "RAAR", "DM", "ePIE", "mPIE", "ML"]:
        runners.append(ChemtomoRunner(scan, a, default=(a == default), background=False))
    return runners
