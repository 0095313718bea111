"""Shared HDF5 helpers for the readers: open with a clear error, find the first present path."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputError

__all__ = ["open_h5", "first_present", "atomic_path"]


@contextmanager
def open_h5(path: str | os.PathLike):
    """Open an HDF5 file read-only; a missing, unreadable or truncated file is an InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected an HDF5 (CXI) file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(f"{p}: cannot be read as HDF5 (unreadable or truncated file): {exc}") from exc
    try:
        yield f
    finally:
        f.close()


def first_present(f: h5py.File, paths: tuple[str, ...]):
    """The first of ``paths`` present in ``f`` as (path, dataset), or (None, None)."""
    for p in paths:
        try:
            if p in f:
                return p, f[p]
        except (KeyError, OSError, RuntimeError):  # dangling links
            continue
    return None, None


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_scalar(f: h5py.File, path: str, name: str, src: Path) -> float:
    """The number at ``/path`` of an open file; an InputError naming file, path and meaning otherwise."""
    if path not in f:
        raise InputError(f"{src}: missing dataset /{path} ({name})")
    try:
        v = np.asarray(f[path][()], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{src}: /{path} ({name}) is not numeric: {exc}") from exc
    if v.size != 1:
        raise InputError(f"{src}: /{path} ({name}) must be a scalar, found shape {v.shape}")
    return float(v.reshape(()))
