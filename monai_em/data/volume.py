"""Volumes read box by box: the protocol shared by tiled volumes and in-memory arrays.

A box is ``((z0, z1), (y0, y1), (x0, x1))``, half-open, in voxels of the full volume. Boxes may
reach outside the volume (negative starts, ends past the size): those voxels are mirrored back
inside with numpy's ``reflect`` rule (index -1 reads 1, index L reads L - 2), so a chunk near the
border keeps its size and its context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ArrayVolume", "Box", "VolumeSource", "normalize_box", "read_reflected", "reflect_indices"]

Box = tuple[tuple[int, int], ...]


@runtime_checkable
class VolumeSource(Protocol):
    """Anything with a ``(Z, Y, X)`` ``shape``, a ``dtype`` and ``read(box) -> (..., z, y, x) array``."""

    shape: tuple[int, int, int]
    dtype: np.dtype

    def read(self, box: Sequence[Sequence[int]]) -> np.ndarray: ...


def normalize_box(box: Sequence, ndim: int = 3) -> Box:
    """``box`` as ``((start, stop), ...)`` ints; accepts pairs or slices, or a flat ``[z0, z1, y0, y1, x0, x1]``."""
    items = list(box)
    if len(items) == 2 * ndim and all(np.isscalar(v) for v in items):
        items = [items[2 * i : 2 * i + 2] for i in range(ndim)]
    if len(items) != ndim:
        raise ValueError(f"a box needs {ndim} (start, stop) pairs, got {box!r}")
    out = []
    for item in items:
        start, stop = (item.start, item.stop) if isinstance(item, slice) else item
        start, stop = int(start), int(stop)
        if stop <= start:
            raise ValueError(f"box {box!r} has an empty or negative extent ({start}, {stop})")
        out.append((start, stop))
    return tuple(out)


def reflect_indices(start: int, stop: int, length: int) -> np.ndarray:
    """Indices ``start..stop-1`` mirrored into ``[0, length)`` (numpy ``reflect``: no edge repeat)."""
    idx = np.arange(start, stop, dtype=np.int64)
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= length, period - idx, idx)


def read_reflected(
    read_inside: Callable[[Box], np.ndarray], box: Sequence, shape: Sequence[int]
) -> np.ndarray:
    """Read ``box`` of a volume of spatial ``shape`` given a reader for in-bounds boxes only.

    ``read_inside(inner_box)`` must return the ``(..., z, y, x)`` data of a box inside the volume.
    Only the in-bounds hull of the mirrored indices is read, once.
    """
    box = normalize_box(box, len(shape))
    inside = all(0 <= a and b <= n for (a, b), n in zip(box, shape, strict=True))
    if inside:
        return read_inside(box)
    indices = [reflect_indices(a, b, n) for (a, b), n in zip(box, shape, strict=True)]
    hull = tuple((int(i.min()), int(i.max()) + 1) for i in indices)
    data = read_inside(hull)
    lead = data.ndim - len(shape)
    local = np.ix_(*[i - h[0] for i, h in zip(indices, hull, strict=True)])
    return data[(slice(None),) * lead + local]


class ArrayVolume:
    """An in-memory ``(..., Z, Y, X)`` array (numpy, h5py dataset, memmap) as a :class:`VolumeSource`.

    Example:
        >>> vol = ArrayVolume(np.arange(24).reshape(2, 3, 4))
        >>> vol.read(((0, 2), (-1, 1), (0, 2)))[0]
        array([[4, 5],
               [0, 1]])
    """

    def __init__(self, array, name: str = "array"):
        if array.ndim < 3:
            raise ValueError(f"{name}: a volume needs at least (Z, Y, X) axes, got shape {array.shape}")
        self.array = array
        self.name = name
        self.shape = tuple(int(s) for s in array.shape[-3:])
        self.dtype = np.dtype(array.dtype)

    def _read_inside(self, box: Box) -> np.ndarray:
        return np.asarray(self.array[(Ellipsis,) + tuple(slice(a, b) for a, b in box)])

    def read(self, box) -> np.ndarray:
        return read_reflected(self._read_inside, box, self.shape)

    def __repr__(self) -> str:
        return f"ArrayVolume({self.name}, shape={self.shape}, dtype={self.dtype})"
