"""Issue 24 part 3: the measured HAADF-STEM tilt series of etspy, aligned by chemtomo and by etspy.

Data: etspy 1.3.0's test data (tests/data/measured/README.md): ``HAADF.mrc`` (77 raw images,
256², −76..76° in 2° steps, tilt axis along the image x axis) and ``HAADF_Aligned.hspy`` (etspy's
aligned stack as shipped). Looked up in ``--data``, ``$CHEMTOMO_MEASURED_DATA`` or
tests/data/measured.

Aligners, all on the same raw series, in one process:

* chemtomo: ``chemtomo.align`` (coarse + reprojection alignment) on the background-subtracted
  HAADF signal (HAADF intensity is already ~linear in projected mass: no OD conversion);
* etspy (live): ``stack_register("PC")`` then ``tilt_align("CoM")``, etspy's documented default
  (the needle example of its docs), when etspy is installed;
* etspy (shipped): the aligned stack etspy ships in its tests;
* none: the raw stack, for scale.

Judge, the same for every stack: crop all stacks to one common field (symmetric margins that
cover the largest displacement any of the aligners applied at the field's corners, so no stack
keeps pixels that came from outside its raw field), subtract each projection's background (the
median of the crop's first and last 4 rows: the vacuum beside the needle), reconstruct each
slice along the tilt axis with ASTRA's CPU SIRT (30 iterations, non-negative), reproject and
report ``‖P x − b‖ / ‖b‖`` over the cropped stack (every ``--step``-th slice, 4 by default:
the same slices for every stack).

    nice -n 19 python benchmarks/stem_measured.py      # ≈ 5 min of CPU (every 4th slice judged)
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from chemtomo.align import align, apply
from chemtomo.align.reprojection import ReprojectionOptions
from chemtomo.align.transform import raw_coordinates
from chemtomo.io.mrc import read_mrc

HERE = Path(__file__).resolve().parent.parent / "tests" / "data" / "measured"
VACUUM_ROWS = 4  # rows at the top and bottom of the judged crop that hold no sample


def find_data(arg):
    for d in (arg, os.environ.get("CHEMTOMO_MEASURED_DATA"), HERE, "/work/data/etspy"):
        if d and (Path(d) / "HAADF.mrc").exists():
            return Path(d)
    raise SystemExit("HAADF.mrc not found: pass --data DIR or set CHEMTOMO_MEASURED_DATA "
                     "(see tests/data/measured/README.md)")


def load(d: Path):
    raw = read_mrc(d / "HAADF.mrc").data.astype(np.float32)
    angles = np.loadtxt(d / "HAADF.rawtlt", dtype=np.float64)
    return raw, angles


def background_subtract(stack, rows=VACUUM_ROWS):
    """Each projection minus the median of its first and last ``rows`` rows (vacuum)."""
    s = np.asarray(stack, np.float32)
    edge = np.concatenate([s[:, :rows, :], s[:, -rows:, :]], axis=1).reshape(s.shape[0], -1)
    return s - np.median(edge, axis=1)[:, None, None]


def chemtomo_align(raw, angles, iterations, binning=2, tilt_axis=True):
    """chemtomo.align on the HAADF signal. etspy's frames have the tilt axis along x; chemtomo's
    along y, so the frames are transposed in and out. The alignment runs on ``binning``×
    ``binning``-binned frames (8× fewer voxels per reconstruction at 2) and its shifts are scaled
    back to full resolution (pixel centres map exactly: the frame centre stays the centre).
    Returns (full-resolution aligned stack, margins (my, mx), Alignment at full resolution)."""
    sig = background_subtract(raw, 8).transpose(0, 2, 1).copy()
    n, ny, nx = sig.shape
    b = int(binning)
    small = sig[:, : ny // b * b, : nx // b * b].reshape(n, ny // b, b, nx // b, b).mean(axis=(2, 4))
    opts = ReprojectionOptions(recon_iterations=30)
    al_small = align({0.0: small}, angles, iterations=iterations, similarity=True, tol_px=0.02,
                     options=opts, tilt_axis=tilt_axis)
    al = replace(al_small, shifts_px=al_small.shifts_px * b, shape=(ny, nx))
    aligned = apply(sig, al, 0.0).transpose(0, 2, 1)
    q = raw_coordinates(sig.shape[1:], *al.params)  # (2, n, ny, nx) in the transposed frame
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    corners = (slice(None), [0, 0, -1, -1], [0, -1, 0, -1])
    dy = np.abs(q[0][corners] - yy[corners[1:]]).max()
    dx = np.abs(q[1][corners] - xx[corners[1:]]).max()
    return aligned, (int(np.ceil(dx)), int(np.ceil(dy))), al  # back in etspy's (y, x) order


def etspy_margins(shifts, yshift, xshift, tiltaxis_deg, shape):
    """Largest displacement at the field's corners of etspy's shifts + tilt-axis transform."""
    ny, nx = shape
    th = np.deg2rad(abs(tiltaxis_deg))
    sh = np.abs(np.asarray(shifts, np.float64)).max(axis=0) if len(shifts) else np.zeros(2)
    my = sh[0] + abs(yshift) + nx / 2 * np.sin(th) + ny / 2 * (1 - np.cos(th))
    mx = sh[1] + abs(xshift) + ny / 2 * np.sin(th) + nx / 2 * (1 - np.cos(th))
    return int(np.ceil(my)), int(np.ceil(mx))


def etspy_live(d: Path):
    import etspy.api as etspy

    stack = etspy.load(d / "HAADF.mrc")
    reg = stack.stack_register("PC")
    ali = reg.tilt_align("CoM")
    t = ali.metadata.Tomography
    shifts = np.asarray(ali.shifts.data if hasattr(ali, "shifts") else t.shifts).reshape(-1, 2)
    m = etspy_margins(shifts, float(t.yshift), float(t.xshift), float(t.tiltaxis), ali.data.shape[1:])
    return np.asarray(ali.data, np.float32), m, float(t.tiltaxis), float(t.yshift)


def etspy_shipped(d: Path):
    import h5py

    with h5py.File(d / "HAADF_Aligned.hspy", "r") as f:
        g = f["Experiments/__unnamed__"]
        data = g["data"][()].astype(np.float32)
        shifts = g["metadata/Tomography/_sig_shifts/data"][()].reshape(-1, 2)
        a = dict(g["metadata/Tomography"].attrs)
    m = etspy_margins(shifts, float(a["yshift"]), float(a["xshift"]), float(a["tiltaxis"]),
                      data.shape[1:])
    return data, m, float(a["tiltaxis"]), float(a["yshift"])


def sirt_residual(stack, angles_deg, iterations=30, step=1):
    """ASTRA CPU SIRT of every ``step``-th slice along the tilt axis (the x columns), then
    ‖Px − b‖/‖b‖ over those slices."""
    import astra

    n, ny, nx = stack.shape
    proj_geom = astra.create_proj_geom("parallel", 1.0, ny, np.deg2rad(angles_deg))
    vol_geom = astra.create_vol_geom(ny, ny)
    proj_id = astra.create_projector("linear", proj_geom, vol_geom)
    num = den = 0.0
    try:
        for j in range(0, nx, step):
            b = np.ascontiguousarray(stack[:, :, j], dtype=np.float32)  # (n_angles, ny) sinogram
            sino_id = astra.data2d.create("-sino", proj_geom, b)
            rec_id = astra.data2d.create("-vol", vol_geom, 0.0)
            cfg = astra.astra_dict("SIRT")
            cfg.update(ProjectorId=proj_id, ProjectionDataId=sino_id, ReconstructionDataId=rec_id,
                       option={"MinConstraint": 0.0})
            alg = astra.algorithm.create(cfg)
            astra.algorithm.run(alg, iterations)
            rec = astra.data2d.get(rec_id)
            fp_id, fp = astra.create_sino(rec, proj_id)
            num += float(((fp - b) ** 2).sum())
            den += float((b ** 2).sum())
            for i in (alg,):
                astra.algorithm.delete(i)
            astra.data2d.delete([sino_id, rec_id, fp_id])
    finally:
        astra.projector.delete(proj_id)
    return np.sqrt(num / den)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--iterations", type=int, default=20, help="chemtomo outer iterations")
    ap.add_argument("--no-etspy", action="store_true", help="skip the live etspy alignment")
    ap.add_argument("--raw", action="store_true", help="also judge the unaligned stack")
    ap.add_argument("--step", type=int, default=4,
                    help="judge every STEP-th slice along the tilt axis (1: all; 4 is 4× faster)")
    args = ap.parse_args(argv)
    d = find_data(args.data)
    raw, angles = load(d)
    stacks, margins, times, notes = {}, {}, {}, {}

    t0 = time.perf_counter()
    stacks["chemtomo"], margins["chemtomo"], al = chemtomo_align(raw, angles, args.iterations)
    times["chemtomo"] = time.perf_counter() - t0
    r = al.params[1]
    notes["chemtomo"] = (f"rotation {np.median(r):+.2f}° (spread {np.ptp(r):.2f}°), "
                         f"{len(al.history) - 1} iterations, excluded {sorted(al.excluded)}")
    if not args.no_etspy:
        try:
            t0 = time.perf_counter()
            data, m, tilt, ysh = etspy_live(d)
            times["etspy (live)"] = time.perf_counter() - t0
            stacks["etspy (live)"], margins["etspy (live)"] = data, m
            notes["etspy (live)"] = f"stack_register('PC') + tilt_align('CoM'): axis {tilt:+.2f}°, shift {ysh:+.2f} px"
        except ImportError as exc:
            print(f"etspy not installed ({exc}); live etspy row skipped")
    data, m, tilt, ysh = etspy_shipped(d)
    stacks["etspy (shipped)"], margins["etspy (shipped)"] = data, m
    notes["etspy (shipped)"] = f"HAADF_Aligned.hspy: axis {tilt:+.2f}°, shift {ysh:+.2f} px"
    if args.raw:
        stacks["none (raw)"], margins["none (raw)"] = raw, (0, 0)
        notes["none (raw)"] = "unaligned"

    my = max(v[0] for v in margins.values())
    mx = max(v[1] for v in margins.values())
    ny, nx = raw.shape[1:]
    crop = (slice(None), slice(my, ny - my), slice(mx, nx - mx))
    print(f"data {d}: {raw.shape[0]} projections of {ny}×{nx}; margins {margins}; "
          f"judged crop rows {my}:{ny - my}, columns {mx}:{nx - mx}, every {args.step}th column", flush=True)
    res = {}
    for name, s in stacks.items():
        t0 = time.perf_counter()
        res[name] = sirt_residual(background_subtract(s[crop]), angles, step=args.step)
        print(f"  judged {name}: residual {res[name]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    ref = res["etspy (shipped)"]
    best_etspy = min(v for k, v in res.items() if k.startswith("etspy"))
    print("\n| aligner | residual ‖Px−b‖/‖b‖ | ÷ etspy (shipped) | ÷ best etspy | align time | notes |")
    print("|---|---|---|---|---|---|")
    for name, v in res.items():
        tm = f"{times[name]:.0f} s" if name in times else "–"
        print(f"| {name} | {v:.4f} | {v / ref:.3f} | {v / best_etspy:.3f} | {tm} | {notes[name]} |")
    return res


if __name__ == "__main__":
    main()
