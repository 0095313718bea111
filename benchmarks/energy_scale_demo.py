"""The pipeline's ``align.energy_scale`` on a demo run (issue 24, part 1): auto against off.

Copies an existing run store (``chemtomo demo DIR`` writes ``DIR/run.zarr``) twice, reruns the
tilt series, alignment, reconstruction and chemistry with ``align.energy_scale`` "auto" and
"off", and prints the energy registration and the state of charge (SOC ± its σ) of each, so the
SOC's change can be compared with its error.

Run: ``PYTHONPATH=src python benchmarks/energy_scale_demo.py DIR/run.zarr``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from chemtomo.pipeline.run import open_run, run_pipeline


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("store", help="an existing demo run store (RUN.zarr) with projections")
    args = ap.parse_args(argv)
    print("| energy_scale | offsets (px) | pixel ratios | decision | SOC ± σ |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("auto", "off"):
            dst = Path(tmp) / f"{mode}.zarr"
            shutil.copytree(args.store, dst)
            _, cfg = open_run(dst)
            cfg = replace(cfg, align=replace(cfg.align, energy_scale=mode))
            store = run_pipeline(cfg, dst, only=("tiltseries", "align", "recon", "chem"), force=True)
            a, c = store.group_attrs("alignment"), store.group_attrs("chem")
            offs = ", ".join(f"{e}: ({v[0]:+.3f}, {v[1]:+.3f})" for e, v in a["energy_offsets_px"].items())
            ratios = ", ".join(f"{e}: {v:.5f}" for e, v in a.get("energy_pixel_ratio", {}).items())
            notes = "; ".join((a.get("energy_registration") or {}).get("notes", [])) or "—"
            print(f"| {mode} | {offs} | {ratios} | {notes} | {c['soc']:.4f} ± {c['soc_sigma']:.4f} |")


if __name__ == "__main__":
    main()
