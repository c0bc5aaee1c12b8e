"""Atomic file writes: a hidden temp file in the same folder, renamed over the final name when complete."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object], fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on ``.{stem}.{pid}.tmp{suffix}`` beside ``path``, then rename it to ``path``.

    The final name therefore means finished: a killed writer leaves at most the hidden temp file
    (removed here on any error). ``fsync=True`` puts the data on disk before the name appears.
    Returns ``path`` as a Path.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
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
