"""Instance segmentation of volumes larger than memory, block by block, merged across block faces.

Three engine-free steps, so any backend (in-process ``map``, a dask client, a cluster) only
schedules them:

1. :func:`segment_block` (one call per block of a ``data.chunks.BlockPlan``, in any order, in
   parallel): read the write box plus a ``halo`` of context (mirrored at the volume border), segment it, keep the core, number its
   segments ``1..n`` locally, and keep the labels on the planes at and just beyond each face.
2. :func:`merge_blocks` (once, on the small face records): make ids unique (block ``i``'s ids are
   offset by the segment counts of blocks ``0..i-1``, in plan order), join segments across every
   face with a union-find, and number the merged segments ``1..n`` in order of their smallest
   unique id, so the result never depends on the order blocks finished in.
3. :func:`relabel_block`: apply the block's lookup table to its local ids and write them.

Two face rules: ``"touch"`` joins any two non-zero voxels facing each other across a face (exact
for connected components of a binary mask with face connectivity: the blockwise result equals the
in-memory one up to renumbering); ``"overlap"`` (watershed, agglomeration) joins a segment of one
block with the segment of the neighbour it overlaps most on the two planes next to the face, when
that choice is mutual (each block's segmentation reaches one plane into the neighbour through its
halo). :func:`segment_blockwise` runs the three steps with a ``map`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.chunks import Block, BlockPlan
from ..data.volume import ArrayVolume, Box, VolumeSource
from .instances import relabel_sequential

__all__ = [
    "BlockResult",
    "merge_blocks",
    "relabel_block",
    "segment_block",
    "segment_blockwise",
]

_RULES = ("touch", "overlap")


@dataclass
class BlockResult:
    """One segmented block: its write box, local ids ``1..count`` (``(Z, Y, X)`` uint64) and face planes.

    ``inner[(axis, side)]`` holds the core's labels on its first (side 0) / last (side 1) plane
    along ``axis``; ``outer[(axis, side)]`` the block's own labels on the plane just outside that
    face (from the halo; absent when the read box has no context on that side).
    """

    box: Box
    ids: np.ndarray | None
    count: int
    inner: dict = field(default_factory=dict)
    outer: dict = field(default_factory=dict)

    def faces_only(self) -> BlockResult:
        """The record without the ids (what :func:`merge_blocks` needs, small enough to ship)."""
        return BlockResult(self.box, None, self.count, self.inner, self.outer)


def _plane(a: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(a, index, axis=axis).copy()


def _to_local(plane: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Halo labels in the core's local numbering; segments that live only in the halo get numbers past it."""
    out = np.zeros(plane.shape, np.uint64)
    if len(keys):
        pos = np.minimum(np.searchsorted(keys, plane), len(keys) - 1)
        known = (plane != 0) & (keys[pos] == plane)
        out[known] = pos[known].astype(np.uint64) + np.uint64(1)
    else:
        known = np.zeros(plane.shape, bool)
    unknown = (plane != 0) & ~known
    if unknown.any():
        out[unknown] = np.uint64(len(keys)) + relabel_sequential(plane[unknown])
    return out


def segment_block(
    source: VolumeSource, block: Block, segment_fn: Callable[[np.ndarray], np.ndarray]
) -> BlockResult:
    """Segment one block of a :class:`~monai_em.data.chunks.BlockPlan`: its read box (write box + halo).

    Args:
        source: a :class:`~monai_em.data.volume.VolumeSource` (``read(box)`` mirrors outside the volume);
            it may hold channels: ``read`` returns ``(..., z, y, x)``, all of it goes to ``segment_fn``.
        block: the block (``write_box``, ``read_box``, ``crop``).
        segment_fn: ``(..., z, y, x)`` data -> ``(z, y, x)`` integer ids (0 = background).
    """
    seg = np.asarray(segment_fn(source.read(block.read_box)))
    expected = tuple(b - a for a, b in block.read_box)
    if seg.shape != expected:
        raise ValueError(
            f"segment_fn returned shape {seg.shape} for block {block.name} read as {block.read_box}, expected {expected}"
        )
    inside = block.crop
    core = seg[inside]
    local = relabel_sequential(core)
    keys = np.unique(core[core != 0])  # core ids in the order of their local numbers 1..n
    result = BlockResult(block.write_box, local, len(keys))
    for axis in range(3):
        n = core.shape[axis]
        result.inner[(axis, 0)] = _plane(local, axis, 0)
        result.inner[(axis, 1)] = _plane(local, axis, n - 1)
        across = tuple(sl for k, sl in enumerate(inside) if k != axis)
        before, after = inside[axis].start, seg.shape[axis] - inside[axis].stop
        for side, index, room in ((0, before - 1, before), (1, inside[axis].stop, after)):
            if room > 0:
                result.outer[(axis, side)] = _to_local(_plane(seg, axis, index)[across], keys)
    return result


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n + 1, dtype=np.int64)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the smaller id is the root: order-free result


def _mutual_best(
    a: np.ndarray, b: np.ndarray, min_overlap: int, max_a: int, max_b: int
) -> list[tuple[int, int]]:
    """Pairs ``(i <= max_a, j <= max_b)`` of non-zero labels where ``j`` is ``i``'s most overlapping label and
    vice versa (labels past ``max_a`` / ``max_b`` compete for the best match but are never paired)."""
    keep = (a != 0) & (b != 0)
    if not keep.any():
        return []
    pairs, counts = np.unique(np.stack([a[keep], b[keep]]), axis=1, return_counts=True)
    best_a: dict[int, tuple[int, int]] = {}
    best_b: dict[int, tuple[int, int]] = {}
    for (i, j), c in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if c > best_a.get(i, (0, 0))[0]:  # ties: the smaller label (pairs are sorted)
            best_a[i] = (c, j)
        if c > best_b.get(j, (0, 0))[0]:
            best_b[j] = (c, i)
    return [
        (i, j)
        for i, (c, j) in best_a.items()
        if c >= min_overlap and best_b[j][1] == i and i <= max_a and j <= max_b
    ]


def merge_blocks(
    results: Sequence[BlockResult], rule: str = "overlap", min_overlap: int = 1
) -> list[np.ndarray]:
    """Union-find over the block faces -> one lookup table per block (local id -> final id, ``[0] = 0``).

    Args:
        results: every block's record (ids not needed), in plan order (the order fixes the numbering).
        rule: ``"touch"`` or ``"overlap"`` (see the module docstring).
        min_overlap: ``"overlap"``: voxels two segments must share on the face planes to be joined.
    """
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
    offsets = np.concatenate([[0], np.cumsum([r.count for r in results])]).astype(np.int64)
    uf = _UnionFind(int(offsets[-1]))
    by_start = {tuple(a for a, _ in r.box): i for i, r in enumerate(results)}
    for i, r in enumerate(results):
        for axis in range(3):
            start = list(a for a, _ in r.box)
            start[axis] = r.box[axis][1]
            j = by_start.get(tuple(start))
            if j is None:
                continue
            nb = results[j]
            if [r.box[k] for k in range(3) if k != axis] != [nb.box[k] for k in range(3) if k != axis]:
                raise ValueError(
                    f"blocks {r.box} and {nb.box} share a face but not its extent: not a block grid"
                )
            if rule == "touch":
                a, b = r.inner[(axis, 1)], nb.inner[(axis, 0)]
                keep = (a != 0) & (b != 0)
                pairs = np.unique(np.stack([a[keep], b[keep]]), axis=1).T.tolist() if keep.any() else []
            else:
                if (axis, 1) not in r.outer or (axis, 0) not in nb.outer:
                    raise ValueError(f"rule 'overlap' needs a halo >= 1 along axis {axis} (block {r.box})")
                # plane at r's last core voxel: r core vs nb halo; plane at nb's first: r halo vs nb core
                a = np.concatenate([r.inner[(axis, 1)].ravel(), r.outer[(axis, 1)].ravel()])
                b = np.concatenate([nb.outer[(axis, 0)].ravel(), nb.inner[(axis, 0)].ravel()])
                pairs = _mutual_best(a, b, min_overlap, r.count, nb.count)
            for p, q in pairs:
                uf.union(int(offsets[i] + p), int(offsets[j] + q))
    roots = np.array([uf.find(g) for g in range(int(offsets[-1]) + 1)], dtype=np.int64)
    final = relabel_sequential(roots)  # a set's root is its smallest unique id: the numbering is order-free
    return [
        np.concatenate([[0], final[offsets[i] + 1 : offsets[i + 1] + 1]]).astype(np.uint64)
        for i in range(len(results))
    ]


def relabel_block(ids: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """A block's local ids ``(Z, Y, X)`` through its lookup table from :func:`merge_blocks`."""
    return lookup[np.asarray(ids, dtype=np.int64)]


def segment_blockwise(
    source,
    segment_fn: Callable[[np.ndarray], np.ndarray],
    block_shape: Sequence[int],
    halo: Sequence[int] | int = 0,
    rule: str = "overlap",
    out=None,
    map_fn: Callable[..., Iterable] = map,
    min_overlap: int = 1,
):
    """Segment ``source`` block by block and merge across faces; returns ``out`` (or a new uint64 array).

    Args:
        source: a VolumeSource or an array ``(..., Z, Y, X)``.
        segment_fn: ``(..., z, y, x)`` block data -> ``(z, y, x)`` ids; must be picklable for remote ``map_fn``.
        block_shape: write-box size ``(Z, Y, X)`` of the ``BlockPlan``; a multiple of ``out``'s chunks for
            safe parallel writes (``BlockPlan.aligned``).
        halo: context voxels per side (``"overlap"`` needs >= 1 on every axis that is split).
        rule: ``"touch"`` (connected components, exact) or ``"overlap"`` (watershed, agglomeration).
        out: writable ``(Z, Y, X)`` array-like (numpy, zarr, h5py) for the result; default a new numpy array.
        map_fn: ``map``-like scheduler of the per-block calls (in-process by default).
    """
    if not hasattr(source, "read"):
        source = ArrayVolume(np.asarray(source), "prediction")
    blocks = list(BlockPlan(source.shape, block_shape, halo))
    if out is None:
        out = np.zeros(source.shape, np.uint64)
    if tuple(out.shape) != tuple(source.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, the volume {tuple(source.shape)}")

    def first_pass(block):
        res = segment_block(source, block, segment_fn)
        out[tuple(slice(a, b) for a, b in block.write_box)] = res.ids
        return res.faces_only()

    records = list(map_fn(first_pass, blocks))
    lookups = merge_blocks(records, rule, min_overlap)

    def second_pass(item):
        box, lookup = item
        where = tuple(slice(a, b) for a, b in box)
        out[where] = relabel_block(np.asarray(out[where]), lookup)

    list(map_fn(second_pass, zip([b.write_box for b in blocks], lookups, strict=True)))
    return out
