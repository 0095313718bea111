"""Issue 22, session 4: the default's regime table against the codes stored for the held-out seed.

Reads the output of ``ptycho_regimes.py --seed 1 --algos default`` (this session's default) and
the session-3 table of every code on the same seed from ``benchmarks/RESULTS.md`` ("Issue 22:
regimes (session 3)": the same cells and seed, so the same data; textbook ePIE, which the
stopping rule does not touch, reproduces its stored values exactly), and prints one table: the
new default, the best stored code, their ratio, and the session-3 default's ratio.

    python benchmarks/ptycho_default_table.py NEW_OUTPUT.txt [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

SECTION = "## Issue 22: regimes (session 3)"


def read_rows(lines, first_only=True):
    """{cell: (name, {column: value})} of the first markdown results table in ``lines`` (the
    at-convergence table of a ``ptycho_regimes.py`` output; ``inf`` where a code diverged)."""
    header, rows = None, {}
    for line in lines:
        if line.startswith("| cell:"):
            if header is not None and first_only:
                break
            header = [h.strip() for h in line.strip().strip("|").split("|")]
            continue
        m = re.match(r"\| (\d+): (.*?) \(\d+ frames\) \|", line)
        if header and m:
            parts = [p.strip() for p in line.strip().strip("|").split("|")]
            values = {}
            for col, text in zip(header[1:-1], parts[1:-1]):
                num = re.match(r"\**([0-9.]+|inf)", text)
                if num:
                    values[col] = float(num.group(1))
            rows[int(m.group(1))] = (m.group(2), values)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", type=Path, help="output of ptycho_regimes.py --algos default")
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    text = args.results.read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith(SECTION))
    old = read_rows(text[start:])
    new_lines = args.new.read_text().splitlines()
    new = read_rows(new_lines)
    # the default's column: "0.617 (0.7 s, 80 it (relative fall), LSQML:300)" (stages "50+63+35 it")
    new_it = {int(m.group(1)): m.group(2) for m in (re.match(r"\| (\d+):[^|]*\| \**[0-9.]+ \((.*?)\)\** \|", line)
                                                     for line in new_lines) if m}
    print("| cell | default now | chain it ran | best stored code | default/best | session-3 default/best |")
    print("|---|---:|---|---|---:|---:|")
    within, missed, ratios = 0, {}, []
    for cell in sorted(new):
        name, values = new[cell]
        if cell not in old:
            continue
        stored = old[cell][1]
        best_code = min(stored, key=stored.get)
        best = min(stored[best_code], values["default"])
        ratio = values["default"] / best
        ratios.append(ratio)
        old_ratio = stored["default"] / stored[best_code]
        if ratio <= 1.05:
            within += 1
        else:
            missed[cell] = round(ratio, 2)
        info = new_it.get(cell, "").split(", ")
        chain = info[2] if len(info) > 2 else ""
        print(f"| {cell}: {name} | {values['default']:.3f} ({', '.join(info[:2])}) | {chain} | "
              f"{best_code} {stored[best_code]:.3f} | {ratio:.2f} | {old_ratio:.2f} |")
    print()
    print(f"default within 5 % of the best: {within} of {len(ratios)}; worst {max(ratios):.2f}; missed: {missed}")

if __name__ == "__main__":
    main()
