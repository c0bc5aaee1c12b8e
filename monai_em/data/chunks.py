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

__all__ = [
    "axis_bounds",
    "chunk_box",
    "chunk_boxes",
    "chunk_grid",
    "chunk_id_to_zyx",
    "chunk_name",
    "pad_box",
    "round_permutation",
    "split_rank_world",
    "worker_share",
]


def axis_bounds(length: int, n: int, i: int, train: bool) -> tuple[int, int]:
    """``[start, end)`` of chunk ``i`` of ``n`` along an axis of ``length`` voxels."""
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"chunk index {i} out of range for {n} chunks")
    step = 2 if train else 1
    denom = n + step - 1
    start, end = (i * length) // denom, ((i + step) * length) // denom
    if end <= start:
        raise ValueError(f"an axis of {length} voxels is too short for {n} chunks (chunk {i} would be empty)")
    return start, end


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
    """Enlarge a box by ``pad_size`` voxels on each side of each axis (the box may go past 0).

    Raises ValueError for a negative ``pad_size`` (as every class taking one: a shrunken box would
    silently drop voxels).
    """
    pads = np.broadcast_to(pad_size, len(box)).tolist()
    if min(pads) < 0:
        raise ValueError(f"pad_size must be >= 0 per axis, got {pad_size!r}")
    return tuple((int(a) - int(p), int(b) + int(p)) for (a, b), p in zip(box, pads, strict=True))


def chunk_box(
    shape: Sequence[int],
    chunk_num: Sequence[int],
    chunk_id: int,
    train: bool,
    pad_size: Sequence[int] | int = 0,
) -> tuple[tuple[int, int], ...]:
    """The box ``((z0, z1), (y0, y1), (x0, x1))`` of a chunk, enlarged by ``pad_size`` per side.

    Example (spec check values, depth 100 split in 2):
        >>> chunk_box((100, 10, 10), (2, 1, 1), 1, train=True)[0], chunk_box((100, 10, 10), (2, 1, 1), 1, train=False)[0]
        ((33, 100), (50, 100))
    """
    zyx = chunk_id_to_zyx(chunk_id, chunk_num)
    box = tuple(axis_bounds(int(L), int(n), i, train) for L, n, i in zip(shape, chunk_num, zyx, strict=True))
    return pad_box(box, pad_size)


def chunk_boxes(
    shape: Sequence[int], chunk_num: Sequence[int], train: bool, pad_size: Sequence[int] | int = 0
) -> list[tuple[tuple[int, int], ...]]:
    """Boxes of all chunks, in chunk id order."""
    return [chunk_box(shape, chunk_num, i, train, pad_size) for i in range(chunk_grid(chunk_num))]


def chunk_name(box: Sequence[tuple[int, int]]) -> str:
    """Output name of a chunk from its (unpadded) box: ``z0-z1-y0-y1-x0-x1``."""
    return "-".join(f"{a}-{b}" for a, b in box)


def split_rank_world(n_items: int, rank: int, world: int) -> range:
    """The contiguous share of ``range(n_items)`` that process ``rank`` of ``world`` handles."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} out of range for world size {world}")
    return range((rank * n_items) // world, ((rank + 1) * n_items) // world)


def round_permutation(n_chunks: int, seed: int, round_key: Sequence[int] | int) -> np.ndarray:
    """The chunk order of one training round: a permutation every rank and worker computes alike."""
    key = [int(seed)] + [int(k) for k in np.atleast_1d(round_key)]
    return np.random.default_rng(np.random.SeedSequence(key)).permutation(int(n_chunks))


def worker_share(
    n_chunks: int, worker: int, n_workers: int, seed: int, round_key: Sequence[int] | int
) -> list[int]:
    """Chunk ids global worker ``worker`` of ``n_workers`` (rank x num_workers + worker id) reads in a round.

    Positions ``worker, worker + n_workers, ...`` of :func:`round_permutation`: every chunk goes to exactly
    one worker per round. With more workers than chunks, a worker left without one re-reads chunk
    ``perm[worker % n_chunks]`` (so an endless stream never stalls; those chunks are read twice in the round).
    """
    if n_workers < 1 or not 0 <= worker < n_workers:
        raise ValueError(f"worker {worker} out of range for {n_workers} workers")
    perm = round_permutation(n_chunks, seed, round_key)
    share = perm[worker::n_workers]
    return [int(i) for i in share] if len(share) else [int(perm[worker % n_chunks])]
