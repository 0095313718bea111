"""A documented STXM stack writer for the tests: a simulated two-phase sample with known maps.

The sample is a few elliptical particles (smooth edges, so that sampling at shifted positions is
exact and sub-pixel drift is well defined), each a mixture of two phases, "LiFePO4" and "FePO4",
with known thickness maps ``t_k(y, x)`` (metres). At each energy the microscope records Poisson
counts ``I_e = N0_e exp(−Σ_k μ_k(e) t_k)`` of the field displaced by the energy's drift ``S_e``:
``raw_e(q) = ideal_e(q − S_e)``, so ``raw_e(p + S_e) = ideal_e(p)`` (the convention of
``chemtomo.align``). ``N0_e`` (the incident flux) changes with energy like a beamline's.

Spectra: Gaussian white lines on a step edge, LiFePO4 peaking at 708.2 eV and FePO4 at
710.2 eV (the paper's energies), μ in 1/m; ``reference_table`` gives them on a 0.1 eV grid.

``write_stack(folder, sim, fmt)`` writes the stack with chemtomo's own writers
(``write_stxm_hdr``: ``.hdr`` + ``_a000.xim`` ...; ``write_nxstxm``: NeXus NXstxm) and the
references as ``references.csv``; ``HDR_EXAMPLE`` is a header typed after the layout of the
ALS microscopes' files (not written by chemtomo), for the parser tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chemtomo.io import write_references
from chemtomo.io.stxm import STXMStack, write_nxstxm, write_stxm_hdr

PHASES = ("LiFePO4", "FePO4")
PIXEL_M = 40e-9


def mu(energies_ev) -> np.ndarray:
    """(n_energies, 2) μ in 1/m of LiFePO4 and FePO4: step edge + white line (Fe L3-like)."""
    e = np.asarray(energies_ev, dtype=np.float64)
    step = 1.0 / (1.0 + np.exp(-(e - 707.0) / 0.6))
    base = 2.0e6 + 3.0e6 * step
    lfp = base + 9.0e6 * np.exp(-0.5 * ((e - 708.2) / 0.55) ** 2)
    fp = base + 9.0e6 * np.exp(-0.5 * ((e - 710.2) / 0.65) ** 2)
    return np.stack([lfp, fp], axis=1)


def reference_table():
    """(energies_ev, {phase: μ}) on a 0.1 eV grid from 700 to 720 eV."""
    grid = np.round(np.arange(700.0, 720.0001, 0.1), 4)
    m = mu(grid)
    return grid, {PHASES[0]: m[:, 0], PHASES[1]: m[:, 1]}


@dataclass(frozen=True)
class SimStack:
    """A simulated stack with its truth.

    stack      : STXMStack, counts (n_e, ny, nx) as recorded (drifting)
    thickness  : (2, ny, nx) float64, true thickness of each phase, metres, in the reference frame
    shifts_px  : (n_e, 2), the drift S_e (dy, dx) of each energy
    n0         : (n_e,), incident counts per pixel
    support    : (ny, nx) bool, pixels with any material (total thickness > 0.1 nm)
    """

    stack: STXMStack
    thickness: np.ndarray
    shifts_px: np.ndarray
    n0: np.ndarray
    support: np.ndarray


_PARTICLES = (  # centre (y, x) as a fraction of the field, semi-axes (px), thickness (nm), FePO4 share
    ((0.35, 0.30), (7.0, 10.0), 60.0, 0.1),
    ((0.62, 0.62), (9.0, 7.0), 80.0, 0.85),
    ((0.30, 0.70), (5.0, 6.0), 50.0, 0.5),
)


def thickness_at(yy, xx, shape) -> np.ndarray:
    """(2, ...) thickness in metres at (fractional) pixel coordinates yy, xx."""
    ny, nx = shape
    out = np.zeros((2,) + np.shape(yy))
    for (cy, cx), (ay, ax), t_nm, x_fp in _PARTICLES:
        r = np.sqrt(((yy - cy * ny) / ay) ** 2 + ((xx - cx * nx) / ax) ** 2)
        profile = t_nm * 1e-9 / (1.0 + np.exp((r - 1.0) / 0.12))
        # FePO4 share grows from the particle's core outwards (a shrinking-core-like gradient)
        share = np.clip(x_fp + 0.3 * (r - 0.5), 0.0, 1.0)
        out[0] += profile * (1.0 - share)
        out[1] += profile * share
    return out


def simulate(*, shape=(48, 64), energies_ev=None, n0=3000.0, max_drift_px=1.5, seed=0) -> SimStack:
    """Simulate the drifting stack (see the module docstring); ``max_drift_px=0`` for none."""
    rng = np.random.default_rng(seed)
    e = np.asarray(energies_ev if energies_ev is not None else
                   np.concatenate([np.arange(702.0, 707.0, 1.0), np.arange(707.0, 712.01, 0.25),
                                   np.arange(713.0, 718.1, 1.0)]), dtype=np.float64)
    ny, nx = shape
    m = mu(e)
    flux = n0 * (1.0 + 0.25 * np.sin((e - e[0]) / 3.0))        # beamline flux varies with energy
    drift = np.cumsum(rng.normal(0.0, max_drift_px / 4.0, (e.size, 2)), axis=0) if max_drift_px > 0 else \
        np.zeros((e.size, 2))
    drift = np.clip(drift - drift.mean(axis=0), -max_drift_px, max_drift_px)
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    counts = np.empty((e.size, ny, nx), np.float32)
    for i in range(e.size):
        t = thickness_at(yy - drift[i, 0], xx - drift[i, 1], shape)
        od = m[i, 0] * t[0] + m[i, 1] * t[1]
        counts[i] = rng.poisson(flux[i] * np.exp(-od))
    truth = thickness_at(yy, xx, shape)
    x_m = np.arange(nx) * PIXEL_M + 1.0e-6
    y_m = np.arange(ny) * PIXEL_M - 2.0e-6
    stack = STXMStack(counts, e, x_m, y_m, 1.0, "")
    return SimStack(stack, truth, drift, flux, truth.sum(axis=0) > 0.1e-9)


def write_stack(folder, sim: SimStack, fmt: str = "hdr") -> tuple[Path, Path]:
    """Write the stack (``fmt`` "hdr" or "nexus") and references.csv; return (stack path, references)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    refs = write_references(folder / "references.csv", *reference_table())
    if fmt == "hdr":
        path = folder / "sample.hdr"
        write_stxm_hdr(path, sim.stack)
    else:
        path = write_nxstxm(folder / "sample.h5", sim.stack)
    return path, refs


#: A header in the layout of the ALS microscopes (line breaks, tabs, extra fields and a channel
#: list as they write them): 3 x-points, 2 y-points, 2 energies, dwell 1 ms.
HDR_EXAMPLE = """ScanDefinition = { Label = "Sample_Image_Stack_2011.hdr"; Type = "NEXAFS Image Scan"; \
Flags = "Image Stack"; Dwell = 1;
\tRegions = (1,
{
\t\tPAxis = { Name = "Sample X"; Unit = "um"; Min = 10; Max = 10.2; Dir = 1;
\t\t\tPoints = (3, 10, 10.1, 10.2);
};
\t\tQAxis = { Name = "Sample Y"; Unit = "um"; Min = -5; Max = -4.9; Dir = 1;
\t\t\tPoints = (2, -5, -4.9);
};
});
\tStackAxis = { Name = "Energy"; Unit = "eV"; Min = 700; Max = 710; Dir = 1;
\t\tPoints = (2, 700, 710);
};
\tChannels = (1,
{ Name = "Counter0"; Unit = "counts";});
};
Time = "2011 March 09 10:12:36";
BeamFeedback = false; ShutterAutomatic = true;
"""
