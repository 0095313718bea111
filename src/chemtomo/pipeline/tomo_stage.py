"""Stages `tiltseries`, `align`, `recon` and `fsc`: from projections to OD volumes.

- tiltseries: OD (and phase) of every projection, cropped to the area the probe lit in every
  scan, every energy resampled onto the reference energy's pixel grid (pixel sizes differ with
  the wavelength), one shape for all.
- align: chemtomo.align on the OD tilt series of all energies together.
- recon: each energy's aligned tilt series reconstructed in blocks of slices (slices along the
  rotation axis are independent in parallel-beam geometry), one Dask task per block, each saved
  as it finishes so that a killed run resumes. Stored as linear absorption μ = OD/voxel (1/m).
- fsc: the split-half FSC at the reference energy (odd and even angles reconstructed apart).
"""

from __future__ import annotations

import os

import numpy as np

from ..io.store import energy_key
from .context import RunContext, StageSkipped, stable_hash

__all__ = ["run_tiltseries", "run_align", "run_recon", "run_fsc", "load_tilts", "load_alignment"]


def _energies(ctx: RunContext) -> list[float]:
    return [float(e) for e in ctx.store.group_attrs("projections")["energies_eV"]]


def _reference_energy(ctx: RunContext, mean_od: dict[float, float]) -> float:
    """The configured energy, else the lowest one with at least half the strongest mean OD.

    The reference sets the common pixel grid, anchors the alignment and is where the FSC is
    measured, so it must carry signal: a pre-edge energy (weak absorption) is passed over.
    """
    ref = ctx.config.align.reference_energy
    energies = sorted(mean_od)
    if ref:
        return min(energies, key=lambda e: abs(e - ref))
    strongest = max(mean_od.values())
    return next(e for e in energies if mean_od[e] >= 0.5 * strongest)


#: Energies whose optical density the tiltseries stage computes at once (threads).
OD_THREADS = 2


def run_tiltseries(ctx: RunContext) -> dict:
    from ..align.energies import resample_to_reference
    from ..chem import optical_density

    energies = _energies(ctx)
    attrs = {e: ctx.store.array_attrs(f"projections/{energy_key(e)}") for e in energies}
    # complex transmissions (ptychography, CXI images) or OD already (full-field input, ingest_stage)
    given_od = ctx.store.group_attrs("projections").get("quantity") == "od"
    bar = ctx.progress("optical density")
    ods, phases = {}, {}

    def convert(e):
        stack = ctx.store.read(f"projections/{energy_key(e)}")
        if given_od:
            return e, np.asarray(stack, np.float32), None
        od, phase = optical_density(stack, return_phase=True)
        return e, np.asarray(od, np.float32), np.asarray(phase, np.float32)

    # energies side by side on this machine's cores: NumPy's array operations release the GIL, and
    # each energy's result does not depend on the others (paper preset, two energies: 3.8–4.1 s of
    # optical density one after the other, 2.1–2.3 s side by side). At most OD_THREADS at once.
    # ``optical_density`` works on a few images at a time, so a thread's temporaries are small:
    # the paper preset's stage peaks at 0.8 GiB (2.1 GiB when each held ten temporaries the size
    # of its stack), most of it the stacks and their results.
    from concurrent.futures import ThreadPoolExecutor

    cores = ctx.config.compute.workers or os.cpu_count() or 1  # as the local cluster counts them
    threads = max(1, min(len(energies), cores, OD_THREADS))
    with ThreadPoolExecutor(threads, thread_name_prefix="chemtomo-od") as pool:
        for k, (e, od, phase) in enumerate(pool.map(convert, energies)):
            ods[e], phases[e] = od, phase
            bar(k + 1, len(energies))
    ref_e = _reference_energy(ctx, {e: float(np.nanmean(od)) for e, od in ods.items()})
    ref_pixel = attrs[ref_e]["pixel_m"]
    # the common field: the smallest lit half-extent over all energies, in metres
    half = np.min([attrs[e]["illuminated_half_extent_m"] for e in energies], axis=0)
    out_shape = tuple(int(2 * np.floor(h / ref_pixel)) for h in half)
    arrays, array_attrs, negatives = {}, {}, {}
    for e in energies:
        od, phase = ods.pop(e), phases.pop(e)
        negatives[energy_key(e)] = round(float(np.mean(od < 0)), 3)
        zoom = ref_pixel / attrs[e]["pixel_m"]  # output pixel (ref size) in input pixels
        # cubic: the chemistry is a voxel-by-voxel ratio of energies, bilinear would blur one more
        arrays[energy_key(e)] = resample_to_reference(np.nan_to_num(od), zoom, out_shape=out_shape, order=3)
        array_attrs[energy_key(e)] = {"angles_deg": attrs[e]["angles_deg"], "energy_eV": e, "kind": "od",
                                      "pixel_m": ref_pixel, "native_pixel_m": attrs[e]["pixel_m"]}
        if phase is not None:
            arrays[f"phase_{energy_key(e)}"] = resample_to_reference(np.nan_to_num(phase), zoom,
                                                                     out_shape=out_shape, order=3)
            array_attrs[f"phase_{energy_key(e)}"] = dict(array_attrs[energy_key(e)], kind="phase")
    ctx.store.write_group("tiltseries", arrays, attrs={"energies_eV": energies, "reference_energy_eV": ref_e,
                                                       "pixel_m": ref_pixel},
                          array_attrs=array_attrs)
    return {"shape": list(arrays[energy_key(ref_e)].shape), "pixel_nm": round(ref_pixel * 1e9, 3),
            "negative_od_share": negatives}


def load_tilts(ctx: RunContext) -> tuple[dict[float, np.ndarray], np.ndarray, float]:
    """OD tilt series per energy, their angles (degrees) and pixel size (m)."""
    a = ctx.store.group_attrs("tiltseries")
    tilts = {float(e): ctx.store.read(f"tiltseries/{energy_key(e)}") for e in a["energies_eV"]}
    angles = np.asarray(ctx.store.array_attrs(f"tiltseries/{energy_key(a['energies_eV'][0])}")["angles_deg"])
    return tilts, angles, float(a["pixel_m"])


def run_align(ctx: RunContext) -> dict:
    from ..align import ReprojectionOptions, align

    cfg = ctx.config.align
    tilts, angles, pixel = load_tilts(ctx)
    ref_e = float(ctx.store.group_attrs("tiltseries")["reference_energy_eV"])
    n = len(angles)
    if cfg.method == "none":
        result = None
        arrays = {"shifts_px": np.zeros((n, 2)), "rotation_deg": np.zeros(n), "scale": np.ones(n)}
        offsets = {energy_key(e): [0.0, 0.0] for e in tilts}
        attrs = {"method": "none", "excluded": {}, "energy_offsets_px": offsets,
                 "energy_pixel_ratio": {energy_key(e): 1.0 for e in tilts}}
    else:
        bar = ctx.progress("alignment (iterations)")
        seen = [0, cfg.iterations]

        def progress(done, total):
            seen[:] = [done, total]
            bar(done, total)

        options = ReprojectionOptions(recon_iterations=cfg.recon_iterations, binned_iterations=cfg.binned_iterations,
                                      residual_rtol=cfg.residual_rtol)
        result = align(tilts, angles, reference_energy=ref_e, method=cfg.method, iterations=cfg.iterations,
                       algorithm=cfg.algorithm, tol_px=cfg.tol_px, similarity=cfg.similarity, options=options,
                       progress=progress,
                       estimate_energy_scale={"auto": "auto", "on": True, "off": False}[cfg.energy_scale],
                       # on a cluster (compute.scheduler) the loop's reconstructions and registrations are
                       # Dask tasks; locally the compiled kernels already use every core in this process
                       client=ctx.client if ctx.config.compute.scheduler else None)
        bar(seen[0], seen[0])  # converged early: the bar ends where the iterations did
        arrays = {"shifts_px": np.asarray(result.shifts_px, np.float64),
                  "rotation_deg": np.asarray(result.rotation_deg, np.float64),
                  "scale": np.asarray(result.scale, np.float64)}
        hist = list(result.history)
        if hist:
            arrays["residual_history"] = np.array([np.asarray(h.residual, np.float64) for h in hist])
            arrays["max_update_history_px"] = np.array([float(h.max_update_px) for h in hist])
        offsets = {energy_key(e): np.asarray(v, float).tolist() for e, v in result.energy_offsets_px.items()}
        attrs = {"method": result.method, "excluded": {str(k): v for k, v in result.excluded.items()},
                 "unconverged": {str(k): v for k, v in result.unconverged.items()},
                 "energy_offsets_px": offsets,
                 "energy_pixel_ratio": {energy_key(e): float(result.energy_pixel_ratio.get(e, 1.0)) for e in tilts}}
        if result.energy_registration is not None:
            attrs["energy_registration"] = result.energy_registration.as_attrs()
    attrs.update(reference_energy_eV=ref_e, angles_deg=angles.tolist())
    ctx.store.write_group("alignment", arrays, attrs=attrs)
    resid = arrays.get("residual_history")
    return {"method": attrs["method"], "excluded": len(attrs["excluded"]),
            "final_residual": (float(np.mean(resid[-1])) if resid is not None else None),
            "iterations": (len(resid) - 1 if resid is not None else 0)}


def load_alignment(ctx: RunContext):
    """The stored alignment as a chemtomo.align.Alignment."""
    from ..align import Alignment

    g = ctx.store.group_attrs("alignment")
    tilts_attrs = ctx.store.group_attrs("tiltseries")
    offsets = {float(e): np.asarray(v, float) for e, v in g["energy_offsets_px"].items()}
    ratios = {float(e): float(v) for e, v in g.get("energy_pixel_ratio", {}).items()}
    return Alignment(energy_pixel_ratio=ratios, shifts_px=ctx.store.read("alignment/shifts_px"),
                     rotation_deg=ctx.store.read("alignment/rotation_deg"),
                     scale=ctx.store.read("alignment/scale"), energy_offsets_px=offsets,
                     angles_deg=np.asarray(g["angles_deg"]),
                     reference_energy=float(tilts_attrs["reference_energy_eV"]),
                     excluded={int(k): v for k, v in g.get("excluded", {}).items()},
                     method=g.get("method", ""))


def aligned_tilts(ctx: RunContext) -> tuple[dict[float, np.ndarray], np.ndarray, float]:
    """Aligned OD tilt series per energy with excluded projections removed, angles, pixel size."""
    from ..align import apply

    tilts, angles, pixel = load_tilts(ctx)
    al = load_alignment(ctx)
    keep = np.array([i not in al.excluded for i in range(len(angles))])
    out = {e: np.ascontiguousarray(apply(t, al, e)[keep], dtype=np.float32) for e, t in tilts.items()}
    return out, angles[keep], pixel


def _recon_block(block: np.ndarray, angles: np.ndarray, options: dict) -> np.ndarray:
    """One Dask task: reconstruct a block of slices, on one core (``core.fft.one_core``: the tasks
    are the parallel unit, one per worker thread; a task whose kernels also asked for every core
    would share each with the other tasks' threads). The same bits on any number of threads."""
    from ..core.fft import one_core
    from ..tomo import reconstruct

    with one_core():
        return np.asarray(reconstruct(block, angles, **options), np.float32)


def run_recon(ctx: RunContext) -> dict:
    from distributed import as_completed

    from ..align.cluster import _threads
    from ..tomo.operator import slice_blocks
    from .cluster import collect_unit, submit_unit

    cfg = ctx.config.tomo
    tilts, angles, pixel = aligned_tilts(ctx)
    options = {"algorithm": cfg.algorithm, "iterations": cfg.iterations, "nonneg": cfg.nonneg}
    jobs = []
    threads = _threads(ctx.client)
    for e, t in tilts.items():
        ny = t.shape[1]
        for y0, y1 in slice_blocks(ny, len(tilts), threads, cfg.block_slices):
            block = t[:, y0:y1]
            key = stable_hash(energy_key(e), y0, y1, options, float(block.sum()), float((block ** 2).sum()),
                              angles.tolist())
            jobs.append((key, e, y0, y1))
    done = {j[0] for j in jobs if ctx.store.load_partial("recon", j[0]) is not None}
    bar = ctx.progress("reconstruction (blocks)")
    bar(len(done), len(jobs))
    if done:
        ctx.log(f"recon: {len(done)} of {len(jobs)} slice blocks already reconstructed; resuming")
    futures = {}
    for key, e, y0, y1 in jobs:
        if key in done:
            continue
        block = tilts[e][:, y0:y1]
        # compute.shared_storage: the task writes its block into the store itself (cluster.py)
        futures[submit_unit(ctx, "recon", key, _recon_block, block, angles, options)] = key
    n = len(done)
    for fut in as_completed(list(futures)):
        collect_unit(ctx, "recon", futures[fut], fut)
        n += 1
        bar(n, len(jobs))
    arrays = {}
    for e in tilts:
        blocks = [ctx.store.load_partial("recon", k)[0]["block"] for k, ee, _, _ in jobs if ee == e]
        arrays[energy_key(e)] = (np.concatenate(blocks, axis=0) / pixel).astype(np.float32)
    ctx.store.write_group("volumes", arrays,
                          attrs={"energies_eV": list(tilts), "voxel_m": pixel, "units": "linear absorption, 1/m",
                                 "algorithm": cfg.algorithm, "iterations": cfg.iterations, "nonneg": cfg.nonneg,
                                 "n_angles": int(len(angles))},
                          chunks={k: (min(16, v.shape[0]),) + v.shape[1:] for k, v in arrays.items()})
    shape = next(iter(arrays.values())).shape
    return {"shape": list(shape), "voxel_nm": round(pixel * 1e9, 3), "algorithm": cfg.algorithm,
            "iterations": cfg.iterations, "blocks": len(jobs), "resumed": len(done)}


def _blocks_on_workers(ctx: RunContext, algorithm: str):
    """A reconstruction for ``split_half_fsc`` that runs as the recon stage does: blocks of slices
    (``tomo.operator.slice_blocks``), one Dask task each on one core, the same values as one
    call (slices are independent problems). So the FSC's half volumes are made on the workers,
    not in the client, and scale with them."""
    from ..align.cluster import _threads
    from ..tomo.operator import slice_blocks
    from .cluster import scattered

    def reconstruct(half: np.ndarray, angles: np.ndarray, **options) -> np.ndarray:
        options = {"algorithm": algorithm, **options}
        futures = [ctx.client.submit(_recon_block, *scattered(ctx.client, (np.ascontiguousarray(half[:, y0:y1]),)),
                                     angles, options, pure=False)
                   for y0, y1 in slice_blocks(half.shape[1], 1, _threads(ctx.client))]
        return np.concatenate([f.result() for f in futures], axis=0)
    return reconstruct


def run_fsc(ctx: RunContext) -> dict:
    from ..resolution import split_half_fsc

    cfg = ctx.config
    if not cfg.resolution.fsc:
        raise StageSkipped("[resolution] fsc = false")
    tilts, angles, pixel = aligned_tilts(ctx)
    ref_e = float(ctx.store.group_attrs("tiltseries")["reference_energy_eV"])
    if min(tilts[ref_e].shape[1:]) < 4:  # e.g. a 2-row full-field stack: no 3D correlation curve
        raise StageSkipped(f"the tilt series has {tilts[ref_e].shape[1]} rows × {tilts[ref_e].shape[2]} columns; "
                           "a split-half FSC needs at least 4 of each")
    reconstruct = cfg.tomo.algorithm if ctx.client is None else _blocks_on_workers(ctx, cfg.tomo.algorithm)
    curve, _, _ = split_half_fsc(tilts[ref_e], angles, pixel, reconstruct=reconstruct,
                                 options={"iterations": cfg.tomo.iterations, "nonneg": cfg.tomo.nonneg},
                                 threshold=cfg.resolution.threshold)
    ctx.store.write_group("resolution/fsc", {
        "frequency_per_m": np.asarray(curve.frequency_per_m), "correlation": np.asarray(curve.correlation),
        "threshold": np.asarray(curve.threshold),
        "n_per_shell": np.asarray(curve.n_per_shell if curve.n_per_shell is not None else []),
    }, attrs={"resolution_m": curve.resolution_m, "energy_eV": ref_e, "threshold": cfg.resolution.threshold,
              "voxel_m": pixel})
    return {"resolution_nm": round(curve.resolution_m * 1e9, 2) if np.isfinite(curve.resolution_m) else None,
            "energy_eV": ref_e}
