"""Resolution criteria for Fourier ring/shell correlation curves.

A correlation curve by itself says nothing about resolution; the resolution is where the curve
falls below a threshold. Two are offered:

- the **½-bit** criterion of van Heel & Schatz (2005), the one the paper uses (10 nm FRC in 2D,
  ≈ 11 nm FSC in 3D). It is the correlation at which the information collected in a shell of
  ``n`` Fourier samples is worth half a bit, for the FSC between two *half* data sets:

      T_½bit(n) = (0.2071 + 1.9102 / √n) / (1.2071 + 0.9102 / √n)

  It falls from ≈ 1 for small shells towards 0.2071 / 1.2071 ≈ 0.1716 for large ones, so it
  accounts for the chance correlation of few samples near the centre of Fourier space.
- the fixed **1/7** criterion (Rosenthal & Henderson 2003), T = 1/7 ≈ 0.1429 in every shell.

References
----------
M. van Heel and M. Schatz, "Fourier shell correlation threshold criteria",
J. Struct. Biol. 151, 250–262 (2005): the ½-bit curve, for half data sets.

P. B. Rosenthal and R. Henderson, "Optimal determination of particle orientation, absolute
hand, and contrast loss in single-particle electron cryomicroscopy", J. Mol. Biol. 333,
721–745 (2003).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError

__all__ = ["half_bit_threshold", "one_seventh_threshold", "threshold_curve", "THRESHOLDS"]

#: Names accepted by ``threshold=`` in :func:`chemtomo.resolution.frc` and ``fsc``.
THRESHOLDS = ("half-bit", "1/7")


def _counts(n_per_shell) -> np.ndarray:
    n = np.asarray(n_per_shell, dtype=np.float64)
    if n.size and (not np.all(np.isfinite(n)) or np.any(n < 1)):
        raise InputError(f"n_per_shell must hold counts >= 1 (Fourier samples per shell), "
                         f"got values from {n.min()!r} to {n.max()!r}")
    return n


def half_bit_threshold(n_per_shell) -> np.ndarray:
    """½-bit threshold of van Heel & Schatz (2005) for shells of ``n`` Fourier samples.

    Parameters
    ----------
    n_per_shell : int or array of int, each >= 1
        Number of Fourier samples (pixels in 2D, voxels in 3D) in each ring or shell, counted
        over the full (not Hermitian-halved) transform.

    Returns
    -------
    threshold : float64 array, the shape of ``n_per_shell``

    Notes
    -----
    van Heel & Schatz (2005) give the correlation at which a shell of ``n`` samples
    carries ``I`` bits of information, for two volumes each with signal-to-noise ratio ε:

        T(n) = (ε + 2√ε / √n + 1 / √n) / (ε + 1 + 2√ε / √n).

    Half a bit for the *full* data set means SNR_full = 2^½ − 1 = 0.4142; each *half* data set
    has half of it, ε = 0.2071, so 2√ε = 0.9102 and

        T_½bit(n) = (0.2071 + 1.9102 / √n) / (1.2071 + 0.9102 / √n),

    the curve to use for FSC/FRC between two half data sets (split-half reconstructions,
    two independent scans). Its limit for large ``n`` is 0.2071 / 1.2071 = 0.1716; at n = 1
    it is exactly 1.

    References
    ----------
    M. van Heel and M. Schatz, J. Struct. Biol. 151, 250 (2005).

    Examples
    --------
    >>> float(np.round(half_bit_threshold(1), 4))
    1.0
    >>> float(np.round(half_bit_threshold(10**12), 4))
    0.1716
    """
    inv_sqrt_n = 1.0 / np.sqrt(_counts(n_per_shell))
    return (0.2071 + 1.9102 * inv_sqrt_n) / (1.2071 + 0.9102 * inv_sqrt_n)


def one_seventh_threshold(n_per_shell) -> np.ndarray:
    """The fixed 1/7 ≈ 0.1429 criterion (Rosenthal & Henderson 2003), one value per shell.

    Parameters
    ----------
    n_per_shell : int or array of int, each >= 1
        Shell sizes; only their shape is used (the criterion does not depend on them).

    Returns
    -------
    threshold : float64 array of 1/7, the shape of ``n_per_shell``

    Examples
    --------
    >>> one_seventh_threshold([5, 50, 500]).round(4).tolist()
    [0.1429, 0.1429, 0.1429]
    """
    return np.full(_counts(n_per_shell).shape, 1.0 / 7.0)


def threshold_curve(name: str, n_per_shell) -> np.ndarray:
    """The threshold called ``name`` (one of :data:`THRESHOLDS`) for the given shell sizes."""
    if name == "half-bit":
        return half_bit_threshold(n_per_shell)
    if name == "1/7":
        return one_seventh_threshold(n_per_shell)
    raise InputError(f"threshold must be one of {', '.join(repr(t) for t in THRESHOLDS)}, got {name!r}")
