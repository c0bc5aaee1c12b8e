"""Block functions for backend tests, importable by dask worker processes (spawned, not forked)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from monai_em.data.chunks import Block


class KillWorkerOnce:
    """Wraps a block function; SIGKILLs its own process on block ``block_id`` the first time (flag file)."""

    def __init__(self, fn, block_id: int, flag: str | os.PathLike):
        self.fn, self.block_id, self.flag = fn, block_id, Path(flag)

    def __call__(self, data: np.ndarray, block: Block) -> np.ndarray:
        if block.id == self.block_id and not self.flag.exists():
            self.flag.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # mid-block: after the read, before any write
        return self.fn(data, block)


class StallAt:
    """Wraps a block function; on block ``block_id`` writes ``flag`` and sleeps (until the cluster is stopped)."""

    def __init__(self, fn, block_id: int, flag: str | os.PathLike, seconds: float = 60.0):
        self.fn, self.block_id, self.flag, self.seconds = fn, block_id, Path(flag), seconds

    def __call__(self, data: np.ndarray, block: Block) -> np.ndarray:
        if block.id == self.block_id:
            self.flag.write_text(str(os.getpid()))
            time.sleep(self.seconds)
        return self.fn(data, block)


class FailAt:
    """Wraps a block function; raises on block ``block_id`` (a crash mid-run of one process)."""

    def __init__(self, fn, block_id: int):
        self.fn, self.block_id = fn, block_id

    def __call__(self, data: np.ndarray, block: Block) -> np.ndarray:
        if block.id == self.block_id:
            raise RuntimeError(f"injected failure in block {block.id}")
        return self.fn(data, block)


class CountBlocks:
    """Wraps a block function; appends each block id it computes to ``log`` (one line per block)."""

    def __init__(self, fn, log: str | os.PathLike):
        self.fn, self.log = fn, Path(log)

    def __call__(self, data: np.ndarray, block: Block) -> np.ndarray:
        out = self.fn(data, block)
        with open(self.log, "a") as f:
            f.write(f"{block.id}\n")
        return out

    def counted(self) -> list[int]:
        return sorted(int(x) for x in self.log.read_text().split()) if self.log.exists() else []
