"""2D XAS from a STXM transmission stack: counts -> OD (I0 region) -> energy alignment -> fit.

The flow of ``chemtomo xas STACK REFERENCES -o MAPS.zarr``:

1. read the stack (:func:`chemtomo.io.read_stxm`: ``.hdr`` + ``.xim`` or NeXus NXstxm) and the
   reference spectra (:func:`chemtomo.io.read_references`, the reader every chemtomo command
   uses, so its formats and checks apply);
2. optical density ``−ln(I/I0)`` with I0 per energy from an empty region, chosen automatically
   (:func:`chemtomo.chem.choose_i0_region`) or given as a box or mask;
3. energy alignment: each energy's OD image registered to its neighbours, sub-pixel
   (:func:`chemtomo.align.register_stack`), the OD images shifted (cubic spline) and the I0 region
   chosen again on the aligned stack; pixels not covered at every energy
   after the shifts are left out (NaN);
4. the per-pixel non-negative linear-combination fit (:func:`chemtomo.chem.fit_stack`, the fit
   the pipeline's 2D validation uses): one map per reference column and the R-factor;
5. the maps store (:func:`chemtomo.io.xas_maps.write_xas_maps`) and a figure beside it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chemtomo import __version__
from chemtomo.align import apply_stack_shifts, register_stack
from chemtomo.chem import I0Region, StackFit, choose_i0_region, fit_stack, sample_mask, stack_optical_density
from chemtomo.chem.stack_od import _box_mask
from chemtomo.chem.validate import R_FACTOR_GOOD
from chemtomo.core import InputError

__all__ = ["XasResult", "xas_maps", "run_xas"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class XasResult:
    """What :func:`xas_maps` produced.

    fit       : StackFit, a map per component and the R-factor
    od        : (n_energies, ny, nx) float32, the aligned OD stack that was fitted (NaN where a
                pixel is not covered at every energy)
    i0        : I0Region of the aligned stack
    shifts_px : (n_energies, 2) float64, (dy, dx) applied to each energy (zeros without alignment)
    pixel_m   : float, pixel size in metres
    sample    : (ny, nx) bool, fitted pixels holding material (Otsu on the fitted total amount,
                outside the I0 region): where the R-factor statistics are taken
    summary   : dict of numbers for the report: fitted pixels, sample pixels (Otsu on the fitted
                total, outside I0), share of sample pixels with R < 0.15 and their median R, I0
                pixels and OD spread, largest shift, registration residual (RMS misfit of the
                pairwise shifts to the solution, px)
    """

    fit: StackFit
    od: np.ndarray
    i0: I0Region
    shifts_px: np.ndarray
    pixel_m: float
    sample: np.ndarray
    summary: dict


def xas_maps(counts, energies_ev, references, *, pixel_m: float, i0_box=None, i0_mask=None,
             align: bool = True, method: str = "nnls", resample_order: int = 3) -> XasResult:
    """Component maps from a transmission stack in memory (no files).

    Parameters
    ----------
    counts : (n_energies, ny, nx) float, transmitted counts per energy
    energies_ev : (n_energies,) float, eV, strictly increasing
    references : reference table, as for :func:`chemtomo.chem.fit_stack`
    pixel_m : float, pixel size in metres (recorded, not used by the fit)
    i0_box : (y0, y1, x0, x1), optional, the I0 region as a box of pixel indices (before alignment
        the box is in the raw images' pixels; after alignment the same box is used on the aligned
        stack, whose pixels are those of the reference energy)
    i0_mask : (ny, nx) bool, optional, the I0 region as a mask
    align : bool, register the energies to each other (default) or trust the stack as aligned
    method : "nnls" (default) or "lstsq"
    resample_order : spline order of the shift applied to each energy's OD: 3 (default) or 1
        (bilinear, biased at particle profiles; see :func:`chemtomo.align.apply_stack_shifts`)

    Returns
    -------
    XasResult
    """
    c = np.asarray(counts, dtype=np.float32)
    e = np.asarray(energies_ev, dtype=np.float64)
    if c.ndim != 3:
        raise InputError(f"counts must have shape (n_energies, ny, nx), got {c.shape}")
    if e.shape != (c.shape[0],):
        raise InputError(f"counts have {c.shape[0]} energies but energies_ev has shape {e.shape}")
    if not (np.isfinite(pixel_m) and pixel_m > 0):
        raise InputError(f"pixel_m must be a positive pixel size in metres, got {pixel_m!r}")
    od, region = stack_optical_density(c, i0_box=i0_box, i0_mask=i0_mask)
    shifts = np.zeros((c.shape[0], 2))
    residual_px = float("nan")
    if align and c.shape[0] > 1:
        shifts, residual_px = register_stack(od, return_residual=True)
        # shift the OD (linear in thickness), not the counts: interpolating counts and taking the
        # log afterwards underestimates the OD at particle edges (Jensen), by 0.5 sigma of the
        # shot noise on the tests' stack; counts are rebuilt from the shifted OD for the I0 step
        aligned = region.i0_counts[:, None, None].astype(np.float32) * np.exp(
            -apply_stack_shifts(od, shifts, order=resample_order, fill=np.nan))
        covered = np.all(np.isfinite(aligned), axis=0)
        if covered.sum() < 16:
            raise InputError(f"after energy alignment (largest shift {np.abs(shifts).max():.1f} px) fewer than 16 "
                             "pixels are covered at every energy; the stack drifts more than its field")
        filled = np.where(covered[None], aligned, region.i0_counts[:, None, None].astype(np.float32))
        mask_now = None if i0_mask is None else np.asarray(i0_mask, bool) & covered
        if i0_box is None and i0_mask is None:
            # choose I0 on the covered part only: fill uncovered pixels with the field's median so
            # they neither look empty nor like sample to the chooser, then drop them from the region
            med = np.median(aligned[:, covered], axis=1)[:, None, None]
            mask_now = choose_i0_region(np.where(covered[None], aligned, med)) & covered
        elif i0_box is not None:
            mask_now = _box_mask(i0_box, c.shape[1:]) & covered
        od, region = stack_optical_density(filled, i0_mask=mask_now)
        region = I0Region(region.mask, region.i0_counts, "auto" if i0_box is None and i0_mask is None
                          else ("box" if i0_box is not None else "mask"), region.od_spread, region.n_floored)
        od = np.where(covered[None], od, np.nan).astype(np.float32)
    poisson_od = 1.0 / np.sqrt(float(region.i0_counts.min()))
    if region.od_spread > 3.0 * poisson_od:
        log.warning("I0 region (%s, %d pixels): OD spread %.3g is over 3x the shot noise of one pixel (%.3g); "
                    "it may hold sample or the detector is not photon counting", region.source, region.n_pixels,
                    region.od_spread, poisson_od)
    fit = fit_stack(od, e, references, method=method)
    r = fit.r_factor
    # the R-factor means something where there is material: Otsu on the fitted total amount
    # (empty pixels fit noise with noise, R ~ 1); the paper's share is over sample pixels
    total = fit.maps.sum(axis=0)
    fitted = np.isfinite(r) & ~region.mask
    if fitted.any():
        fitted &= sample_mask(np.where(fitted, total, np.nan))
    summary = {
        "n_pixels": int(r.size),
        "n_fitted": int(np.isfinite(r).sum()),
        "n_sample": int(fitted.sum()),
        f"share_r_below_{R_FACTOR_GOOD:g}": float(np.mean(r[fitted] < R_FACTOR_GOOD)) if fitted.any() else float("nan"),
        "median_r_factor": float(np.median(r[fitted])) if fitted.any() else float("nan"),
        "i0_pixels": region.n_pixels,
        "i0_source": region.source,
        "i0_od_spread": region.od_spread,
        "i0_shot_noise_od": poisson_od,
        "max_shift_px": float(np.abs(shifts).max()),
        "registration_residual_px": residual_px,
    }
    return XasResult(fit, od, region, shifts, float(pixel_m), fitted, summary)


def run_xas(stack_path: str | os.PathLike, references_path: str | os.PathLike, out: str | os.PathLike, *,
            i0_box=None, align: bool = True, method: str = "nnls", figure: bool = True,
            **read_kwargs) -> tuple[XasResult, Path, Path | None]:
    """``chemtomo xas`` as a library call: read, compute, write the maps store and the figure.

    Parameters
    ----------
    stack_path : a ``.hdr`` header (with its ``.xim`` images) or a NeXus NXstxm file
    references_path : reference spectra (``energy_eV,<phase>,...``; any format
        :func:`chemtomo.io.read_references` reads)
    out : the maps store, a directory ``MAPS.zarr`` (replaced if it exists)
    i0_box : (y0, y1, x0, x1), optional, the I0 region (default: chosen automatically)
    align : register the energies (default True)
    method : "nnls" (default) or "lstsq"
    figure : also write ``MAPS.png`` beside the store
    read_kwargs : passed to :func:`chemtomo.io.read_stxm` (``channel``, ``entry``, ``detector``)

    Returns
    -------
    (XasResult, store path, figure path or None)
    """
    from chemtomo.io import check_references_cover, read_references
    from chemtomo.io.stxm import read_stxm
    from chemtomo.io.xas_maps import write_xas_maps

    stack = read_stxm(stack_path, **read_kwargs)
    ref_e, table = read_references(references_path)
    check_references_cover(references_path, stack.energies_ev)   # the run's rule, for the stack's energies
    res = xas_maps(stack.counts, stack.energies_ev, (ref_e, table), pixel_m=stack.pixel_m, i0_box=i0_box,
                   align=align, method=method)
    attrs = {
        "pixel_m": stack.pixel_m, "pixel_yx_m": list(stack.pixel_yx_m), "energies_ev": stack.energies_ev,
        "names": list(res.fit.names), "map_unit": "inverse of the references' unit (metres for μ in 1/m)",
        "source": str(stack_path), "references": str(references_path), "method": method,
        "shifts_px": res.shifts_px, "i0_counts": res.i0.i0_counts, "summary": res.summary,
        "chemtomo_version": __version__,
    }
    out = Path(out)
    store = write_xas_maps(out, {n: res.fit.maps[k] for k, n in enumerate(res.fit.names)},
                           r_factor=res.fit.r_factor, od=res.od, i0_mask=res.i0.mask, attrs=attrs)
    fig_path = None
    if figure:
        from chemtomo.chem.stack_figure import plot_stack_fit

        fig = plot_stack_fit(res.fit.maps, res.fit.names, res.fit.r_factor, stack.pixel_m, i0_mask=res.i0.mask,
                             sample_mask=res.sample,
                             title=f"{Path(stack_path).name}: 2D XAS fit ({len(stack.energies_ev)} energies)")
        fig_path = out.with_suffix(".png") if out.suffix else out.with_name(out.name + ".png")
        fig.savefig(fig_path, dpi=120)
    return res, store, fig_path
