"""Memory limits of the tomography kernels: how much the machine has and a clear refusal above it.

Its own module so that ``geometry`` (the sparse system matrix) and ``operator`` (the ray
operator) both use it without importing each other.
"""

from __future__ import annotations

import os

from ..core.errors import InputError

__all__ = ["check_memory", "memory_limit_bytes"]


def memory_limit_bytes() -> int:
    """Default memory limit: 80 % of the machine's physical memory."""
    try:
        return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # platforms without sysconf: assume 8 GiB
        return 8 << 30


def check_memory(need_bytes: int, what: str, hint: str, limit_bytes: int | None = None) -> None:
    """Raise InputError when ``need_bytes`` exceeds the limit, saying how much and what to do."""
    limit = memory_limit_bytes() if limit_bytes is None else int(limit_bytes)
    if need_bytes > limit:
        raise InputError(f"{what} needs about {need_bytes / 2**30:.2f} GiB of memory but the limit is "
                         f"{limit / 2**30:.2f} GiB; {hint}")
