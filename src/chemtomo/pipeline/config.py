"""Run configuration: one TOML file parsed into frozen dataclasses, validated on load.

Every default is documented here, once, in the ``doc`` of its field; ``example_config()`` prints
them as a commented TOML file (``chemtomo config --example``) and the store keeps the resolved
config so a run can be reproduced from its output. An unknown key or a bad value is a
``ConfigError`` that names the key and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError

__all__ = ["RunConfig", "InputConfig", "PtychoConfig", "AlignConfig", "TomoConfig", "ResolutionConfig",
           "ChemConfig", "ParticlesConfig", "ComputeConfig", "load_config", "config_for_manifest",
           "example_config", "config_to_dict", "config_from_dict", "field_unit"]


def _f(default, doc: str, choices: tuple | None = None, low: float | None = None, high: float | None = None,
       items: type | None = None):
    meta = {"doc": doc, "choices": choices, "low": low, "high": high, "items": items}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class InputConfig:
    """Where the scans are and how to read them."""
    manifest: str = _f("", "Manifest CSV (path,angle_deg,energy_eV) or a folder of CXI files; relative to the config file.")
    references: str = _f("", "Reference spectra CSV (energy_eV,LiFePO4,…,FePO4); default: references.csv beside the manifest.")
    xas2d: str = _f("", "Optional 2D XAS stack (HDF5: /energies_eV, /od, /pixel_m) for validation; default: xas2d.h5 beside the manifest if present.")
    angle_key: str = _f("", "HDF5 path of a scalar tilt angle in degrees, when reading a folder (default: CXI orientation).")
    swap_xy: bool = _f(False, "The files' translation columns are (y, x, z) instead of CXI's (x, y, z).")
    flip_x: bool = _f(False, "Negate the x positions (facility sign convention).")
    flip_y: bool = _f(False, "Negate the y positions (facility sign convention).")
    kind: str = _f("auto", "What the manifest lists: 'scans' (CXI ptychography scans), 'projections' (reconstructed complex "
                           "CXI images: no ptychography), 'intensity' (full-field images with flat and dark fields: Data "
                           "Exchange HDF5 or TIFF), 'od' (ready optical-density images); 'auto': detected from the files.",
                   choices=("auto", "scans", "projections", "intensity", "od"))
    theta_unit: str = _f("", "Unit of a Data Exchange /exchange/theta without a units attribute: 'deg' or 'rad'; empty: "
                             "values beyond 2π are degrees, others an error.", choices=("", "deg", "rad"))
    transmission_floor: float = _f(1e-3, "Lowest transmission (I − dark)/(flat − dark) of intensity data; lower or "
                                         "non-positive values are set to it (OD at most −ln of it, 6.9) and counted.",
                                   low=1e-12, high=0.5)
    on_bad_scan: str = _f("fail", "What to do with scans that fail the check before the run (missing or truncated file, no frames, "
                                  "positions not matching frames, another frame size, no energy): 'fail' lists every problem and "
                                  "stops before any reconstruction; 'skip' leaves them out, runs on and records them in the store "
                                  "(chemtomo run --skip-bad-scans).", choices=("fail", "skip"))
    exclude: list = _f([], "Scans to leave out by hand, paths relative to the manifest's folder, e.g. "
                           "[\"scans/e708.2_a017.cxi\"]; recorded in the store as excluded_inputs.", items=str)
    exclude_angles: list = _f([], "Tilt-angle ranges to leave out by hand at every energy, degrees, each [low, high] inclusive, "
                                  "e.g. [[-80, -76], [40, 40]]; recorded in the store as excluded_inputs.", items="range")


@dataclass(frozen=True)
class PtychoConfig:
    """Ptychographic reconstruction of every scan (chemtomo.ptycho.reconstruct)."""
    algorithm: str = _f("default", "Algorithm chain, or default: chemtomo.ptycho.DEFAULT_ALGORITHM, the same chain as "
                                   "'chemtomo ptycho' and ptycho.reconstruct (it stops by itself at convergence; the counts are "
                                   "maxima; docs/results/ptychography.md). Or a chain: 'RAAR:500' (the paper), "
                                   "'DM:100,RAAR:300,ML:100'.")
    n_modes: int = _f(1, "Incoherent probe modes.", low=1, high=10)
    background: bool = _f(True, "Retrieve a static incoherent background (as in the paper).")
    refine_positions: bool = _f(True, "Refine scan positions (in the chain's last PIE or LSQML stage, "
                                      "without a common affine change; ptycho.PositionOptions).")
    background_projection: str = _f("auto", "How the modulus projection treats the retrieved background: auto (share the "
                                            "counts with it where the data show a detector background, else subtract; "
                                            "decided per scan, and the log says when the scans of one energy disagree), "
                                            "subtract or share (ptycho.BackgroundOptions).",
                                    choices=("auto", "subtract", "share"))
    frc: bool = _f(False, "Split-half FRC of every projection (triples the cost); false: of ptycho.frc_angles projections per energy.")
    frc_weighting: str = _f("auto", "Weight each projection ring by ring by its split-half FRC, sqrt(2 FRC / (1 + FRC)): auto (where "
                                    "the default runs its low-dose chain, below 50 counts per detector pixel, whose converged "
                                    "solver fits photon noise; the halves are then reconstructed for every such scan), on (every "
                                    "scan, any chain) or off (ptycho.PtychoOptions.frc_weighting).",
                            choices=("auto", "on", "off"))
    oversample: int = _f(0, "The model's grid in object pixels per detector-grid pixel: 1 (every far-field code's one-grid "
                            "model), 2-4 (the exit wave formed on a grid that much finer, the far field beyond the detector "
                            "unmeasured, the object band-limited to the detector's band; m^2 the time; lowers the error "
                            "where very bright data show the one grid's aliasing, ptycho.PtychoOptions.oversample). "
                            "0 (default): 1, and 2 as well for a scan whose run on 1 converges at 20x its Poisson floor or "
                            "more (the model, not the noise, limits it), the better fit kept. "
                            "Projections come back on the detector's grid either way.", low=0, high=4)
    mask: str = _f("", "Detector mask file (TIFF, .npy, or HDF5 with a NeXus pixel_mask / CXI detector_1/mask), 0 = good pixel, "
                       "any other value masked, in the files' detector orientation; combined with each scan's own mask. "
                       "Masked pixels float free in every update. Relative to the config file.")
    saturation: float = _f(0.0, "Counts at or above which a detector pixel is saturated and masked for its scan "
                                "(e.g. 65535 for a 16-bit counter); 0: no saturation check.", low=0.0)
    frc_angles: int = _f(3, "With frc = false: split-half FRC of this many evenly spaced angles per energy (the middle one included when odd), so the report's median is over more than one projection; each costs 3 reconstructions.", low=1, high=1000)


@dataclass(frozen=True)
class AlignConfig:
    """Tilt-series alignment (chemtomo.align.align)."""
    method: str = _f("reprojection", "'reprojection' (coarse, then iterative reprojection with similarity transforms), 'coarse', or 'none'.",
                     choices=("reprojection", "coarse", "none"))
    iterations: int = _f(10, "Maximum reprojection-alignment iterations.", low=1, high=200)
    algorithm: str = _f("art", "Reconstruction used inside the alignment loop (art: 3 warm-started sweeps reach a better reference than 30 SIRT iterations at a tenth of the cost; benchmarks/align.py --paper).", choices=("art", "sart", "sirt", "cgls", "fbp", "tv"))
    tol_px: float = _f(0.02, "Stop when the largest update is below this, pixels.", low=0.0)
    residual_rtol: float = _f(0.01, "Also stop when an iteration lowers the mean residual by less than this fraction (with updates under 10 × tol_px): "
                                    "past that the update stays at the registration noise and the alignment no longer improves; 0: never.",
                              low=0.0, high=0.99)
    similarity: bool = _f(True, "Fit rotation and scale as well as translation (the paper's similarity transform).")
    recon_iterations: int = _f(3, "Reconstruction iterations inside each outer iteration (warm-started); 3 for art, about 30 for sirt.", low=1, high=1000)
    binned_iterations: int = _f(3, "Outer iterations on 2×2-binned data first (0: none); each is about 8× cheaper and they "
                                   "remove the bulk of the misalignment.", low=0, high=100)
    reference_energy: float = _f(0.0, "Energy (eV) whose grid, frame and FSC are the reference; 0: the lowest energy with at least half the strongest mean OD (skips pre-edge energies).", low=0.0)
    energy_scale: str = _f("auto", "Pixel-size ratio between energies (the zone plate's magnification changes with energy): 'auto' estimates it "
                                   "with the offsets and keeps it for an energy only where it differs from the nominal (ptychography's pixel "
                                   "size) by more than 3 standard errors; 'on' always keeps the estimate; 'off' registers offsets only.",
                           choices=("auto", "on", "off"))


@dataclass(frozen=True)
class TomoConfig:
    """Tomographic reconstruction of each energy's aligned OD tilt series."""
    algorithm: str = _f("art", "art (the paper), sart, sirt, cgls, fbp or tv.", choices=("art", "sart", "sirt", "cgls", "fbp", "tv"))
    iterations: int = _f(20, "Full sweeps (ART/SART) or updates (SIRT/CGLS/TV); the paper: ART, 20.", low=1, high=10000)
    nonneg: bool = _f(True, "Clip negative OD after each update (OD cannot be negative).")
    block_slices: int = _f(0, "Slices (rows along the rotation axis) per Dask task; 0: as wide as the ray kernels sweep at once (96 slices, chemtomo.tomo._kernels.SLICE_RANGE), narrower in whole lanes of 32 where that leaves a worker thread idle (chemtomo.tomo.operator.slice_blocks).", low=0)


@dataclass(frozen=True)
class ResolutionConfig:
    """3D resolution by split-half FSC (odd and even angles reconstructed independently)."""
    fsc: bool = _f(True, "Compute the split-half FSC at the reference energy.")
    threshold: str = _f("half-bit", "'half-bit' (van Heel & Schatz 2005, the paper) or '1/7'.", choices=("half-bit", "1/7"))


@dataclass(frozen=True)
class ChemConfig:
    """Per-voxel chemistry: unmixing, fraction, classes (chemtomo.chem)."""
    method: str = _f("exact", "Two-step (the paper: one volume per energy, then per-voxel unmixing): exact (2×2 solve of equation 1; "
                     "least squares with more energies), lstsq, nnls, or two-step (= exact). joint: the phase volumes fitted "
                     "directly to every energy's aligned tilt series (chem.joint_reconstruct).",
                     choices=("exact", "lstsq", "nnls", "two-step", "joint"))
    thresholds: list = _f([0.3, 0.7], "FePO4-fraction class limits: below the first LFP-rich, above the second FP-rich (paper: 30 %/70 %).")
    density_threshold: float = _f(0.0, "Sample-mask density threshold (volume fraction); 0: automatic (Otsu).", low=0.0)
    compare: bool = _f(False, "With method = joint: also the two-step result, stored and shown beside the joint one with the difference map.")
    joint_iterations: int = _f(10, "Sweeps of the joint solver (10 with two energies cost ~0.6× the paper's ART-20 per energy; benchmarks/joint.py).", low=1, high=10000)
    joint_tv: float = _f(-1.0, "TV proximal weight per sweep of the joint solver, volume-fraction units; 0: none; negative "
                               "(default): chosen from the data, 0.5 × the per-voxel noise of a pilot solve "
                               "(chem.joint_reconstruct tv='auto').", low=-1.0)
    joint_occupancy: bool = _f(False, "Joint solver: bound the sum of the phase volume fractions by 1 in every voxel.")
    max_reference_gap_ev: float = _f(1.0, "A measured energy that is not a row of the reference table is interpolated only between rows at "
                                          "most this far apart (eV); a wider gap is an input error naming the energy and the rows around "
                                          "it (interpolating across an L3 peak would give a wrong chemical map).", low=1e-6)
    reference_columns: dict = _f({}, "Reference spectra chosen by column name, phase -> 'FILE:COLUMN' (XDI, Athena/Larch .nor/.xmu "
                                      "or CSV; FILE relative to the config) or 'COLUMN' of input.references, LiFePO4 first, FePO4 last, "
                                      "e.g. {LiFePO4 = \"lfp.nor:norm\", FePO4 = \"fp.nor:norm\"}; empty: every column of input.references.")


@dataclass(frozen=True)
class ParticlesConfig:
    """Particle segmentation, measurement and activity statistics (chemtomo.particles)."""
    active_thresholds: list = _f([0.15, 0.25], "Mean FePO4 fraction above which a particle is active (paper: 15 % and 25 %).")
    min_volume_nm3: float = _f(0.0, "Smallest particle kept, nm³; 0: a sphere of diameter twice the measured resolution.", low=0.0)
    split: bool = _f(True, "Split touching particles (watershed on the local filling fraction) and plates stacked face on face.")


@dataclass(frozen=True)
class ComputeConfig:
    """Where the work runs."""
    device: str = _f("cpu", "cpu. (gpu is reserved: the ptychography and tomography kernels are CPU-only in this version.)",
                     choices=("cpu", "gpu"))
    scheduler: str = _f("", "Dask scheduler address (tcp://HOST:PORT); empty: a local scheduler on this machine's cores.")
    workers: int = _f(0, "Local workers; 0: all cores.", low=0)
    processes: str = _f("auto", "Local workers as processes (one thread each) or as threads of this process: auto (processes "
                                "where the chemtomo command reconstructs ptychography scans on two workers or more: a scan's "
                                "many small steps hold Python's GIL, so threads share one core's worth of it; 1.6x on the "
                                "demo's ptychography; threads from Python), on (a Python script must then start the run "
                                "under if __name__ == \"__main__\":), or off.", choices=("auto", "on", "off"))
    shared_storage: bool = _f(False, "The inputs and the store are on one file system that every Dask worker sees (the normal "
                                     "case on a beamline cluster): tasks read their scans and write their own results into "
                                     "the store; the client only keeps the bookkeeping (docs/howto/cluster_scaling.md).")


@dataclass(frozen=True)
class RunConfig:
    """A whole run. Sections are TOML tables of the same names."""
    input: InputConfig = field(default_factory=InputConfig)
    ptycho: PtychoConfig = field(default_factory=PtychoConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    tomo: TomoConfig = field(default_factory=TomoConfig)
    resolution: ResolutionConfig = field(default_factory=ResolutionConfig)
    chem: ChemConfig = field(default_factory=ChemConfig)
    particles: ParticlesConfig = field(default_factory=ParticlesConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    base_dir: str = field(default="", metadata={"doc": "internal: folder relative paths are resolved against"})

    def path(self, value: str) -> Path | None:
        """A configured path resolved against the config file's folder, or None if empty."""
        if not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir or ".") / p


_SECTION_TYPES = {"input": InputConfig, "ptycho": PtychoConfig, "align": AlignConfig, "tomo": TomoConfig,
                  "resolution": ResolutionConfig, "chem": ChemConfig, "particles": ParticlesConfig,
                  "compute": ComputeConfig}


# The unit of every key that has one, beside its ``doc`` (kept here, not in each field, so the
# docs' reference table names it; tests/pipeline/test_config_units.py checks every key here exists
# and every number has an entry). "1": a dimensionless fraction; "" would mean "no unit" and
# such keys are simply absent.
_UNITS = {
    "input.transmission_floor": "1 (fraction of the flat-field signal)",
    "ptycho.n_modes": "modes",
    "ptycho.frc_angles": "angles per energy",
    "ptycho.oversample": "object pixels per detector-grid pixel",
    "ptycho.saturation": "counts",
    "input.exclude_angles": "deg",
    "align.iterations": "outer iterations",
    "align.tol_px": "px",
    "align.residual_rtol": "1 (fraction of the residual)",
    "align.recon_iterations": "iterations",
    "align.binned_iterations": "outer iterations",
    "align.reference_energy": "eV",
    "tomo.iterations": "sweeps or updates",
    "tomo.block_slices": "slices",
    "chem.thresholds": "1 (FePO4 fraction)",
    "chem.density_threshold": "1 (volume fraction)",
    "chem.joint_iterations": "sweeps",
    "chem.joint_tv": "1 (volume fraction)",
    "chem.max_reference_gap_ev": "eV",
    "particles.active_thresholds": "1 (FePO4 fraction)",
    "particles.min_volume_nm3": "nm³",
    "compute.workers": "workers",
}


def field_unit(section: str, key: str) -> str:
    """The unit of configuration key ``section.key`` ("" for text, switches and choices)."""
    return _UNITS.get(f"{section}.{key}", "")


def _check_value(section: str, f: dataclasses.Field, value: Any, where: str) -> Any:
    key = f"{section}.{f.name}"
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    meta = f.metadata
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    elif isinstance(default, list) and meta.get("items") == "range":
        ok = isinstance(value, list) and all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        and math.isfinite(v) for v in r) and r[0] <= r[1]
            for r in value)
        if not ok:
            raise ConfigError(f"{where}: {key} must be a list of [low, high] angle ranges in degrees with low ≤ high, "
                              f"got {value!r}")
        value = [[float(a), float(b)] for a, b in value]
    elif isinstance(default, list) and meta.get("items") is str:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"{where}: {key} must be a list of non-empty strings (paths), got {value!r}")
        value = list(value)
    elif isinstance(default, list):
        if not isinstance(value, list) or len(value) != len(default) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: {key} must be a list of {len(default)} numbers, got {value!r}")
        if not all(0.0 <= v <= 1.0 for v in value) or sorted(value) != list(value):
            raise ConfigError(f"{where}: {key} must be increasing fractions in [0, 1], got {value!r}")
        value = [float(v) for v in value]
    elif isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                                                  for k, v in value.items()):
            raise ConfigError(f"{where}: {key} must be a table of phase = \"FILE:COLUMN\" strings, got {value!r}")
        if value and len(value) < 2:
            raise ConfigError(f"{where}: {key} names {len(value)} phase; expected at least two (LiFePO4 first, FePO4 last)")
        value = dict(value)
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where}: {key} = {value!r} is not allowed; choose one of {', '.join(map(repr, meta['choices']))}")
    if meta.get("low") is not None and value < meta["low"]:
        raise ConfigError(f"{where}: {key} = {value!r} must be ≥ {meta['low']}")
    if meta.get("high") is not None and value > meta["high"]:
        raise ConfigError(f"{where}: {key} = {value!r} must be ≤ {meta['high']}")
    return value


def config_from_dict(data: dict, *, where: str = "config", base_dir: str = "") -> RunConfig:
    """Validate a parsed TOML document and build a RunConfig."""
    unknown = set(data) - set(_SECTION_TYPES)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}; valid sections: {sorted(_SECTION_TYPES)}")
    sections = {}
    for name, cls in _SECTION_TYPES.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table, got {table!r}")
        valid = {f.name: f for f in fields(cls)}
        bad = set(table) - set(valid)
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(f'{name}.{k}' for k in sorted(bad))}; "
                              f"valid keys in [{name}]: {', '.join(sorted(valid))}")
        sections[name] = cls(**{k: _check_value(name, valid[k], v, where) for k, v in table.items()})
    algorithm = sections["ptycho"].algorithm
    if algorithm.strip().lower() == "auto":
        raise ConfigError(f"{where}: ptycho.algorithm = 'auto' (two chains chosen by split-half FRC) was removed; "
                          "use 'default' (chemtomo.ptycho.DEFAULT_ALGORITHM) or a chain such as 'RAAR:500'")
    if algorithm.strip().lower() != "default":  # a typo in the chain fails here, not in the first Dask task
        from ..core.errors import InputError
        from ..ptycho import parse_algorithm
        try:
            parse_algorithm(algorithm)
        except InputError as exc:
            raise ConfigError(f"{where}: ptycho.algorithm: {exc} (or 'default')") from exc
    return RunConfig(**sections, base_dir=base_dir)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text (UTF-8) TOML file: byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}; "
                          "expected a run configuration (chemtomo config --example)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    cfg = config_from_dict(data, where=str(p), base_dir=str(p.parent.resolve()))
    if not cfg.input.manifest:
        raise ConfigError(f"{p}: input.manifest is required (a manifest CSV or a folder of CXI files)")
    return cfg


def config_for_manifest(manifest: str | Path, overrides: dict | None = None) -> RunConfig:
    """Defaults for a run of one manifest (``chemtomo run MANIFEST.csv``)."""
    m = Path(manifest).resolve()
    data = {"input": {"manifest": m.name if m.is_file() else str(m)}}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data, where=str(manifest), base_dir=str(m.parent))


def config_to_dict(cfg: RunConfig) -> dict:
    """The resolved config as plain data (stored in the run's metadata)."""
    d = dataclasses.asdict(cfg)
    d.pop("base_dir", None)
    return d


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def example_config() -> str:
    """A commented TOML file with every key and its default."""
    lines = ["# chemtomo run configuration: every key with its default.",
             "# Run with: chemtomo run THIS.toml --out RUN.zarr", ""]
    for name, cls in _SECTION_TYPES.items():
        lines.append(f"[{name}]")
        lines.append(f"# {cls.__doc__.strip()}")
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"# {f.metadata['doc']}")
            value = "manifest.csv" if (name, f.name) == ("input", "manifest") else default
            lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
