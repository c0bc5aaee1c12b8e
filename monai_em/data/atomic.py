"""Atomic file writes: a hidden temp file in the same folder, renamed over the final name when complete.

The temp name ``.{stem}.{pid}.tmp{suffix}`` is written here once: :func:`write_atomically` writes
through it and :func:`remove_leftovers` clears the ones a killed writer left.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["remove_leftovers", "write_atomically"]


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object], fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on ``.{stem}.{pid}.tmp{suffix}`` beside ``path``, then rename it to ``path``.

    The final name therefore means finished: a killed writer leaves at most the hidden temp file
    (removed here on any error). ``fsync=True`` puts the data on disk before the name appears.
    Returns ``path`` as a Path.
    """
    path = Path(path)
    tmp = _temporary(path, str(os.getpid()))
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _temporary(path: Path, pid: str) -> Path:
    return path.with_name(f".{path.stem}.{pid}.tmp{path.suffix}")


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files of ``path`` that killed writers (any process) left; returns them."""
    path = Path(path)
    found = sorted(path.parent.glob(_temporary(Path(glob.escape(path.name)), "*").name))
    for stale in found:
        stale.unlink(missing_ok=True)
    return found
