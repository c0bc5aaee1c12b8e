"""Chunk geometry of large volumes: training chunks (overlapping), inference chunks (a partition),
and the block plan of blockwise work (write boxes aligned to an output store's chunks, plus a halo);
which process (rank of world size) takes which share.

For an axis of length ``L`` split into ``n`` chunks, chunk ``i`` spans
``[floor(i / (n + step - 1) * L), floor((i + step) / (n + step - 1) * L))`` with ``step = 2`` for
training (each chunk covers 2/(n+1) of the axis, neighbours overlap by half) and ``step = 1`` for
inference (disjoint chunks that cover the axis). Chunk ids run z-major:
``id -> (id // (ny * nx), (id // nx) % ny, id % nx)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .volume import normalize_box

__all__ = [
    "Block",
    "BlockPlan",
    "as_zyx",
    "axis_bounds",
    "centre_start",
    "chunk_box",
    "chunk_boxes",
    "chunk_grid",
    "chunk_id_to_zyx",
    "chunk_name",
    "check_pad",
    "pad_box",
    "resolve_rank_world",
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


def centre_start(outer: Sequence[int], inner: Sequence[int]) -> tuple[int, ...]:
    """Start of an ``inner`` box centred in an ``outer`` box, per axis: ``(outer - inner) // 2``.

    The one centring rule: an odd difference puts the larger half after the inner box. The
    augmentor's final centre crop, the rejection crop's tested region and its mirror padding, the
    2D image padded to a window and a block's read box enlarged to a window all follow it.

    Example:
        >>> centre_start((10, 37, 37), (8, 32, 32))
        (1, 2, 2)
    """
    return tuple((int(o) - int(i)) // 2 for o, i in zip(outer, inner, strict=True))


def check_pad(pad_size: Sequence[int] | int, ndim: int = 3) -> tuple[int, ...]:
    """``pad_size`` (one int, or one per axis) as ``ndim`` ints >= 0.

    Every class taking a ``pad_size`` checks it here: a negative pad would shrink a box and silently
    drop voxels.

    Raises:
        ValueError: another count, or a negative entry. TypeError: text (a YAML ``"2"`` is not parsed).
    """
    pads = [pad_size] * ndim if np.ndim(pad_size) == 0 else list(pad_size)
    if any(isinstance(p, (str, bytes)) for p in pads):
        raise TypeError(f"pad_size must be integers, got {pad_size!r}")
    if len(pads) != ndim:
        raise ValueError(f"pad_size needs 1 or {ndim} values, got {pad_size!r}")
    if min(pads) < 0:
        raise ValueError(f"pad_size must be >= 0 per axis, got {pad_size!r}")
    return tuple(int(p) for p in pads)


def pad_box(box: Sequence[tuple[int, int]], pad_size: Sequence[int] | int) -> tuple[tuple[int, int], ...]:
    """Enlarge a box by ``pad_size`` voxels on each side of each axis (the box may go past 0).

    Raises ValueError for a negative ``pad_size`` (see :func:`check_pad`).
    """
    pads = check_pad(pad_size, len(box))
    return tuple((int(a) - p, int(b) + p) for (a, b), p in zip(box, pads, strict=True))


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


def resolve_rank_world(
    rank: int | None = None, world_size: int | None = None, env: bool = True
) -> tuple[int, int]:
    """``(rank, world_size)``: the arguments, else torch.distributed when initialised, else env
    ``RANK``/``WORLD_SIZE`` (when ``env``), else 0/1. The one rule for which process this is.

    Raises:
        ValueError: ``rank`` outside ``[0, world_size)``.
    """
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            auto = dist.get_rank(), dist.get_world_size()
        elif env:
            auto = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        else:
            auto = 0, 1
        rank = auto[0] if rank is None else rank
        world_size = auto[1] if world_size is None else world_size
    rank, world_size = int(rank), int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    return rank, world_size


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


@dataclass(frozen=True)
class Block:
    """One block of a :class:`BlockPlan`: ``write_box`` (aligned, inside the volume) and ``read_box``
    (``write_box`` + halo, enlarged to ``min_read``; may reach outside the volume: read it mirrored)."""

    id: int
    write_box: tuple[tuple[int, int], ...]
    read_box: tuple[tuple[int, int], ...]

    @classmethod
    def around(cls, block_id: int, write_box, halo=0, min_read=1) -> Block:
        """The block writing ``write_box`` and reading it plus ``halo`` per side, enlarged to at least
        ``min_read`` with real context (a block smaller than one window gets its larger half after it)."""
        write = normalize_box(write_box)
        halo, min_read = np.broadcast_to(halo, 3).tolist(), np.broadcast_to(min_read, 3).tolist()
        read = []
        for (a, b), h, m in zip(write, halo, min_read, strict=True):
            size = b - a + 2 * int(h)
            read_size = max(int(m), size)
            (before,) = centre_start((read_size,), (size,))  # the write box + halo, centred in the read box
            read.append((a - int(h) - before, a - int(h) - before + read_size))
        return cls(int(block_id), write, tuple(read))

    @property
    def name(self) -> str:
        """``z0-z1-y0-y1-x0-x1`` of the write box."""
        return chunk_name(self.write_box)

    @property
    def crop(self) -> tuple[slice, ...]:
        """Where the write box lies in the read box's data (spatial axes)."""
        return tuple(
            slice(w0 - r0, w1 - r0) for (w0, w1), (r0, _) in zip(self.write_box, self.read_box, strict=True)
        )


def as_zyx(value, name: str, cast=int, minimum: int | None = None) -> tuple:
    """1 or 3 numbers (z, y, x) -> a tuple of 3 ``cast`` values, each >= ``minimum`` when given.

    Raises ValueError naming ``name`` for another count or a value below ``minimum``, TypeError for
    strings (a YAML ``"4"`` is refused, not read as a number).
    """
    values = np.broadcast_to(np.asarray(value), 3).tolist() if np.ndim(value) == 0 else list(value)
    kind = "values" if minimum is None else f"integers >= {minimum}"
    if len(values) != 3:
        raise ValueError(f"{name} needs 1 or 3 {kind} (z, y, x), got {value!r}")
    if any(isinstance(v, (str, bytes)) for v in values):
        raise TypeError(f"{name} must be numbers, got {value!r}")
    out = tuple(cast(v) for v in values)
    if minimum is not None and min(out) < minimum:
        raise ValueError(f"{name} needs 1 or 3 {kind} (z, y, x), got {value!r}")
    return out


@dataclass(frozen=True)
class BlockPlan:
    """Blocks covering a ``(Z, Y, X)`` volume whose write boxes start on multiples of ``block_shape``.

    With ``block_shape`` a multiple of the output store's chunks (or shards; :meth:`aligned`), every
    block writes whole chunks, so concurrent writers never touch the same chunk (the last block per axis
    is clipped to the volume and owns the store's partial edge chunk alone). Block ids run z-major.

    Args:
        shape: volume ``(Z, Y, X)``.
        block_shape: write box size ``(z, y, x)``.
        halo: context read around each write box per side, int or ``(z, y, x)``.
        min_read: smallest read box (e.g. the sliding window): a smaller read box is enlarged
            around the write box (extra context, the larger half after it), as a chunk smaller than
            a window is.

    Example:
        >>> plan = BlockPlan((10, 20, 20), block_shape=(8, 16, 16), halo=(1, 2, 2))
        >>> len(plan), plan.block(7).write_box, plan.block(7).read_box
        (8, ((8, 10), (16, 20), (16, 20)), ((7, 11), (14, 22), (14, 22)))
    """

    shape: tuple[int, int, int]
    block_shape: tuple[int, int, int]
    halo: tuple[int, int, int] = (0, 0, 0)
    min_read: tuple[int, int, int] = (1, 1, 1)

    def __post_init__(self):
        object.__setattr__(self, "shape", as_zyx(self.shape, "volume shape", minimum=1))
        object.__setattr__(self, "block_shape", as_zyx(self.block_shape, "block_shape", minimum=1))
        object.__setattr__(self, "halo", as_zyx(self.halo, "halo", minimum=0))
        object.__setattr__(self, "min_read", as_zyx(self.min_read, "min_read", minimum=1))

    @classmethod
    def aligned(cls, shape, chunks, block_shape=None, halo=0, min_read=1) -> BlockPlan:
        """A plan whose block shape is ``block_shape`` (default: ``chunks``) rounded up to a multiple of ``chunks``."""
        chunks = as_zyx(chunks, "output chunks", minimum=1)
        want = chunks if block_shape is None else as_zyx(block_shape, "block_shape", minimum=1)
        rounded = tuple(-(-w // c) * c for w, c in zip(want, chunks, strict=True))
        return cls(shape, rounded, halo, min_read)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Blocks per axis."""
        return tuple(-(-s // b) for s, b in zip(self.shape, self.block_shape, strict=True))

    def __len__(self) -> int:
        return int(np.prod(self.grid))

    def __iter__(self) -> Iterator[Block]:
        return (self.block(i) for i in range(len(self)))

    def block(self, block_id: int) -> Block:
        """Block ``block_id`` with its write and read boxes."""
        if not 0 <= block_id < len(self):
            raise ValueError(f"block id {block_id} out of range for a plan of {len(self)} blocks {self.grid}")
        zyx = chunk_id_to_zyx(block_id, self.grid)
        write = tuple(
            (i * b, min((i + 1) * b, s)) for i, b, s in zip(zyx, self.block_shape, self.shape, strict=True)
        )
        return Block.around(block_id, write, self.halo, self.min_read)
