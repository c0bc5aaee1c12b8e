"""Where predictions go: fingerprints, the blockwise OME-Zarr output and its done-markers, HDF5 chunk files.

A fingerprint is the SHA-1 of the network's weights and the settings that change outputs; every
finished block (or chunk file) carries it, so a rerun redoes exactly the blocks that are missing
or were written by another network or other settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
import zarr

from ..data.ome_zarr import create_ome_zarr, open_ome_zarr

__all__ = [
    "CHUNK_DATASET",
    "DoneMarkers",
    "chunk_path",
    "create_output",
    "fingerprint_of",
    "network_digest",
    "read_fingerprint",
    "write_chunk_file",
]

logger = logging.getLogger(__name__)

CHUNK_DATASET = "main"
CHUNK_SUFFIX = ".h5"
FINGERPRINT_ATTR = "fingerprint"


def network_digest(network: Callable) -> str:
    """SHA-1 of a network: its class and every parameter/buffer (name, dtype, shape, bytes) in state_dict order.

    A callable that is not a ``torch.nn.Module`` is identified by its module and qualified name only.
    """
    h = hashlib.sha1()
    kind = network if hasattr(network, "__qualname__") else type(network)
    h.update(f"{getattr(kind, '__module__', '')}.{kind.__qualname__}".encode())
    if isinstance(network, torch.nn.Module):
        for name, t in network.state_dict().items():
            t = t.detach().to("cpu").contiguous()
            h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint_of(network: Callable, settings: dict) -> str:
    """SHA-1 of :func:`network_digest` and the JSON of ``settings`` (keys sorted)."""
    text = json.dumps({"network": network_digest(network), **settings}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


# ---------------------------------------------------------------- blockwise output (zarr) and done-markers


def create_output(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype,
    chunks: Sequence[int],
    *,
    voxel_size: Sequence[float] = (1, 1, 1),
    offset: Sequence[float] = (0, 0, 0),
    unit: str | None = None,
    attrs: dict | None = None,
    shards: Sequence[int] | None = None,
) -> tuple[zarr.Array, bool]:
    """``(array, reused)``: the ``(C, Z, Y, X)`` OME-Zarr output at ``path`` (level 0, chunks ``(C, cz, cy, cx)``).

    The existing image when its shape, dtype and chunks match (a resumed run; ``attrs`` updated;
    ``reused`` True), else a new one (an existing one is replaced, with a warning). ``voxel_size`` /
    ``offset`` / ``unit``: the input's, (z, y, x). ``shards``: ``(z, y, x)`` shard shape (zarr v3), or None.
    """
    path = Path(path)
    shape, chunks, dtype = tuple(int(s) for s in shape), tuple(int(c) for c in chunks), np.dtype(dtype)
    shards = None if shards is None else tuple(int(s) for s in shards)
    if path.exists():
        try:
            arr = open_ome_zarr(path, mode="r+")
            same_shards = (arr.shards or None) == (None if shards is None else (shape[0], *shards))
            if arr.shape == shape and arr.dtype == dtype and tuple(arr.chunks) == chunks and same_shards:
                zarr.open_group(path, mode="r+").attrs.update(attrs or {})
                return arr, True
            found = f"shape {arr.shape}, {arr.dtype}, chunks {arr.chunks}"
        except (ValueError, FileNotFoundError, KeyError) as e:  # not an OME-Zarr image, or damaged
            found = f"no readable OME-Zarr image ({e})"
        logger.warning("output %s holds %s, this run writes shape %s, %s, chunks %s: replacing it",
                       path, found, shape, dtype, chunks)  # fmt: skip
    arr = create_ome_zarr(
        path, shape, dtype, chunks[1:], voxel_size=voxel_size, offset=offset, unit=unit, attrs=attrs,
        shards=shards, overwrite=True,
    )  # fmt: skip
    return arr, False


class DoneMarkers:
    """One small JSON file per finished block in ``folder``: ``{"fingerprint": ..., "box": ...}``.

    A marker is written (temp file + atomic rename) only after the block's data is in the store, so a
    worker killed mid-block leaves its block unmarked and it is redone; a marker with another
    fingerprint marks a stale block.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def fingerprint(self, name: str) -> str | None:
        """The fingerprint recorded for block ``name``, or None (no marker, or an unreadable one)."""
        try:
            return json.loads(self.path(name).read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None

    def mark(self, name: str, fingerprint: str, box) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path(name)
        tmp = final.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "box": [list(ab) for ab in box]}))
        os.replace(tmp, final)

    def clear(self) -> None:
        """Remove every marker (the output array was replaced)."""
        shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------- HDF5 chunk files (the stitched path)


def chunk_path(output_dir: str | os.PathLike, box) -> Path:
    """Final file of the chunk with unpadded ``box``: ``<output_dir>/z0-z1-y0-y1-x0-x1.h5``."""
    from ..data.chunks import chunk_name

    return Path(output_dir) / f"{chunk_name(box)}{CHUNK_SUFFIX}"


def read_fingerprint(path: str | os.PathLike) -> str | None:
    """The fingerprint stored in a chunk file, or None (no attribute, or an unreadable file)."""
    try:
        with h5py.File(path, "r") as h5:
            value = h5[CHUNK_DATASET].attrs.get(FINGERPRINT_ATTR)
    except (OSError, KeyError):
        return None
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def write_chunk_file(
    path: Path, array: np.ndarray, box, compression: str | None, fingerprint: str | None = None
) -> None:
    """Write to a hidden temp file in the same folder, fsync it, then rename: the final name means finished."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{CHUNK_SUFFIX}")
    try:
        with h5py.File(tmp, "w") as h5:
            ds = h5.create_dataset(CHUNK_DATASET, data=array, compression=compression)
            ds.attrs["box"] = np.asarray(box, dtype=np.int64)
            if fingerprint is not None:
                ds.attrs[FINGERPRINT_ATTR] = fingerprint
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the final name appears
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
