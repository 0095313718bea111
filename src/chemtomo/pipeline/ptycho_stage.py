"""Stage `ptycho`: every scan of the manifest → a complex projection, as Dask tasks.

Each finished scan is saved at once (atomically) as partial work keyed by its file's fingerprint
and the ptychography settings, so a run killed half-way redoes only the scans it had not
finished. When all are done they are stacked per energy into ``projections/{energy}``
(complex64, angles in acquisition order sorted ascending) with their FRC curves beside them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..io import group_by_energy, read_scan, read_scan_geometry
from ..io.store import energy_key
from .context import RunContext, file_fingerprint, stable_hash

__all__ = ["run_ptycho", "plan_object_shapes", "reconstruct_scan_file", "frc_indices", "detector_summary",
           "detector_totals", "probe_frame_shifts", "shift_transmission"]


def _read_options(ctx: RunContext) -> dict:
    i = ctx.config.input
    opts = {"swap_xy": i.swap_xy, "flip_x": i.flip_x, "flip_y": i.flip_y,
            "angle_key": i.angle_key or None}
    mask = ctx.config.path(ctx.config.ptycho.mask)
    if mask is not None:  # the task reads it (a path and its fingerprint, not an array, cross to it)
        opts["mask_file"] = str(mask)
        opts["mask_fingerprint"] = file_fingerprint(mask) if mask.is_file() else None
    return opts


def plan_object_shapes(ctx: RunContext) -> dict[float, dict]:
    """Per energy: object pixel size and one object array shape that holds every scan."""
    opts = {k: v for k, v in _read_options(ctx).items() if k not in ("angle_key", "mask_file", "mask_fingerprint")}
    plan: dict[float, dict] = {}
    for energy, refs in group_by_energy(ctx.refs).items():
        reach_y = reach_x = 0.0
        pixel = None
        frame = None
        for r in refs:
            g = read_scan_geometry(r.path, **opts)
            pixel = g["pixel_m"] if pixel is None else pixel
            frame = g["frame_shape"]
            reach_y = max(reach_y, float(np.abs(g["positions_m"][:, 0]).max()))
            reach_x = max(reach_x, float(np.abs(g["positions_m"][:, 1]).max()))
        # positions are relative to the object centre: the array must hold the probe at the
        # farthest position on either side, plus two pixels for sub-pixel shifts
        ny = frame[0] + 2 * math.ceil(reach_y / pixel) + 4
        nx = frame[1] + 2 * math.ceil(reach_x / pixel) + 4
        plan[energy] = {"pixel_m": pixel, "object_shape": (ny + ny % 2, nx + nx % 2), "frame_shape": frame}
    return plan


def reconstruct_scan_file(path: str, read_options: dict, recon_options: dict) -> dict:
    """One Dask task: read a CXI scan and reconstruct it on one core (the stage runs one task per
    core at once, ``core.fft.one_core``). Returns plain arrays and numbers."""
    from ..core.fft import one_core
    from ..io import read_detector_mask
    from ..ptycho import PtychoOptions, reconstruct

    recon_options = dict(recon_options)
    options = PtychoOptions(frc_weighting=recon_options.pop("frc_weighting", "auto"),
                            oversample=recon_options.pop("oversample", 0))
    read_options = dict(read_options)
    mask_file = read_options.pop("mask_file", None)
    read_options.pop("mask_fingerprint", None)
    if mask_file:
        read_options["extra_mask"] = read_detector_mask(mask_file)
    scan = read_scan(path, **read_options)
    with one_core():
        # what the detector cleaning did comes back in meta["detector"] (logged and stored by the
        # client), not as warnings printed by a worker
        proj = reconstruct(scan, **recon_options, options=options, warn_detector=False)
    frc = proj.frc
    return {
        "transmission": np.asarray(proj.transmission, np.complex64),
        "probe": np.asarray(proj.probe, np.complex64) if proj.probe is not None else np.zeros((0, 0, 0), np.complex64),
        "background": (np.asarray(proj.background, np.float32) if proj.background is not None
                       else np.zeros((0, 0), np.float32)),
        "errors": np.asarray(proj.errors if proj.errors is not None else [], np.float32),
        "positions_m": np.asarray(scan.positions_m, np.float64),
        "frc_frequency_per_m": np.asarray(frc.frequency_per_m if frc else [], np.float64),
        "frc_correlation": np.asarray(frc.correlation if frc else [], np.float64),
        "frc_threshold": np.asarray(frc.threshold if frc else [], np.float64),
        "meta": {"pixel_m": proj.pixel_m, "energy_ev": proj.energy_ev, "angle_deg": scan.angle_deg,
                 "resolution_m": (frc.resolution_m if frc else float("nan")),
                 "n_frames": scan.n_frames, "iterations": int(proj.info.get("iterations", 0)),
                 "stop_reason": str(proj.info.get("stop_reason", "")), "detector": proj.info.get("detector"),
                 "algorithm": str(proj.info.get("algorithm", "")),  # the chain the default picked
                 "position_changes": proj.info.get("position_changes"),  # None where none moved
                 # the last stage's moving average was returned (ptycho.ConvergenceOptions.average)
                 "object_averaged": bool(proj.info.get("object_averaged", False)),
                 # weighted ring by ring by its split-half FRC (ptycho.PtychoOptions.frc_weighting)
                 "frc_weighted": bool(proj.info.get("frc_weighting")),
                 # "share" where the data show a detector background (ptycho.BackgroundOptions)
                 "background_projection": proj.info.get("background_projection"),
                 # the model's grid (ptycho.PtychoOptions.oversample; the results on the detector's)
                 "oversample": int(proj.info.get("oversample", 1))},
    }


def detector_summary(report: dict) -> str:
    """One line of what detector cleaning did to a scan (``Projection.info["detector"]``)."""
    from ..ptycho.detector import DetectorReport

    return DetectorReport.from_dict(report).summary()


def detector_totals(reports: list) -> dict:
    """What detector cleaning did over all scans: scans touched, frames dropped, pixels masked,
    negative counts clipped (the stage summary and the report)."""
    reports = [r for r in reports if r]
    return {"scans_with_defects": sum(1 for r in reports if r.get("dropped_frames") or r.get("masked_nonfinite")
                                      or r.get("masked_saturated") or r.get("negative_clipped")),
            "frames_dropped": sum(len(r.get("dropped_frames") or {}) for r in reports),
            "pixels_masked_nonfinite": sum(int(r.get("masked_nonfinite", 0)) for r in reports),
            "pixels_masked_saturated": sum(int(r.get("masked_saturated", 0)) for r in reports),
            "negative_counts_clipped": sum(int(r.get("negative_clipped", 0)) for r in reports)}


def _illuminated_half_extent(positions_m: np.ndarray, probe: np.ndarray, pixel_m: float,
                             object_shape: tuple[int, int], level: float = 0.5) -> tuple[float, float]:
    """Half-sizes (y, x) in metres of the largest box, centred on the object, that is well lit.

    The illumination Σ_j |P(r − r_j)|² (probe intensity summed over modes, placed at every scan
    position) is computed on the object grid; "well lit" is at least ``level`` of its maximum.
    Outside that, overlap is too thin for a trustworthy reconstruction (the raster's edge
    artefacts live there), so later stages never see it.
    """
    ny, nx = object_shape
    if probe.size == 0:
        span = np.abs(positions_m).max(axis=0)
        return float(max(span[0], pixel_m)), float(max(span[1], pixel_m))
    inten = (np.abs(probe) ** 2).sum(axis=0).astype(np.float64)
    ph, pw = inten.shape
    lit = np.zeros((ny + ph, nx + pw))
    centre = np.array([ny // 2, nx // 2])  # position 0 sits at the object's centre pixel
    for y0, x0 in np.rint(positions_m / pixel_m).astype(int) + centre - np.array([ph // 2, pw // 2]):
        if 0 <= y0 and 0 <= x0 and y0 + ph <= lit.shape[0] and x0 + pw <= lit.shape[1]:
            lit[y0:y0 + ph, x0:x0 + pw] += inten  # one patch per position: n_frames small adds
    # smoothed over ~the raster's coarse structure: the rings of a zone-plate probe (central stop)
    # leave narrow dips between positions that the overlap of neighbours fills in
    lit = ndimage.gaussian_filter(lit[:ny, :nx], 2.0)
    good = lit >= level * lit.max()
    cy, cx = centre
    hy, hx = min(cy, ny - 1 - cy), min(cx, nx - 1 - cx)
    # shrink the box until at least 90 % of each of its edges is lit (holes inside cannot be
    # cropped away and are left to the OD stage's mask)
    while hy > 0 and hx > 0:
        row_bad = min(good[cy - hy, cx - hx:cx + hx + 1].mean(), good[cy + hy, cx - hx:cx + hx + 1].mean()) < 0.9
        col_bad = min(good[cy - hy:cy + hy + 1, cx - hx].mean(), good[cy - hy:cy + hy + 1, cx + hx].mean()) < 0.9
        if not (row_bad or col_bad):
            break
        hy -= row_bad
        hx -= col_bad
    return float(max(hy, 1) * pixel_m), float(max(hx, 1) * pixel_m)


def probe_frame_shifts(probes: list[np.ndarray], upsample: int = 100, max_px: float = 1.0) -> np.ndarray:
    """Per scan: the shift (dy, dx), pixels, that brings its reconstructed probe onto the scans' mean
    probe, ``(n_scans, 2)`` (zeros for scans without a probe).

    Far-field data do not fix where a reconstruction puts its frame: a probe ``P(r − d)`` with an
    object ``O(r − d)`` gives the same diffraction patterns as ``P(r)`` with ``O(r)`` (the exit
    wave only moves, which changes no intensity). Each scan's solver drifts a little along this
    freedom, so its object sits a fraction of a pixel off where its positions put it, by a
    different amount in every scan: to the alignment that is misalignment, which it follows, and
    the volume's error grows by it. Every scan of one energy is lit by the same optics, so the
    drift is measured on the probe (the modes' summed intensity, registered to the mean of all
    scans by upsampled cross-correlation) and undone on the object (:func:`shift_transmission`).
    A shift over ``max_px`` is not such a drift (a probe that changed, or a failed scan) and is
    left at zero.
    """
    from skimage.registration import phase_cross_correlation

    amps = [np.sqrt((np.abs(p) ** 2).sum(axis=0)) if p.size else None for p in probes]
    have = [a for a in amps if a is not None]
    out = np.zeros((len(probes), 2))
    if len(have) < 2 or len({a.shape for a in have}) != 1:
        return out
    ref = np.mean(have, axis=0).astype(np.float64)
    for i, a in enumerate(amps):
        if a is not None:
            shift, _, _ = phase_cross_correlation(ref, a.astype(np.float64), upsample_factor=upsample,
                                                  normalization=None)
            out[i] = shift if np.abs(shift).max() <= max_px else 0.0
    return out


def shift_transmission(t: np.ndarray, shift_px) -> np.ndarray:
    """Complex transmission (oy, ox) moved by ``shift_px`` (dy, dx) pixels, by an exact Fourier shift
    (periodic: what wraps round is the unlit margin, which the tilt-series stage crops away)."""
    if not np.any(np.asarray(shift_px)):
        return t
    spectrum = ndimage.fourier_shift(np.fft.fft2(t), shift_px)
    return np.fft.ifft2(spectrum).astype(np.complex64)


def frc_indices(n_angles: int, n_frc: int) -> set[int]:
    """Which of ``n_angles`` projections get a split-half FRC: ``n_frc`` evenly spaced ones, away
    from the ends of the tilt range (high tilts image a thicker sample), the middle one included
    when ``n_frc`` is odd.

    >>> sorted(frc_indices(31, 3)), sorted(frc_indices(31, 1)), sorted(frc_indices(2, 5))
    ([8, 15, 23], [15], [0, 1])
    """
    if n_frc >= n_angles:
        return set(range(n_angles))
    return {int(i) for i in np.floor(np.linspace(0, n_angles - 1, n_frc + 2)[1:-1] + 0.5)}


def _submit_all(ctx: RunContext, jobs, read_opts, bar, n_done: int, n_total: int) -> None:
    """Reconstruct ``jobs`` (key, ref, energy, options) as Dask tasks, saving each as it ends."""
    from distributed import as_completed

    from .cluster import collect_unit, submit_unit

    futures = {}
    for key, r, _, opts in jobs:  # compute.shared_storage: the task saves its own result (cluster.py)
        futures[submit_unit(ctx, "ptycho", key, reconstruct_scan_file, r.path, read_opts, opts)] = (key, r, opts)
    n = n_done
    for fut in as_completed(list(futures)):
        key, r, opts = futures[fut]
        meta = collect_unit(ctx, "ptycho", key, fut)
        n += 1
        bar(n, n_total)
        frc_text = (f"; FRC {meta['resolution_m'] * 1e9:.1f} nm" if meta["resolution_m"] is not None
                    and np.isfinite(meta["resolution_m"]) else "")
        averaged = (", averaged" if meta.get("object_averaged") else "") + (
            ", FRC-weighted" if meta.get("frc_weighted") else "") + (
            f", on a grid {meta['oversample']}× finer" if meta.get("oversample", 1) > 1 else "")
        stop = (f"; stopped after {meta['iterations']} iterations ({meta['stop_reason']}{averaged})"
                if meta.get("stop_reason") else "")
        det = meta.get("detector") or {}
        det_text = ""
        if det and (det.get("dropped_frames") or det.get("masked_nonfinite") or det.get("masked_saturated")
                    or det.get("negative_clipped")):
            det_text = "; detector: " + detector_summary(det)
        chain = meta.get("algorithm") or opts["algorithm"]
        moves = meta.get("position_changes")
        moved = f"; positions refined by {moves['rms_px']:.2f} px RMS" if moves else ""
        shared = "; the background takes its share of the counts" if meta.get("background_projection") == "share" else ""
        ctx.log(f"ptycho: {r.path} ({r.angle_deg:g}°, {r.energy_ev:g} eV, {chain}) "
                f"done{frc_text}{stop}{moved}{shared}{det_text}")


def mixed_background_note(rules: list, energy: float) -> str | None:
    """A warning line where the scans of one energy disagree on the background rule (the
    projection's "auto" decides per scan, ``ptycho.BackgroundOptions``), else None.

    >>> mixed_background_note(["share", "share"], 708.2) is None
    True
    >>> print(mixed_background_note(["share", "subtract", "share"], 708.2))
    ptycho: warning: at 708.2 eV the scans' background rules differ (share 2, subtract 1): their projections are not made alike; set ptycho.background_projection = "share" or "subtract" to make them so
    """
    share, subtract = rules.count("share"), rules.count("subtract")
    if not share or not subtract:
        return None
    return (f"ptycho: warning: at {energy:g} eV the scans' background rules differ (share {share}, subtract "
            f"{subtract}): their projections are not made alike; set ptycho.background_projection = \"share\" "
            f"or \"subtract\" to make them so")


def run_ptycho(ctx: RunContext) -> dict:
    """Reconstruct every scan not yet done with ``ptycho.algorithm`` ("default":
    ``chemtomo.ptycho.DEFAULT_ALGORITHM``, the same chain as ``chemtomo ptycho`` and
    ``ptycho.reconstruct``); stack the results per energy into the store."""
    from ..ptycho import DEFAULT_ALGORITHM

    cfg = ctx.config.ptycho
    plan = plan_object_shapes(ctx)
    groups = group_by_energy(ctx.refs)
    read_opts = _read_options(ctx)
    if "mask_file" in read_opts:  # a bad mask file fails here, once, before any task starts
        from ..io import read_detector_mask

        for energy, p in plan.items():
            read_detector_mask(read_opts["mask_file"], p["frame_shape"])
    chosen = DEFAULT_ALGORITHM if cfg.algorithm.strip().lower() == "default" else cfg.algorithm

    def job(r, energy, chain, frc):
        opts = {"algorithm": chain, "n_modes": cfg.n_modes, "background": cfg.background,
                "refine_positions": cfg.refine_positions, "background_projection": cfg.background_projection,
                "object_shape": plan[energy]["object_shape"],
                "frc": frc, "seed": 0, "saturation": cfg.saturation or None, "frc_weighting": cfg.frc_weighting}
        if cfg.oversample != 0:  # only then in the key: stores made before the option keep their finished scans
            opts["oversample"] = cfg.oversample
        return stable_hash(file_fingerprint(r.path), opts, read_opts), r, energy, opts

    with_frc = {energy: frc_indices(len(refs), cfg.frc_angles) for energy, refs in groups.items()}
    jobs = [job(r, energy, chosen, cfg.frc or i in with_frc[energy])
            for energy, refs in groups.items() for i, r in enumerate(refs)]
    bar = ctx.progress("ptychography (scans)")
    done = {key for key, *_ in jobs if ctx.store.load_partial("ptycho", key) is not None}
    resumed = len(done)
    todo = [j for j in jobs if j[0] not in done]
    bar(len(done), len(jobs))
    if done:
        ctx.log(f"ptycho: {len(done)} of {len(jobs)} scans already reconstructed; resuming")
    if todo:
        _submit_all(ctx, todo, read_opts, bar, len(done), len(jobs))

    arrays, array_attrs, frc_arrays = {}, {}, {}
    resolutions = {}
    for energy, refs in groups.items():
        ek = energy_key(energy)
        keys = [j[0] for j in jobs if j[2] == energy]
        parts = [ctx.store.load_partial("ptycho", k) for k in keys]
        # each scan's frame drift (probe and object moved together) undone: probe_frame_shifts
        drift = probe_frame_shifts([p[0]["probe"] for p in parts])
        stack = np.stack([shift_transmission(p[0]["transmission"], d) for p, d in zip(parts, drift)]
                         ).astype(np.complex64)
        metas = [p[1] for p in parts]
        arrays[ek] = stack
        res = np.array([m["resolution_m"] if m["resolution_m"] is not None else np.nan for m in metas])
        array_attrs[ek] = {"angles_deg": [r.angle_deg for r in refs], "energy_eV": energy, "algorithm": chosen,
                           "pixel_m": metas[0]["pixel_m"], "frc_resolution_m": res,
                           "final_error": [float(p[0]["errors"][-1]) if p[0]["errors"].size else None
                                           for p in parts],
                           "sources": [r.path for r in refs],
                           "detector": [m.get("detector") for m in metas],
                           # how far refinement moved each scan's positions (px; None: not refined)
                           "position_changes": [m.get("position_changes") for m in metas],
                           # the scan's object is its last stage's moving average (converged PIE/RAAR/DM)
                           "object_averaged": [bool(m.get("object_averaged", False)) for m in metas],
                           # the scan's object weighted by its split-half FRC (the low-dose chain)
                           "frc_weighted": [bool(m.get("frc_weighted", False)) for m in metas],
                           # the model's grid per scan (ptycho.PtychoOptions.oversample; 2 where the
                           # detector's was model-limited and the finer one fitted better)
                           "oversample": [int(m.get("oversample", 1)) for m in metas],
                           # the modulus projection's background rule per scan ("subtract", "share")
                           "background_projection": [m.get("background_projection") for m in metas],
                           "probe_drift_px": (-drift).tolist()}
        note = mixed_background_note(array_attrs[ek]["background_projection"], energy)
        if note:
            ctx.log(note)
        halves = np.array([_illuminated_half_extent(p[0]["positions_m"], p[0]["probe"], metas[0]["pixel_m"],
                                                    p[0]["transmission"].shape) for p in parts])
        array_attrs[ek]["illuminated_half_extent_m"] = halves.min(axis=0).tolist()
        # the stored curve: the projection whose resolution is nearest the median (the typical one)
        j = int(np.nanargmin(np.abs(res - np.nanmedian(res)))) if np.isfinite(res).any() else 0
        frc_arrays[f"{ek}_frequency_per_m"] = parts[j][0]["frc_frequency_per_m"]
        frc_arrays[f"{ek}_correlation"] = parts[j][0]["frc_correlation"]
        frc_arrays[f"{ek}_threshold"] = parts[j][0]["frc_threshold"]
        resolutions[ek] = float(np.nanmedian(res)) if np.isfinite(res).any() else float("nan")
    ctx.store.write_group("projections", arrays, attrs={"energies_eV": list(groups)}, array_attrs=array_attrs)
    ctx.store.write_group("resolution/frc", frc_arrays, attrs={"median_resolution_m": resolutions,
                                                               "threshold": "half-bit"})
    detector = detector_totals([d for ek in array_attrs for d in array_attrs[ek]["detector"]])
    summary = {"scans": len(jobs), "resumed": resumed, "algorithm": chosen, "detector": detector,
               "frc_nm": {k: round(v * 1e9, 2) for k, v in resolutions.items()}}
    return summary
