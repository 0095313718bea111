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

__all__ = ["run_ptycho", "plan_object_shapes", "reconstruct_scan_file", "frc_indices"]


def _read_options(ctx: RunContext) -> dict:
    i = ctx.config.input
    return {"swap_xy": i.swap_xy, "flip_x": i.flip_x, "flip_y": i.flip_y,
            "angle_key": i.angle_key or None}


def plan_object_shapes(ctx: RunContext) -> dict[float, dict]:
    """Per energy: object pixel size and one object array shape that holds every scan."""
    opts = {k: v for k, v in _read_options(ctx).items() if k != "angle_key"}
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
    from ..ptycho import reconstruct

    scan = read_scan(path, **read_options)
    with one_core():
        proj = reconstruct(scan, **recon_options)
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
                 "n_frames": scan.n_frames},
    }


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


def frc_score_m(meta: dict, result: dict) -> float:
    """A split-half FRC as one number for comparing chains, metres (lower is better): the
    half-period at the ½-bit crossing; the Nyquist half-period when the correlation stays above
    the threshold at every frequency; +inf when there is no usable curve (a failed half)."""
    res = meta.get("resolution_m")
    if res is not None and np.isfinite(res):
        return float(res)
    f, c, t = (np.asarray(result[k], float) for k in ("frc_frequency_per_m", "frc_correlation", "frc_threshold"))
    if f.size and np.all(np.isfinite(c)) and np.all(c >= t):
        return float(1.0 / (2.0 * f.max()))
    return float("inf")


def choose_chain(scores: dict[str, list[float]]) -> str:
    """The chain with the lowest median FRC score (``frc_score_m``); ties go to the first given.

    >>> choose_chain({"mPIE:5,ePIE:45": [12e-9, 13e-9], "RAAR:50": [10e-9, 11e-9]})
    'RAAR:50'
    """
    best, best_score = None, np.inf
    for chain, values in scores.items():
        score = float(np.median(values)) if values else np.inf
        if best is None or score < best_score:
            best, best_score = chain, score
    return best


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
        ctx.log(f"ptycho: {r.path} ({r.angle_deg:g}°, {r.energy_ev:g} eV, {opts['algorithm']}) done{frc_text}")


def run_ptycho(ctx: RunContext) -> dict:
    """Reconstruct every scan not yet done; stack the results per energy into the store.

    With ``ptycho.algorithm = "auto"`` the FRC scans (``frc_indices``) are reconstructed first
    with every chain of ``ptycho.AUTO_CHAINS``; the chain with the best median split-half FRC
    over them (all energies together, so every energy is processed alike) reconstructs the rest.
    """
    from ..ptycho import AUTO_CHAINS

    cfg = ctx.config.ptycho
    plan = plan_object_shapes(ctx)
    groups = group_by_energy(ctx.refs)
    read_opts = _read_options(ctx)
    chains = tuple(AUTO_CHAINS) if cfg.algorithm.strip().lower() == "auto" else (cfg.algorithm,)

    def job(r, energy, chain, frc):
        opts = {"algorithm": chain, "n_modes": cfg.n_modes, "background": cfg.background,
                "refine_positions": cfg.refine_positions, "object_shape": plan[energy]["object_shape"],
                "frc": frc, "seed": 0}
        return stable_hash(file_fingerprint(r.path), opts, read_opts), r, energy, opts

    with_frc = {energy: frc_indices(len(refs), cfg.frc_angles) for energy, refs in groups.items()}
    n_scans = sum(len(refs) for refs in groups.values())
    trial = [job(r, energy, chain, True) for chain in chains for energy, refs in groups.items()
             for i, r in enumerate(refs) if cfg.frc or i in with_frc[energy]] if len(chains) > 1 else []
    trial_keys = {key for key, *_ in trial}
    n_total = len(trial) + n_scans - len(trial) // len(chains)  # the chosen chain's trials are reused
    bar = ctx.progress("ptychography (scans)")
    # what an earlier, stopped run finished (the summary's "resumed"), before this run adds to it
    finished_before = {key for key in trial_keys if ctx.store.load_partial("ptycho", key) is not None}
    chosen, auto = chains[0], None
    if trial:
        bar(len(finished_before), n_total)
        if finished_before:
            ctx.log(f"ptycho: {len(finished_before)} of {len(trial)} trial reconstructions already done; resuming")
        _submit_all(ctx, [j for j in trial if j[0] not in finished_before], read_opts, bar,
                    len(finished_before), n_total)
        scores = {c: [] for c in chains}
        for key, _, _, opts in trial:
            result, meta = ctx.store.load_partial("ptycho", key)
            scores[opts["algorithm"]].append(frc_score_m(meta, result))
        chosen = choose_chain(scores)
        medians = {c: float(np.median(v)) for c, v in scores.items()}
        auto = {c: round(v * 1e9, 2) if np.isfinite(v) else None for c, v in medians.items()}
        ctx.log(f"ptycho: algorithm auto chose {chosen} (median split-half FRC of {len(trial) // len(chains)} "
                f"scans, nm: {auto})")
    jobs = [job(r, energy, chosen, cfg.frc or i in with_frc[energy])
            for energy, refs in groups.items() for i, r in enumerate(refs)]
    done = {key for key, *_ in jobs if ctx.store.load_partial("ptycho", key) is not None}
    resumed = len((done - trial_keys) | (done & finished_before))
    todo = [j for j in jobs if j[0] not in done]
    n_before = len(trial) + len(done - trial_keys)
    bar(n_before, n_total)
    if done and not trial:
        ctx.log(f"ptycho: {len(done)} of {len(jobs)} scans already reconstructed; resuming")
    if todo:
        _submit_all(ctx, todo, read_opts, bar, n_before, n_total)

    arrays, array_attrs, frc_arrays = {}, {}, {}
    resolutions = {}
    for energy, refs in groups.items():
        ek = energy_key(energy)
        keys = [j[0] for j in jobs if j[2] == energy]
        parts = [ctx.store.load_partial("ptycho", k) for k in keys]
        stack = np.stack([p[0]["transmission"] for p in parts]).astype(np.complex64)
        metas = [p[1] for p in parts]
        arrays[ek] = stack
        res = np.array([m["resolution_m"] if m["resolution_m"] is not None else np.nan for m in metas])
        array_attrs[ek] = {"angles_deg": [r.angle_deg for r in refs], "energy_eV": energy, "algorithm": chosen,
                           "pixel_m": metas[0]["pixel_m"], "frc_resolution_m": res,
                           "final_error": [float(p[0]["errors"][-1]) if p[0]["errors"].size else None
                                           for p in parts],
                           "sources": [r.path for r in refs]}
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
    summary = {"scans": len(jobs), "resumed": resumed, "algorithm": chosen,
               "frc_nm": {k: round(v * 1e9, 2) for k, v in resolutions.items()}}
    if auto is not None:
        summary["auto_frc_nm"] = auto
    return summary
