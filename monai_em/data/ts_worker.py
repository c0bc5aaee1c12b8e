"""Tensorstore reads, in this process or in a helper process that serves them over a pipe.

Tensorstore aborts a forked child ("fork() use detected") once the parent process has used it,
even through a fresh handle. A process forked from a tensorstore user (a DataLoader worker, say)
therefore reads through a helper started with ``python -P ts_worker.py``: a fresh interpreter
(not a fork) that opens the stores and returns the boxes, one pickled request and reply at a time
on its stdin/stdout. The file imports nothing from monai_em, so the helper starts in well under a
second.
"""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np

__all__ = ["open_store", "read_ranges", "serve"]

_STORES: dict[str, object] = {}


def open_store(spec: dict):
    """The tensorstore of ``spec`` (a JSON spec), opened once per process and cached."""
    import tensorstore as ts

    key = json.dumps(spec, sort_keys=True)
    if key not in _STORES:
        _STORES[key] = ts.open(spec, read=True).result()
    return _STORES[key]


def read_ranges(spec: dict, ranges: list[tuple[int, int]]) -> np.ndarray:
    """``[start, stop)`` per leading dimension of the store (the rest whole), in the store's order."""
    store = open_store(spec)
    index = tuple(slice(int(a), int(b)) for a, b in ranges)
    return np.asarray(store[index].read().result())


def serve(stdin, stdout) -> None:
    """Answer ``(spec, ranges)`` requests with ``("ok", array)`` or ``("error", message)`` until EOF."""
    while True:
        try:
            spec, ranges = pickle.load(stdin)
        except EOFError:
            return
        try:
            reply = ("ok", read_ranges(spec, ranges))
        except Exception as e:  # noqa: BLE001  sent back and raised in the caller with its context
            reply = ("error", f"{type(e).__name__}: {e}")
        pickle.dump(reply, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the reply stream
    serve(sys.stdin.buffer, replies)
