"""Volumes read box by box: the protocol shared by tiled volumes and in-memory arrays.

A box is ``((z0, z1), (y0, y1), (x0, x1))``, half-open, in voxels of the full volume. Boxes may
reach outside the volume (negative starts, ends past the size): those voxels are mirrored back
inside with numpy's ``reflect`` rule (index -1 reads 1, index L reads L - 2), so a chunk near the
border keeps its size and its context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ArrayVolume",
    "Box",
    "VolumeSource",
    "check_same_geometry",
    "geometry",
    "normalize_box",
    "parse_geometry",
    "read_reflected",
    "reflect_indices",
]

Box = tuple[tuple[int, int], ...]
Triple = tuple[float, float, float]

_VOXEL_SIZE_KEYS = ("resolution", "voxel_size", "element_size_um")


@runtime_checkable
class VolumeSource(Protocol):
    """Anything with a ``(Z, Y, X)`` ``shape``, a ``dtype`` and ``read(box) -> (..., z, y, x) array``.

    monai_em's volumes also carry ``voxel_size`` (z, y, x: physical size of a voxel in ``unit``),
    ``offset`` (z, y, x: physical position of voxel ``(0, 0, 0)``, like an NGFF translation) and
    ``unit`` (None when unknown); :func:`geometry` reads them with the defaults ``(1, 1, 1)``,
    ``(0, 0, 0)`` and None for sources that lack them.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype

    def read(self, box: Sequence[Sequence[int]]) -> np.ndarray: ...


def _triple(value, name: str, where) -> Triple:
    vals = [float(v) for v in np.ravel(np.asarray(value, dtype=float))]
    if len(vals) != 3 or not all(np.isfinite(vals)):
        raise ValueError(f"{where}: {name} must be 3 finite numbers, got {value!r}")
    return tuple(vals)


def parse_geometry(attrs: Mapping, where, x_first: bool = False) -> tuple[Triple, Triple, str | None]:
    """``(voxel_size, offset, unit)`` from metadata attributes, each ``(z, y, x)``.

    Voxel size: ``resolution``, ``voxel_size`` or ``element_size_um`` (the last in micrometers);
    offset: ``offset`` (physical units, position of voxel 0); unit: ``unit`` or the first of
    ``units``. ``x_first``: the attributes list x, y, z (N5). Missing entries give ``(1, 1, 1)``,
    ``(0, 0, 0)`` and None.

    Raises:
        ValueError: an attribute without 3 finite numbers, or a voxel size <= 0 (names ``where``).
    """
    flip = (lambda t: t[::-1]) if x_first else (lambda t: t)
    voxel_size, unit = (1.0, 1.0, 1.0), None
    for key in _VOXEL_SIZE_KEYS:
        if attrs.get(key) is not None:
            voxel_size = flip(_triple(attrs[key], key, where))
            unit = "micrometer" if key == "element_size_um" else None
            break
    if any(v <= 0 for v in voxel_size):
        raise ValueError(f"{where}: voxel size must be positive, got {voxel_size}")
    offset = (
        flip(_triple(attrs["offset"], "offset", where)) if attrs.get("offset") is not None else (0.0,) * 3
    )
    units = attrs.get("units")
    units = list(units) if isinstance(units, (list, tuple, np.ndarray)) else [units]
    unit = attrs.get("unit") or (units[0] if units else None) or unit
    if isinstance(unit, (bytes, np.bytes_)):  # HDF5 string attributes
        unit = unit.decode()
    return voxel_size, offset, (str(unit) if unit else None)


def geometry(vol) -> tuple[Triple, Triple, str | None]:
    """``(voxel_size, offset, unit)`` of a volume, with the defaults for sources that carry none."""
    return (
        tuple(float(v) for v in getattr(vol, "voxel_size", (1.0, 1.0, 1.0))),
        tuple(float(v) for v in getattr(vol, "offset", (0.0, 0.0, 0.0))),
        getattr(vol, "unit", None),
    )


def check_same_geometry(volumes: Mapping[str, object]) -> None:
    """Refuse volumes of one sample (image, label, mask) that do not cover the same physical box.

    Compares shape, voxel size, offset and unit (a unit only when both know theirs).

    Raises:
        ValueError: naming both keys, both volumes and the values that disagree.
    """
    items = list(volumes.items())
    if not items:
        return
    key0, ref = items[0]
    vs0, off0, unit0 = geometry(ref)
    for key, vol in items[1:]:
        vs, off, unit = geometry(vol)
        for what, a, b in (
            ("shape", tuple(ref.shape), tuple(vol.shape)),
            ("voxel size", vs0, vs),
            ("offset", off0, off),
            ("unit", unit0 or unit, unit or unit0),
        ):
            same = np.allclose(a, b, rtol=1e-6, atol=1e-9) if what in ("voxel size", "offset") else a == b
            if not same:
                raise ValueError(
                    f"volume {key!r} ({vol!r}) has {what} {b} but {key0!r} ({ref!r}) has {a}: "
                    "the pair does not cover the same voxels"
                )


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

    ``voxel_size``, ``offset`` (z, y, x) and ``unit`` describe where it sits (see :class:`VolumeSource`).

    Example:
        >>> vol = ArrayVolume(np.arange(24).reshape(2, 3, 4))
        >>> vol.read(((0, 2), (-1, 1), (0, 2)))[0]
        array([[4, 5],
               [0, 1]])
    """

    def __init__(
        self,
        array,
        name: str = "array",
        voxel_size: Sequence[float] = (1, 1, 1),
        offset: Sequence[float] = (0, 0, 0),
        unit: str | None = None,
    ):
        if array.ndim < 3:
            raise ValueError(f"{name}: a volume needs at least (Z, Y, X) axes, got shape {array.shape}")
        self.array = array
        self.name = name
        self.voxel_size, self.offset, self.unit = parse_geometry(
            {"voxel_size": voxel_size, "offset": offset, "unit": unit}, name
        )
        self.shape = tuple(int(s) for s in array.shape[-3:])
        self.dtype = np.dtype(array.dtype)

    def _read_inside(self, box: Box) -> np.ndarray:
        return np.asarray(self.array[(Ellipsis,) + tuple(slice(a, b) for a, b in box)])

    def read(self, box) -> np.ndarray:
        return read_reflected(self._read_inside, box, self.shape)

    def __repr__(self) -> str:
        return f"ArrayVolume({self.name}, shape={self.shape}, dtype={self.dtype})"
