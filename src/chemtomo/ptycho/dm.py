"""Difference map (Thibault et al. 2008): ψ ← ψ + P_F(2 P_O ψ − ψ) − P_O ψ.

It is RAAR with β = 1 (see ``raar.py``), so it shares RAAR's fused passes and cost.

References
----------
Thibault, Dierolf, Menzel, Bunk, David & Pfeiffer, Science 321, 379 (2008).
"""

from __future__ import annotations

from .engine import Run
from .raar import run_raar

__all__ = ["run_dm"]


def run_dm(run: Run, iterations: int) -> None:
    """Run ``iterations`` difference-map iterations."""
    run_raar(run, iterations, beta=1.0)
