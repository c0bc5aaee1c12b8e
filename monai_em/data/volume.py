"""Volumes read box by box: the protocol shared by tiled volumes and in-memory arrays.

A box is ``((z0, z1), (y0, y1), (x0, x1))``, half-open, in voxels of the full volume. Boxes may
reach outside the volume (negative starts, ends past the size): those voxels are mirrored back
inside with numpy's ``reflect`` rule (index -1 reads 1, index L reads L - 2), so a chunk near the
border keeps its size and its context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = [
    "ArrayVolume",
    "Box",
    "PAD_MODES",
    "VolumeSource",
    "as_voxel_size",
    "as_zyx_numbers",
    "check_same_geometry",
    "geometry",
    "normalize_box",
    "normalize_unit",
    "parse_geometry",
    "read_reflected",
    "reflect_indices",
]

Box = tuple[tuple[int, int], ...]
Triple = tuple[float, float, float]

# attribute names that hold a (z, y, x) voxel size, in the order they are looked up
VOXEL_SIZE_KEYS = ("resolution", "voxel_size", "element_size_um")


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


def as_zyx_numbers(value, name: str, where) -> Triple:
    """``value`` (a voxel size, an offset...) as 3 finite floats ``(z, y, x)``.

    Raises:
        ValueError: naming ``where`` and ``name``, for another count or a NaN / infinite entry.
    """
    vals = [float(v) for v in np.ravel(np.asarray(value, dtype=float))]
    if len(vals) != 3:
        raise ValueError(
            f"{where}: {name} must be 3 finite numbers: {name} must have 3 entries (z, y, x), got {value!r}"
        )
    if not all(np.isfinite(vals)):
        raise ValueError(f"{where}: {name} must be 3 finite numbers (z, y, x), got {value!r}")
    return tuple(vals)


def as_voxel_size(value, where, name: str = "voxel_size") -> Triple:
    """:func:`as_zyx_numbers`, each entry > 0 (ValueError naming ``where`` otherwise)."""
    voxel_size = as_zyx_numbers(value, name, where)
    if any(v <= 0 for v in voxel_size):
        raise ValueError(f"{where}: {name} must be positive, got {voxel_size}")
    return voxel_size


# unit spellings -> NGFF (UDUNITS-2) names, and their size in nanometers for comparisons
_UNIT_NAMES = {"nm": "nanometer", "nanometers": "nanometer", "um": "micrometer", "\u00b5m": "micrometer",
               "\\u00b5m": "micrometer", "micron": "micrometer", "microns": "micrometer",
               "micrometers": "micrometer", "mm": "millimeter", "millimeters": "millimeter",
               "\u00c5": "angstrom", "angstroms": "angstrom"}  # fmt: skip
_UNIT_NM = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "angstrom": 0.1}


def normalize_unit(unit) -> str | None:
    """A unit's NGFF name (``"nm"`` -> ``"nanometer"``, ImageJ's ``"micron"`` -> ``"micrometer"``); None stays None."""
    if isinstance(unit, (bytes, np.bytes_)):  # HDF5 string attributes
        unit = unit.decode()
    if unit is None or str(unit).strip() == "":
        return None
    text = str(unit).strip()
    return _UNIT_NAMES.get(text.lower(), _UNIT_NAMES.get(text, text))


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
    for key in VOXEL_SIZE_KEYS:
        if attrs.get(key) is not None:
            voxel_size = flip(as_voxel_size(attrs[key], where, key))
            unit = "micrometer" if key == "element_size_um" else None
            break
    offset = (
        flip(as_zyx_numbers(attrs["offset"], "offset", where))
        if attrs.get("offset") is not None
        else (0.0,) * 3
    )
    units = attrs.get("units")
    units = list(units) if isinstance(units, (list, tuple, np.ndarray)) else [units]
    unit = attrs.get("unit") or (units[0] if units else None) or unit
    return voxel_size, offset, normalize_unit(unit)


def geometry(vol) -> tuple[Triple, Triple, str | None]:
    """``(voxel_size, offset, unit)`` of a volume, with the defaults for sources that carry none."""
    return (
        tuple(float(v) for v in getattr(vol, "voxel_size", (1.0, 1.0, 1.0))),
        tuple(float(v) for v in getattr(vol, "offset", (0.0, 0.0, 0.0))),
        getattr(vol, "unit", None),
    )


def check_same_geometry(volumes: Mapping[str, object]) -> None:
    """Refuse volumes of one sample (image, label, mask) that do not cover the same physical box.

    Compares shape, voxel size and offset; when both units are known, in physical length (4 nanometer
    equals 0.004 micrometer), and a length never equals a non-length unit.

    Raises:
        ValueError: naming both keys, both volumes and the values that disagree.
    """
    items = list(volumes.items())
    if not items:
        return
    key0, ref = items[0]
    for key, vol in items[1:]:
        _check_pair(key0, ref, key, vol)


def _in_nm(geom) -> tuple[tuple[float, ...], tuple[float, ...], str | None]:
    """Voxel size and offset in nanometers when the unit is a known length (else as they are)."""
    vs, off, unit = geom
    f = _UNIT_NM.get(unit, 1.0)
    return tuple(v * f for v in vs), tuple(o * f for o in off), "length" if unit in _UNIT_NM else unit


def _check_pair(key0, ref, key, vol) -> None:
    g0, g = geometry(ref), geometry(vol)
    if tuple(ref.shape) != tuple(vol.shape):
        what, a, b = "shape", tuple(ref.shape), tuple(vol.shape)
    elif g0[2] and g[2] and _in_nm(g0)[2] != _in_nm(g)[2]:
        what, a, b = "unit", g0[2], g[2]
    else:
        known = bool(g0[2] and g[2])  # both units known: compare physical sizes
        (vs0, off0, _), (vs, off, _) = (_in_nm(g0), _in_nm(g)) if known else (g0, g)
        if np.allclose(vs0, vs, rtol=1e-6, atol=1e-9) and np.allclose(off0, off, rtol=1e-6, atol=1e-9):
            return
        same_vs = np.allclose(vs0, vs, rtol=1e-6, atol=1e-9)
        what = "offset" if same_vs else "voxel size"
        a, b = (g0[1], g[1]) if same_vs else (g0[0], g[0])
        a, b = (f"{a} {g0[2]}", f"{b} {g[2]}") if known else (a, b)
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


#: how :func:`read_reflected` fills a box beyond the volume (numpy.pad's modes of the same names)
PAD_MODES = ("reflect", "symmetric", "edge", "constant")


def reflect_indices(start: int, stop: int, length: int, pad_mode: str = "reflect") -> np.ndarray:
    """Indices ``start..stop-1`` mapped into ``[0, length)`` as ``numpy.pad(mode=pad_mode)`` does.

    ``reflect``: mirrored without repeating the edge (-1 reads 1); ``symmetric``: the edge repeated
    (-1 reads 0); ``edge``: the nearest edge; ``constant``: -1 outside the volume (to be filled).
    """
    idx = np.arange(start, stop, dtype=np.int64)
    if pad_mode == "edge":
        return np.clip(idx, 0, length - 1)
    if pad_mode == "constant":
        return np.where((idx >= 0) & (idx < length), idx, -1)
    if pad_mode == "symmetric":
        idx = idx % (2 * length)
        return np.where(idx >= length, 2 * length - 1 - idx, idx)
    if pad_mode != "reflect":
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= length, period - idx, idx)


def read_reflected(
    read_inside: Callable[[Box], Any],
    box: Sequence,
    shape: Sequence[int],
    pad_mode: str = "reflect",
    fill_value: float = 0,
):
    """Read ``box`` of a volume of spatial ``shape`` given a reader for in-bounds boxes only.

    The one mirror-padded read: volumes, tiles and stores read their boxes through it, and so do the
    rejection crop (its crops and integral tables), 2D inference (an image smaller than a window) and
    PyTC's padded whole volumes. ``read_inside(inner_box)`` must return the ``(..., z, y, x)`` data of
    a box inside the volume (``len(shape)`` trailing axes), as a numpy array or a torch tensor
    (gathered on its device). Only the in-bounds hull of the mapped indices is read, once. Voxels
    outside the volume follow ``pad_mode`` (:func:`reflect_indices`; ``constant``: ``fill_value``).
    """
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    box = normalize_box(box, len(shape))
    inside = all(0 <= a and b <= n for (a, b), n in zip(box, shape, strict=True))
    if inside:
        return read_inside(box)
    indices = [reflect_indices(a, b, n, pad_mode) for (a, b), n in zip(box, shape, strict=True)]
    valid = [i >= 0 for i in indices]  # False only for constant padding
    indices = [np.where(v, i, i[v][0] if v.any() else 0) for i, v in zip(indices, valid, strict=True)]
    hull = tuple((int(i.min()), int(i.max()) + 1) for i in indices)
    data = read_inside(hull)
    lead = data.ndim - len(shape)
    local = [i - h[0] for i, h in zip(indices, hull, strict=True)]
    if isinstance(data, torch.Tensor):  # one axis at a time: no index broadcast on the device
        out = data
        for axis, i in enumerate(local):
            out = out.index_select(lead + axis, torch.as_tensor(i, device=data.device))
    else:
        out = data[(slice(None),) * lead + np.ix_(*local)]
    if pad_mode == "constant":
        axes = [v.reshape([-1 if a == k else 1 for a in range(len(valid))]) for k, v in enumerate(valid)]
        outside = ~np.logical_and.reduce(np.broadcast_arrays(*axes))
        if isinstance(out, torch.Tensor):
            outside = torch.as_tensor(outside, device=out.device)
        out[..., outside] = fill_value
    return out


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
