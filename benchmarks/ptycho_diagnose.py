"""Why does the default miss a cell of the regime matrix? Three diagnostics on its cells (issue 22).

- ``trajectory``: OD error against the truth every 10 iterations of each chain, with the
  stopping rule off (every stage runs its full count): does a chain reach a lower error than
  where it stops, and does a later stage undo an earlier one?
- ``average``: the default as it runs (stopping rule on, ``ConvergenceOptions.average`` off),
  its last iterate against the mean of its last 5, 10 and 20 iterates and their exponential
  moving average over the last stage (what ``average`` does; Polyak–Ruppert averaging): is the
  error at the stop the fluctuation of a stochastic solver, which averaging removes, or a bias,
  which it cannot?
- ``probe``: each chain from the cell's own guess and from the exact probe (also with the exact
  probe held fixed): is the probe estimate what limits the error, or the object's noise?

The cells, simulator and error are ``ptycho_regimes.py``'s. One core per reconstruction.

Usage::

    python benchmarks/ptycho_diagnose.py trajectory --cells 8 16 --seeds 0 1 --algos LSQML:300 ML:200
    python benchmarks/ptycho_diagnose.py average --seeds 1
    python benchmarks/ptycho_diagnose.py probe --cells 8 --algos LSQML:300 ePIE:100
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ptycho_regimes as R


def _run(scan, chain: str, shape, options=None, iterates: _Iterates | None = None):
    """chemtomo's reconstruction on one core, every iterate handed to ``iterates``."""
    from chemtomo.core.fft import one_core
    from chemtomo.ptycho import reconstruct

    def progress(done: int, total: int) -> None:
        if iterates is not None:
            iterates.add(done, sys._getframe(1).f_locals["self"])  # the calling Run

    with warnings.catch_warnings(), one_core():
        warnings.simplefilter("ignore")
        return reconstruct(scan, chain, object_shape=shape, frc=False, seed=0, progress=progress, options=options)


class _Iterates:
    """The objects a run passes through: every ``every``-th, the last ``keep``, and the
    exponential moving average (weight 2/11) over the stage the run is in, as
    ``ConvergenceOptions.average`` forms it. They are taken before the air reference;
    :meth:`referenced` carries the final transmission's reference onto any of them."""

    def __init__(self, every: int = 10, keep: int = 20):
        self.every = every
        self.sampled: list[tuple[int, np.ndarray]] = []
        self.recent: collections.deque = collections.deque(maxlen=keep)
        self.ema: np.ndarray | None = None
        self._stage = -1

    def add(self, done: int, run) -> None:
        obj = np.array(run.state.obj)
        self.recent.append(obj)
        if done % self.every == 0:
            self.sampled.append((done, obj))
        if len(run.stage_iterations) != self._stage:  # the first iterate of a stage starts its average
            self.ema, self._stage = obj.astype(np.complex128), len(run.stage_iterations)
        else:
            self.ema += (2 / 11) * (obj - self.ema)

    def referenced(self, transmission: np.ndarray):
        """A function that gives an iterate the final transmission's air reference (a factor
        and a phase ramp: final transmission ÷ final iterate)."""
        ref = np.asarray(transmission) / self.recent[-1]
        return lambda obj: obj * ref


def trajectory(cells, seeds, algos, every: int = 10) -> None:
    from chemtomo.ptycho.options import ConvergenceOptions, PtychoOptions

    no_stop = PtychoOptions(convergence=ConvergenceOptions(tolerance=0))
    for ci in cells:
        for seed in seeds:
            scan, obj, lit, _ = R.simulate(R.CELLS[ci], seed)
            textbook, _ = R.textbook_epie(scan, obj.shape)
            print(f"cell {ci}, seed {seed}: textbook ePIE (60 it) {R.od_error(textbook, obj, lit):.3f}", flush=True)
            for chain in algos:
                its = _Iterates(every=every, keep=1)
                p = _run(scan, chain, obj.shape, no_stop, its)
                referenced = its.referenced(p.transmission)
                cols = [f"{d}:{R.od_error(referenced(o), obj, lit):.3f}" for d, o in its.sampled]
                print(f"  {chain}: {' '.join(cols)}", flush=True)


def average(cells, seeds, algos) -> None:
    from chemtomo.ptycho import DEFAULT_ALGORITHM
    from chemtomo.ptycho.options import ConvergenceOptions, PtychoOptions

    last_iterate = PtychoOptions(convergence=ConvergenceOptions(average=False))  # the averages are computed here
    for seed in seeds:
        for ci in cells:
            scan, obj, lit, _ = R.simulate(R.CELLS[ci], seed)
            for chain in algos:
                its = _Iterates()
                p = _run(scan, DEFAULT_ALGORITHM if chain == "default" else chain, obj.shape, last_iterate, its)
                referenced = its.referenced(p.transmission)
                recent = list(its.recent)
                cols = [f"final {R.od_error(np.asarray(p.transmission), obj, lit):.3f}"]
                cols += [f"mean of last {k} {R.od_error(referenced(np.mean(recent[-k:], axis=0)), obj, lit):.3f}"
                         for k in (5, 10, 20)]
                cols.append(f"EMA 2/11 over the last stage {R.od_error(referenced(its.ema), obj, lit):.3f}")
                print(f"seed {seed}, cell {ci}, {p.info['algorithm']} "
                      f"({'+'.join(str(n) for _, n in p.info['stage_iterations'])} it, {p.info['stop_reason']}): "
                      + ", ".join(cols), flush=True)


def probe(cells, seeds, algos) -> None:
    from chemtomo.ptycho.options import ProbeOptions, PtychoOptions

    fixed = PtychoOptions(probe=ProbeOptions(refine=False))
    for ci in cells:
        for guess in ("exact", R.CELLS[ci].guess):
            for seed in seeds:
                scan, obj, lit, _ = R.simulate(dataclasses.replace(R.CELLS[ci], guess=guess), seed)
                cols = []
                for chain in algos:
                    for opts, tag in ((None, ""), (fixed, ", probe fixed")):
                        if opts is fixed and guess != "exact":
                            continue
                        p = _run(scan, chain, obj.shape, opts)
                        cols.append(f"{chain}{tag} {R.od_error(np.asarray(p.transmission), obj, lit):.3f} "
                                    f"({p.info['iterations']} it)")
                print(f"cell {ci}, guess {guess}, seed {seed}: " + " | ".join(cols), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["trajectory", "average", "probe"])
    ap.add_argument("--cells", type=int, nargs="+", default=None, help="cell indices (default: all; 8 for probe)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--algos", nargs="+", default=None,
                    help="chains (default: the default; trajectory LSQML:300; probe LSQML:300 ePIE:100)")
    args = ap.parse_args()
    defaults = {"trajectory": ["LSQML:300"], "average": ["default"], "probe": ["LSQML:300", "ePIE:100"]}
    algos = args.algos or defaults[args.what]
    cells = args.cells if args.cells is not None else ([8] if args.what == "probe" else range(len(R.CELLS)))
    {"trajectory": trajectory, "average": average, "probe": probe}[args.what](cells, args.seeds, algos)


if __name__ == "__main__":
    main()
