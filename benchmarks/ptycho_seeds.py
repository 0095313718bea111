"""The regime matrix over several seeds: how often the default is within 5 % of the best code,
per seed and on the mean over seeds (issue 22).

Reads the at-convergence tables that ``benchmarks/ptycho_regimes.py`` prints (one file per seed,
or several files per seed holding different cells), takes each cell's OD error per code, and
prints

- per seed: the cells where the default is within 5 % of the best code, and the ratios it missed;
- on the mean over the seeds: each cell's mean error of the default against the best other code's
  mean error (the criterion this project reports: a single seed's best code changes from seed to
  seed by more than 5 % in the noise-limited cells);
- a hindsight oracle: per cell the code with the best mean, counted per seed (what no fixed
  choice can beat).

The tables are kept in ``benchmarks/regimes/``: ``seedS.md``, every code (seeds 0–9 run in
session 12, seeds 10–14 in session 13, seeds 15–19 in session 14); ``session13_seedS.md``, the default and ``LSQML:300``
with session 13's final code on every seed (read after ``seedS.md``, so they replace those two
columns: session 13 changed LSQML); ``session14_seedS.md``, the default alone with session 14's
code (it replaces the default's column; session 14 changed nothing else); ``session16_seedS.md``
(seeds 0–19), every chemtomo code with session 16's defocus check (``ProbeOptions.defocus_at``),
read after them: it replaces every chemtomo column, and ``seedS.md`` still gives the textbook
ePIE, PtyLab and pty-chi, which the check does not touch; ``session17_seedS.md`` (seeds 0–19,
cells 6 and 17, the only ones whose guess's far field is unlike the data's), every chemtomo code
with session 17's probe estimated from the data (``ProbeOptions.far_field_min``), read last;
not read by default: ``later_min0_seedS.md`` (seeds 0–24) and ``heldout_default_seedS.md``
(seeds 20–24), session 15's measurement of ``ConvergenceOptions.later_min_iterations = 0``
against the default on the fourteen cells that run the mid-dose chain (not adopted);
``heldout_every_seedS.md`` (seeds 20–34), every code with session 19's tree (the session-18
default), read only when passed: seeds 25–34 were never run before, 20–24 only with the default
as checks of changes chosen on seeds 0–19 (``ptycho_seeds.py benchmarks/regimes/heldout_every_seed*.md
--seeds 25 26 27 28 29 30 31 32 33 34``); ``session20_seedS.md`` (seeds 0–19, read last) and
``heldout_session20_seedS.md`` (seeds 20–34, read only when passed, after
``heldout_every_seedS.md``), the default and ``LSQML:300`` with session 20's LSQML step fraction
(``lsqml.STEP_FRACTION`` = 1): they replace those two columns; ``session21_seedS.md`` (seeds
0–19, read last) and ``heldout_session21_seedS.md`` (seeds 20–34, read only when passed, after
``heldout_session20_seedS.md``), the default alone with session 21's defocus margin
(``ProbeOptions.defocus_margin``): they replace its column; ``heldout_every21_seedS.md`` (seeds
35–44, read only when passed), every code with session 21's tree, run in session 22 on seeds never
run before; ``tol1e3_seedS.md`` (seeds 0–34,
read only when passed with ``--default``), session 20's default with the relative-fall tolerance
halved (``--convergence tolerance=0.001``, measured and not adopted); ``default_session13_seedS.md``, session 13's default on
seeds 15–19 (whose ``seedS.md``, every code, were first run with session 14's code);
``default_session12_seedS.md``, the session-12 default on seeds 0–4 and 10–14 (on seeds 5–9 it
is ``seedS.md``'s own default column); ``intel24_seedS.md`` (seeds 0–44, read only when passed
with ``--default``), the same default as ``session21_seedS.md`` run in session 24 on the 2-core
Intel sandbox, where every table before session 23 came from an AMD one (77 of seeds 0–19's 480
seed-cells differ in the third decimal: the CPU, not the code); ``session25_seedS.md`` (seeds 0–44,
read only when passed with ``--default``), session 25's default, which weights the low-dose
chain's object by its split-half FRC (``PtychoOptions.frc_weighting``), on the same Intel
sandbox: **today's default**. A ``--default`` file replaces the default's column of its
seed. A new default is judged without rerunning every
code: run it alone (``ptycho_regimes.py --seed S --algos default > new_S.md``) and pass those
files with ``--default``.

Usage::

    python benchmarks/ptycho_seeds.py --seeds 0 1 2 3 4 5 6 7 8 9        # the session-21 default, seeds 0-9
    python benchmarks/ptycho_seeds.py --default benchmarks/regimes/session25_seed*.md --seeds 0 1 2 3 4 5 6 7 8 9
                                      # today's default (session 25), seeds 0-9
    python benchmarks/ptycho_seeds.py --seeds 10 11 12 13 14              # held out until session 13
    python benchmarks/ptycho_seeds.py --seeds 15 16 17 18 19              # held out until session 14
    python benchmarks/ptycho_seeds.py --seeds 15 16 17 18 19 --default benchmarks/regimes/default_session13_seed*.md
    python benchmarks/ptycho_seeds.py --default benchmarks/regimes/default_session12_seed*.md benchmarks/regimes/seed[5-9].md
                                      # the session-12 rule against today's codes (its column of seeds 5-9 is in seedS.md)
    python benchmarks/ptycho_seeds.py benchmarks/regimes/seed*.md --seeds 10 11 12 13 14   # without session13_*.md
    python benchmarks/ptycho_seeds.py --default new_{5..9}.md --seeds 5 6 7 8 9
    python benchmarks/ptycho_seeds.py benchmarks/regimes/heldout_every_seed*.md \
        benchmarks/regimes/heldout_session20_seed*.md benchmarks/regimes/heldout_session21_seed*.md \
        --seeds 25 26 27 28 29 30 31 32 33 34
    python benchmarks/ptycho_seeds.py benchmarks/regimes/heldout_every21_seed*.md --seeds 35 36 37 38 39 40 41 42 43 44

Not a test; reads text only (no reconstruction).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptycho_default_table import read_rows

HERE = Path(__file__).resolve().parent / "regimes"


def read_table(path: Path) -> tuple[int, dict[int, dict[str, float]], dict[int, str]]:
    """(seed, {cell: {code: error}}, {cell: name}) from one ``ptycho_regimes.py`` output."""
    lines = path.read_text().splitlines()
    seed = next((int(m.group(1)) for line in lines if (m := re.search(r"; seed (\d+);", line))), None)
    if seed is None:
        raise SystemExit(f"{path}: no '; seed N;' line: not an output of ptycho_regimes.py")
    rows = read_rows(lines)
    if not rows:
        raise SystemExit(f"{path}: no results table ('| cell: ...' header and '| N: ... (K frames) |' rows)")
    return seed, {cell: values for cell, (_, values) in rows.items()}, {cell: name for cell, (name, _) in rows.items()}


def load(paths, default_paths) -> tuple[dict[int, dict[int, dict[str, float]]], dict[int, str]]:
    """{seed: {cell: {code: error}}} from every file, the ``--default`` files' default column
    replacing the one of the full tables."""
    data: dict[int, dict[int, dict[str, float]]] = defaultdict(dict)
    names: dict[int, str] = {}
    for path in paths:
        seed, table, n = read_table(Path(path))
        names.update(n)
        for cell, row in table.items():
            data[seed].setdefault(cell, {}).update(row)
    for path in default_paths:
        seed, table, _ = read_table(Path(path))
        for cell, row in table.items():
            if seed in data and cell in data[seed]:
                data[seed][cell]["default"] = row["default"]
    return data, names


def summarise(data, names, seeds: list[int], tolerance: float = 1.05) -> None:
    cells = sorted(set.intersection(*(set(data[s]) for s in seeds)))
    others = sorted(set.intersection(*(set(data[s][c]) for s in seeds for c in cells)) - {"default"})
    print(f"seeds {seeds}; {len(cells)} cells; codes: default and {', '.join(others)}\n")
    print("| seed | default within 5 % of the best | missed (default ÷ best) |\n|---|---:|---|")
    for s in seeds:
        ratios = {c: data[s][c]["default"] / min(min(data[s][c][k] for k in others), data[s][c]["default"])
                  for c in cells}
        missed = ", ".join(f"{c}: {r:.2f}" for c, r in ratios.items() if r > tolerance)
        print(f"| {s} | {sum(r <= tolerance for r in ratios.values())} of {len(cells)} | {missed} |")
    print(f"\nOn the mean over seeds {seeds}:\n")
    print("| cell | default | best other code | default ÷ best |\n|---|---:|---|---:|")
    within, oracle = 0, [0] * len(seeds)
    for c in cells:
        mean = {k: sum(data[s][c][k] for s in seeds) / len(seeds) for k in others + ["default"]}
        best = min(others, key=mean.get)
        ratio = mean["default"] / mean[best]
        within += ratio <= tolerance
        fmt = "{:.4f}" if mean["default"] < 0.05 else "{:.3f}"
        mark = f"**{ratio:.2f}**" if ratio > tolerance else f"{ratio:.2f}"
        print(f"| {c}: {names.get(c, '')} | {fmt.format(mean['default'])} | {best} {fmt.format(mean[best])} | {mark} |")
        top = min(mean, key=mean.get)  # the oracle: the code best on the mean, default included
        for i, s in enumerate(seeds):
            oracle[i] += data[s][c][top] <= tolerance * min(data[s][c][k] for k in mean)
    print(f"\nDefault within 5 % of the best on the mean: {within} of {len(cells)}.")
    print(f"Hindsight oracle (per cell the code best on the mean), within 5 % per seed: {oracle}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="*", help="ptycho_regimes.py outputs, later files' values replacing earlier "
                                               "ones' (default: benchmarks/regimes/seed*.md, then session13_seed*.md, "
                                               "session14_seed*.md, session16_seed*.md, "
                                               "session17_seed*.md, session20_seed*.md, then session21_seed*.md)")
    ap.add_argument("--default", nargs="*", default=[],
                    help="outputs of --algos default whose column replaces the default's (default: none)")
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds to summarise (default: all read)")
    args = ap.parse_args()
    tables = args.tables or (sorted(HERE.glob("seed*.md")) + sorted(HERE.glob("session13_seed*.md"))
                             + sorted(HERE.glob("session14_seed*.md")) + sorted(HERE.glob("session16_seed*.md"))
                             + sorted(HERE.glob("session17_seed*.md")) + sorted(HERE.glob("session20_seed*.md"))
                             + sorted(HERE.glob("session21_seed*.md")))
    data, names = load(tables, args.default)
    seeds = args.seeds or sorted(data)
    missing = [s for s in seeds if s not in data]
    if missing:
        raise SystemExit(f"no table for seed(s) {missing} in {[str(t) for t in tables]}")
    summarise(data, names, seeds)


if __name__ == "__main__":
    main()
