"""Stages `chem` and `particles`: from μ volumes to a chemical map and a particle table.

- chem: the paper's per-voxel unmixing (equation 1) with the reference spectra at the measured
  energies (or, with ``chem.method = "joint"``, the phase volumes fitted directly to the aligned
  tilt series, :mod:`.joint_chem`), the sample mask, FePO4 fraction, polar angle, phase classes, the bimodal fit, the
  state of charge with its uncertainty and, when a 2D XAS stack is given, its linear-combination
  fit compared with the 3D map projected along z. With a XANES stack (at least
  ``XANES_MIN_ENERGIES`` energies) also the per-voxel edge position and white-line energy
  (``chem/edge_energy``, ``chem/white_line_energy``, eV, NaN outside the sample).
- particles: segmentation of the density, per-particle measurements and activity statistics.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..io.store import energy_key, jsonable
from .context import RunContext, StageSkipped

__all__ = ["XANES_MIN_ENERGIES", "run_chem", "run_particles", "read_xas2d"]

#: From this many energies on, the chem stage also maps the edge position and white-line energy:
#: with fewer, the pre-edge, edge and post-edge cannot each hold enough energies.
XANES_MIN_ENERGIES = 8


def read_xas2d(path) -> tuple[np.ndarray, np.ndarray, float]:
    """A 2D XAS stack: (energies_eV, od (n_e, ny, nx), pixel_m)."""
    from ..io._h5 import open_h5

    with open_h5(path) as f:
        for key in ("energies_eV", "od", "pixel_m"):
            if key not in f:
                raise InputError(f"{path}: missing dataset /{key} (2D XAS stack: /energies_eV, /od, /pixel_m)")
        e = np.asarray(f["energies_eV"][()], np.float64)
        od = np.asarray(f["od"][()], np.float32)
        pixel = float(np.asarray(f["pixel_m"][()]).reshape(()))
    if od.ndim != 3 or od.shape[0] != e.size:
        raise InputError(f"{path}: /od has shape {od.shape}; expected ({e.size}, ny, nx), one image per energy")
    return e, od, pixel


def run_chem(ctx: RunContext) -> dict:
    from .. import chem

    cfg = ctx.config.chem
    vattrs = ctx.store.group_attrs("volumes")
    energies = [float(e) for e in vattrs["energies_eV"]]
    voxel = float(vattrs["voxel_m"])
    from .context import load_reference_spectra

    spectra = load_reference_spectra(ctx.config, ctx.references_path)
    phases = list(spectra)
    if len(energies) < len(phases):
        raise StageSkipped(f"{len(energies)} energy for {len(phases)} reference phases: unmixing needs at least "
                           "as many energies as phases (a single-energy series is ordinary tomography)")
    refs = chem.references_from_spectra(spectra, energies, max_gap_ev=cfg.max_reference_gap_ev)
    mus = np.stack([ctx.store.read(f"volumes/{energy_key(e)}") for e in energies])
    # volumes hold μ (1/m) and the references are μ (1/m): concentrations are volume fractions
    unmix_method = "exact" if cfg.method in ("two-step", "joint") else cfg.method
    method = unmix_method if (unmix_method != "exact" or len(energies) == len(phases)) else "lstsq"
    extra_attrs, extra_arrays = {}, {}
    if cfg.method == "joint":
        from .joint_chem import run_joint

        joint = run_joint(ctx, refs, energies, voxel)
        conc, density, mask, frac = joint.concentrations, joint.density, joint.mask, joint.fraction
        # the μ volumes the joint components predict, for the polar angle and the report's plot
        mus_model = np.einsum("ek,k...->e...", refs.astype(np.float32), conc)
        # noise of the μ volumes the components predict, from the empty region as for two-step (the
        # components are ≥ 0 there, so it is the spread of one-sided noise: a lower figure)
        sigmas = [chem.estimate_noise(m, ~mask) for m in mus_model]
        soc, soc_sigma = joint.soc, joint.soc_sigma
        extra_attrs["joint"] = joint.attrs
        extra_arrays["fraction_sigma"] = joint.sigma_fraction
        if cfg.compare:
            two = _two_step(chem, cfg, mus, refs, method)
            extra_arrays["two_step_fraction"] = two["fraction"]
            extra_arrays["fraction_difference"] = (frac - two["fraction"]).astype(np.float32)
            extra_attrs["two_step"] = {"method": method, "soc": two["soc"], "soc_sigma": two["soc_sigma"],
                                       "n_voxels": int(two["mask"].sum())}
        method = "joint"
    else:
        two = _two_step(chem, cfg, mus, refs, method)
        conc, density, mask, frac = two["conc"], two["density"], two["mask"], two["fraction"]
        mus_model = mus
        # noise of each μ volume from the empty region, propagated to the fraction
        sigmas = [chem.estimate_noise(m, ~mask) for m in mus]
        soc, soc_sigma = two["soc"], two["soc_sigma"]
    i1, i2 = _polar_pair(refs)
    polar = chem.polar_angle(mus_model[i1], mus_model[i2]).astype(np.float32)
    labels = chem.classify(frac, thresholds=tuple(cfg.thresholds))
    values = frac[np.isfinite(frac)]
    fit = chem.fit_bimodal(values) if values.size >= 10 else None
    shares = chem.class_fractions(labels)
    attrs = {"phases": phases, "energies_eV": energies, "references": refs.tolist(), "method": method,
             "thresholds": list(cfg.thresholds), "voxel_m": voxel, "soc": soc, "soc_sigma": soc_sigma,
             "noise_mu_per_m": [float(s) for s in sigmas], "class_fractions": jsonable(shares),
             "n_voxels": int(mask.sum()), "polar_energies_eV": [energies[i1], energies[i2]]}
    if fit is not None:
        attrs["bimodal"] = {"centres": np.asarray(fit.centres).tolist(),
                            "rms_widths": np.asarray(fit.rms_widths).tolist(),
                            "weights": np.asarray(fit.weights).tolist()}
    arrays = {"fraction": frac.astype(np.float32), "density": density, "polar": polar,
              "labels": np.asarray(labels, np.uint8)}
    if len(energies) >= XANES_MIN_ENERGIES:
        maps, attrs["xanes"] = _xanes_maps(chem, mus, energies, mask, refs, phases)
        arrays.update(maps)
    attrs.update(extra_attrs)
    arrays.update(extra_arrays)
    if ctx.xas2d_path is not None:
        v = _validate_2d(ctx, chem, frac, density, spectra, voxel, tuple(cfg.thresholds))
        arrays.update(v.pop("arrays"))
        attrs["validation_2d"] = v
    ctx.store.write_group("chem", arrays, attrs=attrs,
                          chunks={k: (min(16, a.shape[0]),) + a.shape[1:] for k, a in arrays.items() if a.ndim == 3})
    summary = {"soc": round(float(soc), 4), "soc_sigma": round(float(soc_sigma), 4), "voxels": int(mask.sum())}
    if attrs.get("xanes", {}).get("median_edge_eV") is not None:
        summary["edge_eV"] = round(attrs["xanes"]["median_edge_eV"], 2)
    if method == "joint":
        summary["method"] = "joint"
    if "validation_2d" in attrs:
        summary["xas2d_R<0.15"] = attrs["validation_2d"].get("share_r_below_0.15")
    return summary


def _xanes_maps(chem, mus, energies, mask, refs, phases) -> tuple[dict, dict]:
    """Edge position and white-line energy of every sample voxel's μ(E), and of the references.

    The noise σ is estimated from the pre/post-edge fits in the sample voxels (the empty ones of
    a reconstruction clipped to μ ≥ 0 would understate it); voxels whose edge step is below 5
    standard errors are NaN, as are voxels outside the sample mask. A stack whose
    energies do not allow the normalisation (e.g. no energy below the edge) is recorded in the
    attributes as ``skipped`` with the reason, and the maps are left out.
    """
    order = np.argsort(energies, kind="stable")
    e = np.asarray(energies, np.float64)[order]
    # in increasing energy; the stack itself where it already is (no copy of every volume)
    stack = mus if np.array_equal(order, np.arange(len(order))) else mus[order]
    try:
        nrm = chem.normalise_xanes(stack, e, noise_mask=mask)
        edge = chem.edge_position(stack, e, normalisation=nrm)
        white = chem.white_line_energy(stack, e, normalisation=nrm)
        ref_edge = chem.edge_position(refs[order], e, noise_sigma=0.0)
        ref_white = chem.white_line_energy(refs[order], e, noise_sigma=0.0)
    except InputError as exc:
        return {}, {"skipped": str(exc)}
    edge = np.where(mask, edge, np.nan).astype(np.float32)
    white = np.where(mask, white, np.nan).astype(np.float32)
    n_sample = int(mask.sum())

    def median(a):
        v = a[np.isfinite(a)]
        return float(np.median(v)) if v.size else None

    attrs = {"pre_edge_eV": list(nrm.pre_edge_ev), "post_edge_eV": list(nrm.post_edge_ev), "e0_eV": nrm.e0_ev,
             "noise_mu_per_m": nrm.noise, "n_edge": int(np.isfinite(edge).sum()),
             "n_white_line": int(np.isfinite(white).sum()), "n_sample_voxels": n_sample,
             "median_edge_eV": median(edge), "median_white_line_eV": median(white),
             "reference_edge_eV": {p: (float(v) if np.isfinite(v) else None) for p, v in zip(phases, ref_edge)},
             "reference_white_line_eV": {p: (float(v) if np.isfinite(v) else None) for p, v in zip(phases, ref_white)}}
    return {"edge_energy": edge, "white_line_energy": white}, attrs


def _two_step(chem, cfg, mus: np.ndarray, refs: np.ndarray, method: str) -> dict:
    """The paper's second step: per-voxel unmixing of the μ volumes, mask, fraction, SOC."""
    conc = chem.unmix(mus, refs, method=method)
    density = np.nansum(conc, axis=0).astype(np.float32)
    mask = chem.sample_mask(density, threshold=cfg.density_threshold or None)
    frac = chem.fraction(conc, mask=mask)
    # over the concentrations of the sample grown by a few voxels, not the fractions of the tight
    # mask (it drops the blurred rims, ~15 % of the mass, and clipped fractions bias towards 0.5),
    # nor every voxel (the empty volume holds the rectified noise of a clipped reconstruction)
    soc, soc_sigma = chem.state_of_charge(conc, mask=chem.soc_region(mask))
    return {"conc": conc, "density": density, "mask": mask, "fraction": frac, "soc": soc, "soc_sigma": soc_sigma}


def _polar_pair(refs: np.ndarray) -> tuple[int, int]:
    """The two energies of the correlation plot: where LiFePO4, then FePO4, absorbs most relative to
    the other (708.2 and 710.2 eV at the Fe L3 edge), whatever other energies (pre-edge…) were measured."""
    ratio = refs[:, 0] / np.maximum(refs[:, -1], 1e-30)
    i1, i2 = int(np.argmax(ratio)), int(np.argmin(ratio))
    return (i1, i2) if i1 != i2 else (0, min(1, len(refs) - 1))


def _on_grid(stack: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre (n, h, w) images in an (n, *shape) array: pad with 0 (air has OD 0) or crop."""
    n, h, w = stack.shape
    out = np.zeros((n, *shape), np.float32)
    sy, sx = min(h, shape[0]), min(w, shape[1])
    oy, ox = (shape[0] - sy) // 2, (shape[1] - sx) // 2
    iy, ix = (h - sy) // 2, (w - sx) // 2
    out[:, oy:oy + sy, ox:ox + sx] = stack[:, iy:iy + sy, ix:ix + sx]
    return out


def _validate_2d(ctx, chem, frac, density, spectra, voxel_m, thresholds) -> dict:
    """The paper's check: 2D XAS linear-combination fit against the 3D map projected along z.

    The 2D stack (taken at 0°) is resampled to the voxel size, centred on the volume's (y, x)
    grid and registered by translation to the projected density (the tomogram's frame is fixed
    by the alignment, up to a global shift), then compared by :func:`chemtomo.chem.validate_2d`.
    """
    from scipy import ndimage

    from ..align import register_translation

    energies, stack, pixel = read_xas2d(ctx.xas2d_path)
    if abs(pixel / voxel_m - 1) > 1e-3:
        stack = ndimage.zoom(stack, (1, pixel / voxel_m, pixel / voxel_m), order=1)
    stack = _on_grid(stack, (density.shape[0], density.shape[2]))
    dens2d = np.nansum(density, axis=1)
    shift = register_translation(dens2d, stack.sum(axis=0))
    stack = ndimage.shift(stack, (0, -shift[0], -shift[1]), order=1, mode="constant", cval=0.0)
    # one table on the union of the phases' energy grids: each phase interpolated linearly on it,
    # which keeps every phase's own rows, so the fit interpolates exactly as from each file
    ref_e = np.unique(np.concatenate([np.asarray(e, float) for e, _ in spectra.values()]))
    frame = {"energy_eV": ref_e, **{p: np.interp(ref_e, np.asarray(e, float), np.asarray(mu, float))
                                    for p, (e, mu) in spectra.items()}}
    v = chem.validate_2d(stack, energies, frame, frac, density, thresholds=thresholds)
    stats = {k: (float(x) if np.ndim(x) == 0 else np.asarray(x).tolist()) for k, x in v.statistics.items()}
    stats["registration_shift_px"] = np.asarray(shift, float).tolist()
    stats["arrays"] = {"xas2d_fraction": np.asarray(v.fraction_2d, np.float32),
                       "xas2d_r_factor": np.asarray(v.r_factor, np.float32),
                       "projected_fraction": np.asarray(v.projected_3d, np.float32)}
    return stats


def run_particles(ctx: RunContext) -> dict:
    from .. import particles

    cfg = ctx.config.particles
    cattrs = ctx.store.group_attrs("chem")
    voxel = float(cattrs["voxel_m"])
    density = ctx.store.read("chem/density")
    frac = ctx.store.read("chem/fraction")
    classes = ctx.store.read("chem/labels")
    res_m = None
    if ctx.store.has("resolution/fsc"):
        r = ctx.store.group_attrs("resolution/fsc").get("resolution_m")
        res_m = float(r) if r is not None and np.isfinite(r) else None
    kwargs = {"split": cfg.split, "mask": classes > 0}
    if cfg.min_volume_nm3:
        kwargs["min_volume_m3"] = cfg.min_volume_nm3 * 1e-27
    if res_m is not None:
        kwargs["resolution_m"] = res_m
    labels = particles.segment(density, voxel, **kwargs)
    table = particles.measure(labels, frac, voxel, classes=classes,
                              active_thresholds=tuple(cfg.active_thresholds))
    stats = {}
    for t in cfg.active_thresholds:
        col = _active_col(t)
        n_active = int(table[col].sum()) if col in table and len(table) else 0
        f, s = particles.active_fraction(n_active, len(table))
        stats[col] = {"threshold": t, "n_active": n_active, "n_total": int(len(table)), "fraction": f, "sigma": s}
    trends = {}
    if len(table) >= 4:
        trends = jsonable(particles.activity_trends(table, by=("volume_nm3", "facet_area_nm2", "thickness_nm"),
                                                         active_col=_active_col(cfg.active_thresholds[0])))
    arrays = {"labels": labels.astype(np.int32)}
    for c in table.columns:
        arrays[f"table_{c}"] = np.asarray(table[c].to_numpy(), dtype=np.float64 if table[c].dtype != bool else bool)
    ctx.store.write_group("particles", arrays, attrs={"columns": list(table.columns), "n_particles": int(len(table)),
                                                      "activity": stats, "trends": trends, "voxel_m": voxel},
                          chunks={"labels": (min(16, labels.shape[0]),) + labels.shape[1:]})
    first = stats[next(iter(stats))] if stats else {}
    return {"particles": int(len(table)), "active": f"{first.get('n_active', 0)}/{first.get('n_total', 0)}"}


def _active_col(threshold: float) -> str:
    """The particle table's column of the active flag at ``threshold`` (chemtomo.particles.measure)."""
    return f"active_{threshold * 100:g}"
