"""Chunk geometry of large volumes: training chunks (overlapping), inference chunks (a partition).

For an axis of length ``L`` split into ``n`` chunks, chunk ``i`` spans
``[floor(i / (n + step - 1) * L), floor((i + step) / (n + step - 1) * L))`` with ``step = 2`` for
training (each chunk covers 2/(n+1) of the axis, neighbours overlap by half) and ``step = 1`` for
inference (disjoint chunks that cover the axis). Chunk ids run z-major:
``id -> (id // (ny * nx), (id // nx) % ny, id % nx)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["axis_bounds", "chunk_box", "chunk_grid", "chunk_id_to_zyx", "chunk_name", "pad_box", "split_rank_world"]


def axis_bounds(length: int, n: int, i: int, train: bool) -> tuple[int, int]:
    """``[start, end)`` of chunk ``i`` of ``n`` along an axis of ``length`` voxels."""
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"chunk index {i} out of range for {n} chunks")
    step = 2 if train else 1
    denom = n + step - 1
    return (i * length) // denom, ((i + step) * length) // denom


def chunk_grid(chunk_num: Sequence[int]) -> int:
    """Number of chunks for ``chunk_num = [nz, ny, nx]``."""
    nums = [int(n) for n in chunk_num]
    if len(nums) != 3 or min(nums) < 1:
        raise ValueError(f"chunk_num must be three positive counts [nz, ny, nx], got {list(chunk_num)}")
    return int(np.prod(nums))


def chunk_id_to_zyx(chunk_id: int, chunk_num: Sequence[int]) -> tuple[int, int, int]:
    """Chunk id -> its (z, y, x) position in the chunk grid."""
    nz, ny, nx = (int(n) for n in chunk_num)
    if not 0 <= chunk_id < nz * ny * nx:
        raise ValueError(f"chunk id {chunk_id} out of range for chunk_num {list(chunk_num)}")
    return chunk_id // (ny * nx), (chunk_id // nx) % ny, chunk_id % nx


def pad_box(box: Sequence[tuple[int, int]], pad_size: Sequence[int] | int) -> tuple[tuple[int, int], ...]:
    """Enlarge a box by ``pad_size`` voxels on each side of each axis (may go negative)."""
    pads = np.broadcast_to(pad_size, len(box)).tolist()
    return tuple((int(a) - int(p), int(b) + int(p)) for (a, b), p in zip(box, pads, strict=True))


def chunk_box(
    shape: Sequence[int], chunk_num: Sequence[int], chunk_id: int, train: bool, pad_size: Sequence[int] | int = 0
) -> tuple[tuple[int, int], ...]:
    """The box ``((z0, z1), (y0, y1), (x0, x1))`` of a chunk, enlarged by ``pad_size`` per side.

    Example (spec check values, depth 100 split in 2):
        >>> chunk_box((100, 10, 10), (2, 1, 1), 1, train=True)[0], chunk_box((100, 10, 10), (2, 1, 1), 1, train=False)[0]
        ((33, 100), (50, 100))
    """
    zyx = chunk_id_to_zyx(chunk_id, chunk_num)
    box = tuple(axis_bounds(int(L), int(n), i, train) for L, n, i in zip(shape, chunk_num, zyx, strict=True))
    return pad_box(box, pad_size)


def chunk_name(box: Sequence[tuple[int, int]]) -> str:
    """Output name of a chunk from its (unpadded) box: ``z0-z1-y0-y1-x0-x1``."""
    return "-".join(f"{a}-{b}" for a, b in box)


def split_rank_world(n_items: int, rank: int, world: int) -> range:
    """The contiguous share of ``range(n_items)`` that process ``rank`` of ``world`` handles."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} out of range for world size {world}")
    return range((rank * n_items) // world, ((rank + 1) * n_items) // world)
