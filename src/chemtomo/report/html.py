"""The run report: one self-contained HTML page (figures embedded as PNG) with the paper's evidence.

Sections follow the flow: projections and FRC, alignment, volumes and FSC, chemistry, phase
classes, particles and their statistics, 2D XAS validation, then the config, versions and timings.
Sections whose stage has not run say so instead of failing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
from pathlib import Path

import numpy as np

from .. import __version__
from ..core.containers import Curve
from ..io.store import RunStore, energy_key
from . import figures as F

__all__ = ["build_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:.2em}.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{background:#f5f7fa;border:1px solid #dde3ea;border-radius:8px;padding:.6em 1em;min-width:10em}
.card b{display:block;font-size:1.4em}img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:right}th{background:#f0f0f0}.scroll{max-height:420px;overflow:auto}pre{background:#f7f7f7;padding:1em;
overflow:auto;font-size:.8em}.missing{color:#a33;font-style:italic}
.wide{max-width:100%;overflow-x:auto}table.particles td{white-space:nowrap}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _missing(what: str, store: RunStore | None = None, stage: str = "") -> str:
    rec = store.stage_record(stage) if store is not None and stage else None
    if rec and rec.get("skipped"):
        return f'<p class="missing">{html.escape(what)} — skipped: {html.escape(rec["skipped"])}</p>'
    return f'<p class="missing">{html.escape(what)} — stage not run yet.</p>'


def _fmt(v, digits=3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not np.isfinite(v) else f"{v:.{digits}g}"
    return html.escape(str(v))


def _curve(store: RunStore, group: str, prefix: str = "") -> Curve | None:
    try:
        f = store.read(f"{group}/{prefix}frequency_per_m")
        c = store.read(f"{group}/{prefix}correlation")
        t = store.read(f"{group}/{prefix}threshold")
    except Exception:
        return None
    if f.size == 0:
        return None
    from ..resolution.frc import crossing_frequency  # the same crossing rule as the FRC itself

    try:
        fc = crossing_frequency(f, c, t)
        res = 1 / (2 * fc) if fc and np.isfinite(fc) else float("nan")
    except Exception:
        res = float("nan")
    return Curve(f, c, t, res)


def _section_projections(store: RunStore) -> str:
    if not store.has("projections"):
        return _missing("Projections")
    from ..resolution import plot_curve

    energies = store.group_attrs("projections")["energies_eV"]
    e = energies[0]
    a = store.array_attrs(f"projections/{energy_key(e)}")
    stack = store.group("projections")[energy_key(e)]
    i = stack.shape[0] // 2
    image = np.asarray(stack[i])
    kind = store.group_attrs("projections").get("input_kind")
    if a.get("quantity") == "od":  # full-field input: OD given, no phase (shown as zero)
        image = np.exp(-0.5 * np.nan_to_num(image)).astype(np.complex64)
    done = f"read from the input ({kind}; no ptychography)" if kind else "reconstructed"
    out = [f"<p>{len(energies)} energies × {stack.shape[0]} angles {done}; object pixel "
           f"{a['pixel_m'] * 1e9:.2f} nm at {e:g} eV. Shown: angle {a['angles_deg'][i]:g}°.</p>",
           _png(F.plot_projection(image, a["pixel_m"], title=f"{e:g} eV, {a['angles_deg'][i]:g}°"))]
    out.append(_detector_text(store, energies))
    frc_attrs = store.group_attrs("resolution/frc") if store.has("resolution/frc") else {}
    curve = _curve(store, "resolution/frc", f"{energy_key(e)}_")
    if curve is not None:
        med = frc_attrs.get("median_resolution_m", {}).get(energy_key(e))
        out.append(f"<p>{_frc_text(a, med)} at {e:g} eV (paper: 10 nm).</p>")
        out.append(_png(plot_curve(curve, title=f"FRC, {e:g} eV")))
    return "\n".join(out)


def _detector_text(store: RunStore, energies) -> str:
    """Per scan, what detector cleaning masked, clipped and dropped (ptycho.detector); empty when
    the projections were not reconstructed here."""
    from ..ptycho.detector import DetectorReport

    rows, n_scans = [], 0
    for e in energies:
        a = store.array_attrs(f"projections/{energy_key(e)}")
        reports = a.get("detector")
        if not reports:
            continue
        for src, angle, d in zip(a.get("sources", []), a.get("angles_deg", []), reports):
            n_scans += 1
            if not d:
                continue
            r = DetectorReport.from_dict(d)
            if not r.clean:
                rows.append(f"<tr><td>{html.escape(Path(src).name)}</td><td>{e:g}</td><td>{angle:g}</td>"
                            f"<td>{html.escape(r.summary())}</td></tr>")
    if not n_scans:
        return ""
    if not rows:
        return f"<p>Detector: all {n_scans} scans clean (no frame dropped, no pixel masked beyond the files' masks, no negative count).</p>"
    return (f"<p>Detector: {len(rows)} of {n_scans} scans needed cleaning (masked pixels float free in every update; "
            "negative counts clipped to 0; lost frames left out):</p><table><tr><th>scan</th><th>eV</th><th>angle (°)</th>"
            "<th>what was done</th></tr>" + "".join(rows) + "</table>")


def _frc_text(projection_attrs: dict, median_m) -> str:
    """What the 2D FRC number is: over how many projections (at which angles), and their spread."""
    res = np.asarray(projection_attrs.get("frc_resolution_m", []), float)
    angles = np.asarray(projection_attrs.get("angles_deg", [np.nan] * len(res)), float)
    ok = np.isfinite(res)
    head = "FRC (½-bit) of two half reconstructions (interleaved halves of the frames)"
    if ok.sum() == 0:
        return f"{head}: no projection had an FRC crossing"
    if ok.sum() == 1:
        return (f"{head} of one projection only ({angles[ok][0]:.3g}°; set ptycho.frc_angles for more): "
                f"<b>{_fmt(res[ok][0] * 1e9)} nm</b>")
    at = ", ".join(f"{x:.3g}°" for x in angles[ok])
    return (f"{head}, median over {int(ok.sum())} projections ({at}): <b>{_fmt(median_m * 1e9 if median_m else None)} "
            f"nm</b>, range {_fmt(res[ok].min() * 1e9)}–{_fmt(res[ok].max() * 1e9)} nm; the curve shown is the "
            "projection nearest the median")


def _section_alignment(store: RunStore) -> str:
    if not store.has("alignment"):
        return _missing("Alignment")
    g = store.group_attrs("alignment")
    names = store.arrays("alignment")
    hist = store.read("alignment/residual_history") if "residual_history" in names else None
    upd = store.read("alignment/max_update_history_px") if "max_update_history_px" in names else None
    fig = F.plot_alignment(g["angles_deg"], store.read("alignment/shifts_px"), store.read("alignment/rotation_deg"),
                           store.read("alignment/scale"), hist, upd)
    excl = g.get("excluded", {})
    offs = ", ".join(f"{e} eV: ({v[0]:+.2f}, {v[1]:+.2f}) px" for e, v in g.get("energy_offsets_px", {}).items())
    text = (f"<p>Method: {html.escape(g.get('method', ''))}. Per-energy offsets (dy, dx): {offs}. "
            f"Excluded projections: {len(excl)}"
            + ("".join(f"<br/>angle #{k}: {html.escape(str(v))}" for k, v in excl.items())) + "</p>")
    return text + energy_registration_table(g.get("energy_registration")) + _negative_od_text(store) + _png(fig)


def energy_registration_table(reg: dict | None) -> str:
    """HTML table of the energy registration's estimate: energy, pixel ratio ± σ, offset ± σ.

    ``reg`` is the ``energy_registration`` attribute of the alignment group
    (:meth:`chemtomo.align.energies.EnergyRegistration.as_attrs`); "" when there is none.
    """
    if not reg or not reg.get("energies"):
        return ""
    rows = []
    for e, r in sorted(reg["energies"].items(), key=lambda kv: float(kv[0])):
        o, so = r["offset_px"], r["offset_sigma_px"]
        k, sk = r["pixel_ratio"], r["pixel_ratio_sigma"]
        ref = abs(float(e) - float(reg["reference_energy_eV"])) < 1e-3
        kept = "reference" if ref else ("estimated" if r.get("scale_kept") else "nominal (not significant)")
        pm = [f" ± {v:.3f}" if v is not None else "" for v in so]  # None: offsets-only registration
        rows.append(f"<tr><td>{float(e):g}</td><td>{k:.5f} ± {sk:.5f}</td><td>{kept}</td>"
                    f"<td>{o[0]:+.3f}{pm[0]}</td><td>{o[1]:+.3f}{pm[1]}</td></tr>")
    return ("<p>Energy registration (pixel-size ratio p<sub>ref</sub>/p<sub>E</sub> and offset onto the reference "
            "energy; ± one standard error, jackknife over groups of angles):</p>"
            "<table><tr><th>energy (eV)</th><th>pixel ratio</th><th>scale used</th><th>dy (px)</th><th>dx (px)</th></tr>"
            + "".join(rows) + "</table>")


def negative_od_shares(store: RunStore) -> dict[str, tuple[float, float]] | None:
    """Share of aligned tilt-series pixels with OD < 0, per energy: (air, sample).

    The sample footprint at each angle is the projection of the 3D sample mask (chem labels > 0)
    through at least one voxel; the rest of the field is air. None before the chemistry stage.
    """
    if not (store.has("chem") and store.has("alignment") and store.has("tiltseries")):
        return None
    from ..io.ome_zarr import aligned_tilt_series
    from ..tomo import project

    angles = np.asarray(store.group_attrs("alignment")["angles_deg"], float)
    mask = (store.read("chem/labels") > 0).astype(np.float32)
    footprint = project(mask, angles) >= 1.0
    out = {}
    for e, tilt in aligned_tilt_series(store).items():
        if tilt.shape != footprint.shape:
            return None
        neg = tilt < 0
        out[energy_key(e)] = (float(neg[~footprint].mean()) if (~footprint).any() else float("nan"),
                              float(neg[footprint].mean()) if footprint.any() else float("nan"))
    return out


def _negative_od_text(store: RunStore) -> str:
    try:
        shares = negative_od_shares(store)
    except Exception:  # a diagnostic must not cost the section
        return ""
    if not shares:
        return ""
    parts = ", ".join(f"{e} eV: {100 * a:.0f} % of air pixels, {100 * s:.1f} % of sample pixels"
                      for e, (a, s) in shares.items())
    return ("<p>Negative optical density in the aligned tilt series: " + parts + ". The tilt-series stage's "
            "<code>negative_od_share</code> counts the whole field, which is mostly air: there the OD is noise "
            "around 0, so about half of it is negative, as it should be when the normalisation is right. "
            "Inside the sample's footprint (the 3D sample mask projected at each angle) negative OD means "
            "a normalisation or phase-retrieval problem, and should be rare.</p>")


#: Orthoslice figures in the report at most: a TXM XANES run of sixty energies would otherwise draw
#: sixty near-identical figures (0.5 s each); the slice viewer holds every energy.
MAX_ORTHOSLICE_ENERGIES = 4


def _orthoslice_energies(store: RunStore, energies) -> list:
    """The energies whose volumes get orthoslice figures, in order: all of them up to
    MAX_ORTHOSLICE_ENERGIES, else the alignment's reference energy, the chemistry's pair, then the
    first and the last energy, as many as fit."""
    energies = [float(e) for e in energies]
    if len(energies) <= MAX_ORTHOSLICE_ENERGIES:
        return energies
    wanted = []
    if store.has("tiltseries"):
        wanted.append(store.group_attrs("tiltseries").get("reference_energy_eV"))
    if store.has("chem"):
        wanted += store.group_attrs("chem").get("polar_energies_eV", [])
    shown = []
    for w in [*wanted, energies[0], energies[-1]]:
        e = next((e for e in energies if w is not None and abs(e - float(w)) < 1e-3), None)
        if e is not None and e not in shown:
            shown.append(e)
    return sorted(shown[:MAX_ORTHOSLICE_ENERGIES])


def _section_volumes(store: RunStore) -> str:
    if not store.has("volumes"):
        return _missing("Volumes")
    from ..resolution import plot_curve

    a = store.group_attrs("volumes")
    out = [f"<p>{a['algorithm'].upper()}, {a['iterations']} iterations, non-negativity {a['nonneg']}, "
           f"{a['n_angles']} angles; voxel {a['voxel_m'] * 1e9:.2f} nm (paper: ART, 20 iterations, 6.7 nm).</p>"]
    shown = _orthoslice_energies(store, a["energies_eV"])
    if len(shown) < len(a["energies_eV"]):
        out.append(f"<p>Orthoslices at {len(shown)} of the {len(a['energies_eV'])} energies (those the alignment and the "
                   "chemistry use, then the first and the last); the slice viewer below shows every energy.</p>")
    for e in shown:
        out.append(_png(F.plot_orthoslices(store.read(f"volumes/{energy_key(e)}"), a["voxel_m"],
                                           title=f"linear absorption μ at {e:g} eV")))
    if store.has("resolution/fsc"):
        f = store.group_attrs("resolution/fsc")
        curve = _curve(store, "resolution/fsc")
        r = f.get("resolution_m")
        value = (f"{_fmt(r * 1e9)} nm" if r else
                 f"no crossing up to Nyquist (at most the {a['voxel_m'] * 1e9:.1f} nm voxel; the halves share the "
                 "alignment, so this bounds the noise, not every systematic error)")
        out.append(f"<p>Split-half FSC at {f['energy_eV']:g} eV ({html.escape(f['threshold'])} threshold): "
                   f"<b>{value}</b> (paper: ≈ 11 nm).</p>")
        if curve is not None:
            out.append(_png(plot_curve(Curve(curve.frequency_per_m, curve.correlation, curve.threshold,
                                             r if r is not None else float("nan")), title="FSC")))
    return "\n".join(out)


def _section_viewer(store: RunStore) -> str:
    if not store.has("volumes"):
        return _missing("Slice viewer")
    from .slice_viewer import viewer_html

    return viewer_html(store)


def _section_chem(store: RunStore) -> str:
    if not store.has("chem"):
        return _missing("Chemistry", store, "chem")
    from .. import chem

    a = store.group_attrs("chem")
    frac = store.read("chem/fraction")
    labels = store.read("chem/labels")
    energies = a["energies_eV"]
    refs = np.asarray(a["references"])
    out = [f"<p>Unmixing ({html.escape(a['method'])}) with references {', '.join(a['phases'])} at "
           f"{', '.join(f'{e:g}' for e in energies)} eV over {a['n_voxels']} sample voxels. "
           f"Average state of charge <b>{a['soc'] * 100:.1f} ± {a['soc_sigma'] * 100:.1f} %</b> "
           f"(paper: 16.2 % in 3D).</p>"]
    pair = a.get("polar_energies_eV", energies[:2])
    if len(pair) == 2 and pair[0] != pair[1]:
        rows = [energies.index(e) for e in pair]
        v1, v2 = (store.read(f"volumes/{energy_key(e)}") for e in pair)
        m = labels > 0
        # the volumes hold μ in 1/m (values near 1e7): plotted in 1/µm, labelled as what they are
        out.append(_png(chem.plot_correlation(v1[m] * 1e-6, v2[m] * 1e-6, refs[np.ix_(rows, [0, refs.shape[1] - 1])],
                                              labels[m], energies_ev=tuple(pair),
                                              axis_label="μ at {energy:g} eV (1/µm)",
                                              title="Correlation of μ at the two energies (log counts)")))
    fit = a.get("bimodal")
    mf = None
    if fit:
        mf = chem.MixtureFit(**{k: np.asarray(v) for k, v in fit.items()}) if _accepts(chem.MixtureFit, fit) else None
        c, w = fit["centres"], fit["rms_widths"]
        out.append(f"<p>Bimodal fit: centres x_FP = {c[0]:.3f} and {c[1]:.3f} (Li{1 - c[0]:.2f}FePO4 and "
                   f"Li{1 - c[1]:.2f}FePO4), RMS widths ±{w[0] * 100:.1f} % and ±{w[1] * 100:.1f} % "
                   "(paper: Li0.93FePO4 and Li0.02FePO4, ±11.3 % and ±13.9 %).</p>")
    out.append(_png(chem.plot_composition_histogram(frac[np.isfinite(frac)], mf)))
    out.append(_png(chem.plot_class_fractions(a["class_fractions"], tuple(a["thresholds"]))))
    out.append(_png(F.plot_class_slices(labels, a["voxel_m"])))
    out.append(_png(F.plot_class_3d(labels, a["voxel_m"])))
    out.append(_xanes_block(store, a))
    return "\n".join(out)


def _xanes_block(store: RunStore, a: dict) -> str:
    """Edge-position and white-line maps of a XANES stack (chem stage with many energies)."""
    x = a.get("xanes")
    if not x:
        return ""
    if "skipped" in x:
        return f"<p>No XANES maps: {html.escape(x['skipped'])}</p>"
    from .. import chem

    refs = {p: e for p, e in x["reference_edge_eV"].items() if e is not None}
    ref_txt = ", ".join(f"{html.escape(p)} {e:.2f} eV" for p, e in refs.items())
    med = x["median_edge_eV"]
    wl = x["median_white_line_eV"]
    text = (f"<p>XANES maps over {len(a['energies_eV'])} energies (pre-edge {x['pre_edge_eV'][0]:g}–"
            f"{x['pre_edge_eV'][1]:g} eV, post-edge {x['post_edge_eV'][0]:g}–{x['post_edge_eV'][1]:g} eV): edge "
            f"position (half the edge step) in {x['n_edge']} of {x['n_sample_voxels']} sample voxels, median "
            f"<b>{_fmt(med, 5)} eV</b>; white-line energy median <b>{_fmt(wl, 5)} eV</b>. Reference edges: {ref_txt}. "
            "Voxels whose edge step is below 5 standard errors are left blank.</p>")
    fig = chem.plot_xanes_maps(store.read("chem/edge_energy"), store.read("chem/white_line_energy"),
                               voxel_m=a["voxel_m"], reference_edges_ev=refs)
    return text + _png(fig)


def _section_joint(store: RunStore) -> str:
    """Joint spectral tomography (chem.method = "joint"): the fit, and the two-step result beside it."""
    if not store.has("chem") or store.group_attrs("chem").get("method") != "joint":
        return ("<p>Not run: the chemical map above is the paper's two-step method (one volume per energy, "
                "then per-voxel unmixing). Set <code>[chem] method = \"joint\"</code> to fit the phase volumes "
                "directly to every energy's aligned tilt series, and <code>compare = true</code> to see both.</p>")
    from .. import chem

    a = store.group_attrs("chem")
    j = a["joint"]
    resid = ", ".join(f"{r:.4f}" for r in j["residual_od_rms"])
    bounds = (", Σ ≤ 1 per voxel" if j["occupancy"] else "") + (
        f", TV {j['tv']:.3g}{' (chosen from the data)' if j.get('tv_auto') else ''}" if j["tv"] else "")
    vol = j.get("soc_volumes")
    if j.get("soc_source") == "projections":
        where = "from the projection totals through the sample (linear in the data, unbiased by c ≥ 0)"
        proj = (f"{vol * 100:.1f} %" if isinstance(vol, (int, float)) and np.isfinite(vol) else "not available")
        other = "over the volumes' sample and rims"
    else:
        where = "over the sample and its rims"
        proj = "not available (the projection totals vary with angle: the sample leaves the field)"
        other = "from the projection totals"
    out = [f"<p>The phase volumes were fitted directly to the aligned OD tilt series of "
           f"{', '.join(f'{e:g}' for e in a['energies_eV'])} eV ({j['n_angles']} angles) by spectrally "
           f"preconditioned OS-SART, {j['iterations']} sweeps, concentrations ≥ 0"
           f"{bounds}. "
           f"Reference matrix: condition number {j['condition_number']:.3g}. OD residual RMS per energy: {resid} "
           f"(it includes the noise). State of charge <b>{a['soc'] * 100:.1f} ± {a['soc_sigma'] * 100:.1f} %</b> "
           f"{where}; {other}: {proj}.</p>"]
    two = a.get("two_step")
    if two is None or not store.has("chem/two_step_fraction"):
        out.append("<p>The two-step result is not stored (<code>[chem] compare = true</code> keeps it for "
                   "comparison).</p>")
        return "\n".join(out)
    frac = store.read("chem/fraction")
    diff = store.read("chem/fraction_difference")
    d = diff[np.isfinite(diff)]
    out.append(f"<p>Two-step ({html.escape(two['method'])} unmixing of the reconstructed volumes): state of charge "
               f"{two['soc'] * 100:.1f} ± {two['soc_sigma'] * 100:.1f} % over {two['n_voxels']} sample voxels. "
               f"Per voxel, joint − two-step FePO4 fraction: mean {_fmt(float(d.mean()) if d.size else np.nan)}, "
               f"RMS {_fmt(float(np.sqrt(np.mean(d ** 2))) if d.size else np.nan)} over {d.size} voxels in both "
               "samples.</p>")
    out.append(_png(chem.plot_joint_comparison(frac, store.read("chem/two_step_fraction"), a["voxel_m"])))
    return "\n".join(out)


def _accepts(cls, d: dict) -> bool:
    import dataclasses

    try:
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        required = {f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        return required <= set(d) <= names
    except TypeError:
        return False


def _section_validation(store: RunStore) -> str:
    if not store.has("chem") or "validation_2d" not in store.group_attrs("chem"):
        return "<p>No 2D XAS stack was given (input.xas2d, or xas2d.h5 beside the manifest).</p>"
    from .. import chem

    a = store.group_attrs("chem")
    v = a["validation_2d"]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(x if not isinstance(x, list) else str(x))}</td></tr>"
                   for k, x in v.items())
    fig = chem.plot_validation_maps(store.read("chem/projected_fraction"), store.read("chem/xas2d_fraction"),
                                    store.read("chem/xas2d_r_factor"), pixel_m=a["voxel_m"])
    return (f"<p>Share of sample pixels with LCF R-factor &lt; 0.15: <b>{_fmt(v.get('share_r_below_0.15'))}</b> "
            f"(paper: 94.64 %).</p><table>{rows}</table>" + _png(fig))


def _section_particles(store: RunStore) -> str:
    if not store.has("particles"):
        return _missing("Particles", store, "particles")
    from .. import particles
    from ..io.export import load_particle_table

    a = store.group_attrs("particles")
    table = load_particle_table(store)
    out = []
    for s in a.get("activity", {}).values():
        out.append(f"<p>Active (mean FePO4 fraction ≥ {s['threshold'] * 100:.0f} %): <b>{s['n_active']} of "
                   f"{s['n_total']} = {_fmt((s['fraction'] or 0) * 100)} ± {_fmt((s['sigma'] or 0) * 100)} %</b> "
                   f"(binomial, one σ).</p>")
    out.append(_trend_table(a.get("trends") or {}))
    if len(table):
        col = next(iter(a.get("activity", {})), "active_15")
        classes = store.read("chem/labels")
        ids = table.sort_values("volume_nm3", ascending=False)["label"].astype(int).tolist()[:3]
        figures = (
            lambda: particles.volume_histogram(table, active_col=col),
            lambda: particles.activity_vs_size(table, active_col=col),
            lambda: particles.particle_gallery(store.read("particles/labels"), store.read("chem/fraction"),
                                               a["voxel_m"], ids, classes=classes),
        )
        for draw in figures:
            try:
                out.append(_png(draw()))
            except Exception as exc:  # a figure that cannot be drawn must not lose the report
                out.append(f'<p class="missing">figure not drawn: {html.escape(str(exc))}</p>')
        out.append(_particle_table_html(table))
    else:
        out.append("<p>No particles were segmented.</p>")
    return "\n".join(out)


#: The particle table's columns in the report (the rest, e.g. axis directions, are in the CSV export).
REPORT_COLUMNS = {"label": "#", "volume_nm3": "volume (10³ nm³)", "length_nm": "length (nm)",
                  "width_nm": "width (nm)", "thickness_nm": "thickness (nm)",
                  "facet_area_nm2": "ac facet (nm²)", "mean_fp_fraction": "FePO4 (%)",
                  "mean_fp_fraction_sigma": "± (%)", "frac_lfp_rich": "LFP-rich (%)", "frac_mixed": "mixed (%)",
                  "frac_fp_rich": "FP-rich (%)"}
_PERCENT = {"mean_fp_fraction", "mean_fp_fraction_sigma", "frac_lfp_rich", "frac_mixed", "frac_fp_rich"}


def _particle_table_html(table) -> str:
    """The particle table, narrowed to the columns a reader compares, in a horizontal scroll box."""
    cols = [c for c in REPORT_COLUMNS if c in table.columns] + [c for c in table.columns if c.startswith("active_")]
    rows = []
    for _, r in table[cols].iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c.startswith("active_"):
                cells.append("yes" if bool(v) else "no")
            elif c == "label":
                cells.append(str(int(v)))
            elif c == "volume_nm3":
                cells.append(f"{v / 1e3:.1f}")
            elif c in _PERCENT:
                cells.append(_fmt(float(v) * 100, 3) if np.isfinite(v) else "–")
            else:
                cells.append(f"{v:.0f}" if np.isfinite(v) else "–")
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(REPORT_COLUMNS.get(c, c.replace('active_', 'active ≥ ') + ' %'))}</th>"
                   for c in cols)
    return ('<div class="scroll wide"><table class="particles"><tr>' + head + "</tr>" + "".join(rows)
            + "</table></div><p class='sub'>All columns (centroids, principal axes, surface areas): "
            "<code>chemtomo export RUN.zarr --format csv</code>.</p>")


def _trend_table(trends: dict) -> str:
    """Activity against size: Spearman ρ, logistic slopes and their paired differences."""
    if not trends:
        return "<p>Too few particles for size trends.</p>"
    rows = []
    for col, d in (trends.get("spearman") or {}).items():
        act = d.get("activity", {})
        lg = (trends.get("logistic") or {}).get(col, {})
        rows.append(f"<tr><th>{html.escape(col)}</th><td>{_fmt(act.get('rho'))} [{_fmt(act.get('ci_low'))}, "
                    f"{_fmt(act.get('ci_high'))}]</td><td>{_fmt(act.get('p_value'))}</td>"
                    f"<td>{_fmt(lg.get('slope'))} ± {_fmt(lg.get('slope_se'))}</td></tr>")
    comp = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v.get('difference'))}</td><td>[{_fmt(v.get('ci_low'))}, "
                   f"{_fmt(v.get('ci_high'))}]</td><td>{_fmt(v.get('p_positive'))}</td></tr>"
                   for k, v in (trends.get("comparison") or {}).items())
    return ("<p>Activity against size (Spearman ρ with 95 % bootstrap interval; logistic slope per standard "
            "deviation of log size):</p><table><tr><th>size</th><th>ρ [95 % CI]</th><th>p</th>"
            f"<th>logistic slope</th></tr>{''.join(rows)}</table>"
            "<p>Which size matters more (difference of standardized logistic slopes, paired bootstrap):</p>"
            "<table><tr><th>pair</th><th>difference</th><th>95 % CI</th><th>P(&gt; 0)</th></tr>"
            f"{comp}</table>")


def _left_out(excluded: list[dict]) -> str:
    """Table of the inputs the run left out (store attribute ``excluded_inputs``, pipeline/preflight.py)."""
    if not excluded:
        return ""
    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(Path(e['path']).name)}</td>"
        f"<td>{'' if e.get('angle_deg') is None else format(e['angle_deg'], 'g')}</td><td>{'' if e.get('energy_eV') is None else format(e['energy_eV'], 'g')}</td>"
        f"<td style='text-align:left'>{html.escape(e['reason'])}</td></tr>" for e in excluded)
    return (f"<h3>Inputs left out ({len(excluded)})</h3><table><tr><th>file</th><th>angle (°)</th>"
            f"<th>energy (eV)</th><th>why</th></tr>{rows}</table>")


def _section_run(store: RunStore) -> str:
    attrs = store.attrs
    stages = attrs.get("stages", {})
    rows = "".join(f"<tr><th>{html.escape(n)}</th><td>{r.get('seconds', 0):.1f} s</td><td style='text-align:left'>"
                   + html.escape(("skipped: " + r["skipped"]) if r.get("skipped") else
                                 ", ".join(f"{k}={v}" for k, v in (r.get("summary") or {}).items()))
                   + "</td></tr>" for n, r in stages.items())
    import matplotlib
    import scipy
    import zarr

    versions = (f"chemtomo {__version__}, Python {platform.python_version()}, NumPy {np.__version__}, "
                f"SciPy {scipy.__version__}, Zarr {zarr.__version__}, Matplotlib {matplotlib.__version__}, "
                f"{platform.machine()} {platform.system()}")
    log = store.log_path.read_text()[-6000:] if store.log_path.exists() else ""
    return (_left_out(attrs.get("excluded_inputs") or [])
            + f"<table><tr><th>stage</th><th>time</th><th>summary</th></tr>{rows}</table>"
            f"<p>{html.escape(versions)}</p><h3>Configuration</h3><pre>"
            + html.escape(json.dumps(attrs.get("config", {}), indent=2)) + "</pre><h3>Log (end)</h3><pre>"
            + html.escape(log) + "</pre>")


def _cards(store: RunStore) -> str:
    cards = []
    st = store.attrs.get("stages", {})
    if "ptycho" in st:
        summary = st["ptycho"].get("summary") or {}
        if "scans" in summary:
            cards.append(("scans", summary["scans"]))
        elif "input" in summary:  # read, not reconstructed (pipeline/ingest_stage.py)
            cards.append((f"input: {summary['input']}", f"{summary.get('files')} files"))
    if store.has("resolution/fsc"):
        r = store.group_attrs("resolution/fsc").get("resolution_m")
        cards.append(("3D resolution (FSC)", f"{r * 1e9:.1f} nm" if r else "≤ voxel (no crossing)"))
    if store.has("chem"):
        a = store.group_attrs("chem")
        cards.append(("state of charge", f"{a['soc'] * 100:.1f} ± {a['soc_sigma'] * 100:.1f} %"))
    if store.has("particles"):
        a = store.group_attrs("particles")
        cards.append(("particles", a["n_particles"]))
        act = next(iter(a.get("activity", {}).values()), None)
        if act and act["fraction"] is not None:
            cards.append((f"active (≥{act['threshold'] * 100:.0f} %)",
                          f"{act['fraction'] * 100:.1f} ± {act['sigma'] * 100:.1f} %"))
    total = sum(r.get("seconds", 0) for r in st.values())
    cards.append(("compute time", f"{total:.0f} s"))
    return '<div class="cards">' + "".join(f'<div class="card">{html.escape(k)}<b>{html.escape(str(v))}</b></div>'
                                           for k, v in cards) + "</div>"


def build_report(store: RunStore) -> str:
    """The whole report as one HTML string."""
    sections = [
        ("Ptychographic projections and 2D resolution", _section_projections),
        ("Tilt-series alignment", _section_alignment),
        ("Volumes and 3D resolution", _section_volumes),
        ("Slice viewer", _section_viewer),
        ("Chemical state", _section_chem),
        ("Joint spectral tomography", _section_joint),
        ("Particles", _section_particles),
        ("2D XAS validation", _section_validation),
        ("Run", _section_run),
    ]
    body = []
    for title, fn in sections:
        try:
            content = fn(store)
        except Exception as exc:  # one broken section must not cost the whole report
            content = f'<p class="missing">This section could not be drawn: {html.escape(repr(exc))}</p>'
        body.append(f"<h2>{html.escape(title)}</h2>\n{content}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'/><title>chemtomo report</title>"
            f"<style>{_CSS}</style></head><body><h1>chemtomo report</h1>"
            f"<p class='sub'>{html.escape(str(store.path))} · soft X-ray ptychographic spectro-tomography "
            f"(Yu et al., Nat. Commun. 9, 921 (2018))</p>{_cards(store)}" + "\n".join(body) + "</body></html>")
