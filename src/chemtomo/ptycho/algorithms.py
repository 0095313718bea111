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
from .ml import run_ml
from .options import PtychoOptions
from .pie import default_batch_size, run_pie
from .raar import run_raar

__all__ = ["ALGORITHMS", "AUTO_CHAINS", "DEFAULT_ALGORITHM", "PAPER_ALGORITHM", "parse_algorithm", "run_chain"]

#: The default chain: mPIE for fast convergence, then ePIE's smaller steps to average the noise
#: down (see ``reconstruct``'s docstring for why it is not the paper's RAAR:500).
DEFAULT_ALGORITHM = "mPIE:5,ePIE:45"
#: The paper's solver (Yu et al. 2018): 500 RAAR iterations.
PAPER_ALGORITHM = "RAAR:500"
#: The chains the pipeline's ``ptycho.algorithm = "auto"`` chooses from, by split-half FRC on the
#: FRC scans (``pipeline.ptycho_stage``). Neither is the more accurate everywhere: against the
#: truth, the default chain has 0.54–0.65× RAAR's error on the ptychography benchmark's scans at
#: 10⁶ photons per frame, RAAR:50 has 0.32–0.47× the default's on the paper preset's scans
#: (``benchmarks/ptycho_regimes.py``). RAAR has converged by 50 iterations on those (the
#: paper's 500 change the error by under 5 %).
AUTO_CHAINS = (DEFAULT_ALGORITHM, "RAAR:50")


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
    "ML": lambda run, n, o: run_ml(run, n, newton_steps=o.ml.newton_steps, precond_reg=o.ml.precond_reg),
}

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
    """Run the parsed stages in order on one ``Run``; stops early if a stage diverged."""
    for name, count in stages:
        ALGORITHMS[name](run, count, run.options)
        if run.diverged:
            return
