"""Solver registry and the algorithm-string parser (``"DM:100,RAAR:300,ML:100"``).

Each entry of ``ALGORITHMS`` maps a name to a function ``(run, iterations, options)`` that runs
that many iterations of the solver on a ``Run``; a chain runs its stages in order on one state.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..core.errors import InputError
from .dm import run_dm
from .engine import Run
from .lsqml import run_lsqml
from .ml import run_ml
from .options import PtychoOptions
from .pie import default_batch_size, run_pie
from .raar import run_raar

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "PAPER_ALGORITHM", "parse_algorithm", "run_chain"]

#: The default chain, the same for ``chemtomo ptycho``, ``ptycho.reconstruct`` and ``chemtomo run``:
#: rPIE (steps normalised the rPIE way, α = 0.1: large, fast steps) until it has converged, then
#: ePIE (steps normalised by the brightest illumination: small steps that average the photon
#: noise down) until it has converged. The counts are maxima: each stage stops by itself
#: (``ConvergenceOptions``), so a low-dose scan stops after a few dozen iterations (where more
#: would fit the noise) and a high-dose one runs on. Chosen on the regime matrix of
#: ``benchmarks/ptycho_regimes.py`` (docs/results/ptychography.md): against the chain it
#: replaces (``mPIE:5,ePIE:45``) its OD error is lower in every cell where either is better than
#: 5 %, and it recovers from a flat-disc or too-broad probe guess, which needs the probe updated
#: from the first iteration (``ProbeOptions.start = 0``).
DEFAULT_ALGORITHM = "rPIE:300,ePIE:200"
#: The paper's solver (Yu et al. 2018): 500 RAAR iterations.
PAPER_ALGORITHM = "RAAR:500"


def _pie(alpha_fixed: float | None, with_momentum: bool = False):
    def run(run_: Run, iterations: int, options: PtychoOptions) -> None:
        o = options.pie
        batch = o.batch_size if o.batch_size else default_batch_size(run_.model.n_frames)
        run_pie(run_, iterations, alpha_object=alpha_fixed if alpha_fixed is not None else o.alpha_object,
                alpha_probe=alpha_fixed if alpha_fixed is not None else o.alpha_probe, batch_size=batch,
                momentum=o.momentum if with_momentum else 0.0, friction=o.friction)
    return run


#: Solver name -> function(run, iterations, options). Names are matched case-insensitively.
ALGORITHMS: dict[str, Callable[[Run, int, PtychoOptions], None]] = {
    "RAAR": lambda run, n, o: run_raar(run, n, o.raar.beta),
    "DM": lambda run, n, o: run_dm(run, n),
    "ePIE": _pie(1.0),
    "rPIE": _pie(None),
    "mPIE": _pie(None, with_momentum=True),
    "LSQML": lambda run, n, o: run_lsqml(run, n, batch_size=o.pie.batch_size or lsqml_batch_size(run.model.n_frames)),
    "ML": lambda run, n, o: run_ml(run, n, newton_steps=o.ml.newton_steps, precond_reg=o.ml.precond_reg),
}

def lsqml_batch_size(n_frames: int) -> int:
    """LSQML's mini-batch: PIE's (a tenth of the frames, between 4 and 64). Measured on the regime
    matrix: a quarter of the frames converged more slowly (0.36 against 0.27 OD error on the
    Gaussian 10⁶-photon cell), since fewer, larger batches mean fewer updates per pass."""
    return default_batch_size(n_frames)


_STAGE = re.compile(r"^\s*([A-Za-z]+)\s*:\s*(\d+)\s*$")


def parse_algorithm(text: str) -> list[tuple[str, int]]:
    """Parse ``"NAME:ITERATIONS[,NAME:ITERATIONS...]"`` into ``[(name, iterations), ...]``.

    Names are case-insensitive and returned in their canonical spelling (see ``ALGORITHMS``);
    iterations are positive integers.

    Examples
    --------
    >>> parse_algorithm("dm:100, RAAR:300,ML:100")
    [('DM', 100), ('RAAR', 300), ('ML', 100)]
    """
    valid = ", ".join(ALGORITHMS)
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"algorithm must be a string like 'RAAR:500' or 'DM:100,RAAR:300,ML:100' "
                         f"(valid names: {valid}), got {text!r}")
    canonical = {name.lower(): name for name in ALGORITHMS}
    stages = []
    for part in text.split(","):
        match = _STAGE.match(part)
        if match is None:
            raise InputError(f"algorithm {text!r}: cannot parse {part.strip()!r}; expected NAME:ITERATIONS "
                             f"with NAME one of {valid} and ITERATIONS a positive integer")
        name, count = match.group(1), int(match.group(2))
        if name.lower() not in canonical:
            raise InputError(f"algorithm {text!r}: unknown name {name!r}; valid names: {valid}")
        if count < 1:
            raise InputError(f"algorithm {text!r}: {name} needs at least 1 iteration, got {count}")
        stages.append((canonical[name.lower()], count))
    return stages


def run_chain(run: Run, stages: list[tuple[str, int]]) -> None:
    """Run the parsed stages in order on one ``Run``; each stage stops early when it has converged
    (``ConvergenceOptions``; the next stage starts), the chain when a stage diverged.
    ``run.stop_reason`` then says why the last stage ended."""
    for name, count in stages:
        run.start_stage()
        ALGORITHMS[name](run, count, run.options)
        if run.diverged:
            return
