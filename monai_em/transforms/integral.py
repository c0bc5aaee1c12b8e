"""Summed-area tables (integral volumes): count non-zero voxels of any box in O(1).

A table of a mask of spatial shape ``(L0, L1, ...)`` has shape ``(L0 + 1, L1 + 1, ...)`` with a
leading zero row on every axis, so ``table[i0, i1, ...]`` is the number of non-zero voxels in
``[0, i0) x [0, i1) x ...`` and a box count is an inclusion-exclusion over its ``2**ndim`` corners.
Counts are exact integers: int32 where the voxel count provably fits, int64 otherwise; box sums are
always computed in int64, with int64 coordinates.
"""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["IntegralCache", "box_count", "box_counts", "integral_volume", "nonzero_mask"]

_INT32_LIMIT = np.iinfo(np.int32).max


def _table_dtype(n_voxels: int) -> np.dtype:
    """int32 when every prefix count (at most ``n_voxels``) fits, else int64."""
    return np.dtype(np.int32) if n_voxels <= _INT32_LIMIT else np.dtype(np.int64)


def nonzero_mask(array, channel_first: bool = True) -> np.ndarray:
    """A boolean numpy mask of the non-zero voxels of ``array`` (any channel non-zero).

    ``array`` is numpy, torch (CPU or CUDA) or a MetaTensor, ``(C, *spatial)`` when ``channel_first``.
    The comparison runs where the data lives; only the boolean mask is moved to the CPU.
    """
    if isinstance(array, torch.Tensor):
        t = array.as_tensor() if hasattr(array, "as_tensor") else array
        mask = t != 0
        if channel_first:
            mask = mask.any(dim=0) if mask.shape[0] > 1 else mask[0]
        return mask.cpu().numpy()
    a = np.asarray(array)
    mask = a != 0
    if channel_first:
        mask = mask.any(axis=0) if mask.shape[0] > 1 else mask[0]
    return mask


def integral_volume(mask: np.ndarray) -> np.ndarray:
    """The zero-padded summed-area table of ``mask != 0`` (any number of spatial axes).

    Example:
        >>> t = integral_volume(np.ones((2, 3), bool))
        >>> t.shape, int(t[-1, -1])
        ((3, 4), 6)
    """
    mask = np.asarray(mask)
    table = np.zeros(tuple(s + 1 for s in mask.shape), dtype=_table_dtype(mask.size))
    table[(slice(1, None),) * mask.ndim] = mask != 0
    for axis in range(mask.ndim):
        np.cumsum(table, axis=axis, out=table)
    return table


def box_counts(table: np.ndarray, starts, sizes) -> np.ndarray:
    """Non-zero counts of boxes ``[start, start + size)`` from a table made by :func:`integral_volume`.

    Args:
        table: the integral volume, spatial shape + 1 on every axis.
        starts: ``(ndim,)`` or ``(N, ndim)`` int box starts (must lie inside the volume).
        sizes: ``(ndim,)`` box size shared by all boxes, or ``(N, ndim)``.

    Returns:
        int64 counts, a scalar array for a single box or ``(N,)``.
    """
    starts = np.asarray(starts, dtype=np.int64)
    single = starts.ndim == 1
    starts = np.atleast_2d(starts)
    stops = starts + np.asarray(sizes, dtype=np.int64)
    ndim = table.ndim
    if starts.shape[1] != ndim:
        raise ValueError(f"boxes have {starts.shape[1]} axes, the table has {ndim}")
    limits = np.asarray(table.shape, dtype=np.int64) - 1
    if (starts < 0).any() or (stops > limits).any() or (stops < starts).any():
        raise ValueError(f"boxes must lie inside the volume of shape {tuple(limits.tolist())}")
    total = np.zeros(len(starts), dtype=np.int64)
    for corner in itertools.product((0, 1), repeat=ndim):
        idx = tuple(np.where(c, stops[:, a], starts[:, a]) for a, c in enumerate(corner))
        sign = 1 if (ndim - sum(corner)) % 2 == 0 else -1
        total += sign * table[idx].astype(np.int64)
    return total[0] if single else total


def box_count(table: np.ndarray, start: Sequence[int], size: Sequence[int]) -> int:
    """Non-zero count of one box ``[start, start + size)``: the scalar fast path of :func:`box_counts`.

    The box must lie inside the volume (not checked here: this is the per-candidate hot loop).
    """
    lo = [int(a) for a in start]
    hi = [a + int(s) for a, s in zip(lo, size, strict=True)]
    if len(lo) == 3:
        z0, y0, x0 = lo
        z1, y1, x1 = hi
        t = table
        return int(
            int(t[z1, y1, x1])
            - int(t[z0, y1, x1])
            - int(t[z1, y0, x1])
            - int(t[z1, y1, x0])
            + int(t[z0, y0, x1])
            + int(t[z0, y1, x0])
            + int(t[z1, y0, x0])
            - int(t[z0, y0, x0])
        )
    total = 0
    for corner in itertools.product((0, 1), repeat=len(lo)):
        idx = tuple(h if c else a for a, h, c in zip(lo, hi, corner, strict=True))
        total += (1 if (len(lo) - sum(corner)) % 2 == 0 else -1) * int(table[idx])
    return total


def _fingerprint(array) -> tuple:
    """Cheap identity check: storage address, shape, strides and, for numpy, a strided sample.

    Torch tensors carry a version counter bumped by every in-place op, so edits are always seen.
    For numpy, in-place edits are only seen if they touch a voxel of a coarse sampling grid.
    """
    if isinstance(array, torch.Tensor):
        return (
            "torch",
            array.data_ptr(),
            tuple(array.shape),
            tuple(array.stride()),
            array._version,
            str(array.device),
        )
    a = np.asarray(array)
    grid = a[tuple(slice(None, None, max(1, n // 4)) for n in a.shape)]  # <= 5 per axis, never a full copy
    return ("numpy", a.__array_interface__["data"][0], a.shape, a.strides, grid.tobytes())


class IntegralCache:
    """Integral volumes of recently seen arrays, keyed by the array object (held weakly).

    A table is reused while the same array object is alive, unchanged (see :func:`_fingerprint`)
    and asked for with the same ``extra`` key (e.g. a padding spec). At most ``size`` arrays are
    remembered (least recently used dropped first). Call :meth:`clear` after editing a numpy
    array in place.
    """

    def __init__(self, size: int = 8):
        if size < 0:
            raise ValueError(f"cache size must be >= 0, got {size}")
        self.size = int(size)
        self._entries: OrderedDict = OrderedDict()
        self.builds = 0  # how many tables were computed (for tests and benchmarks)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, array, build, extra: Sequence = ()) -> np.ndarray:
        """The table of ``array``: cached, or ``build()`` (a callable returning the table) stored."""
        key = (id(array), tuple(extra))
        fp = _fingerprint(array)
        entry = self._entries.get(key)
        if entry is not None:
            ref, old_fp, table = entry
            if ref() is array and old_fp == fp:
                self._entries.move_to_end(key)
                return table
            del self._entries[key]
        table = build()
        self.builds += 1
        if self.size:
            entries = self._entries

            def _forget(dead, key=key):  # drop the table as soon as its array is garbage collected
                entry = entries.get(key)
                if entry is not None and entry[0] is dead:
                    del entries[key]

            try:
                ref = weakref.ref(array, _forget)
            except TypeError:  # objects without weakref support are not cached
                return table
            self._entries[key] = (ref, fp, table)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return table
