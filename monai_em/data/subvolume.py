"""A box of a volume seen as a volume of its own (e.g. held-out validation sections), read lazily."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .sources import open_volume
from .volume import Box, geometry, read_reflected

__all__ = ["SubVolume"]


def _resolve(bounds, length: int, axis: str) -> tuple[int, int]:
    """``[start, stop)`` with Python slice rules (negative = from the end, None = the edge)."""
    if bounds is None:
        return 0, length
    if len(bounds) != 2:
        raise ValueError(f"{axis} range must be [start, stop], got {bounds!r}")
    start, stop, step = slice(*bounds).indices(length)
    if stop <= start:
        raise ValueError(f"{axis} range {list(bounds)} of an axis of {length} voxels is empty")
    return start, stop


class SubVolume:
    """The voxels ``z_range x y_range x x_range`` of a volume, as a :class:`~monai_em.data.volume.VolumeSource`.

    Reads go to the underlying volume (a tile JSON opens only the tiles a read touches); boxes
    reaching outside the sub-volume are mirrored inside the *sub-volume*, so held-out sections
    never leak into a training crop and vice versa. ``offset`` is the source's plus the box start
    times the voxel size, so the part keeps its place in physical space.

    Args:
        source: anything :func:`~monai_em.data.sources.open_volume` accepts (tile JSON, HDF5 path,
            array, VolumeSource).
        z_range, y_range, x_range: ``[start, stop]`` per axis with Python slice rules (negative
            counts from the end, ``None`` is the edge); default the whole axis.
        role: ``"image"``, ``"label"`` or ``"mask"`` (how a tiled source fills and zooms tiles).
        tile_kwargs: passed on to a tiled source (``fill_value``, ``strict``, ``threads``).

    Example:
        >>> vol = SubVolume(np.arange(40).reshape(10, 2, 2), z_range=[-2, None])  # last two sections
        >>> vol.shape, int(vol.read(((0, 1), (0, 1), (0, 1)))[0, 0, 0])
        ((2, 2, 2), 32)
    """

    def __init__(
        self,
        source,
        z_range: Sequence[int | None] | None = None,
        y_range: Sequence[int | None] | None = None,
        x_range: Sequence[int | None] | None = None,
        role: str = "image",
        **tile_kwargs,
    ):
        self.source = open_volume(source, role=role, **tile_kwargs)
        # what check_compatible compares between the volumes of one dataset
        self.tile_ratio = getattr(self.source, "tile_ratio", None)
        self.json_path = getattr(self.source, "json_path", None)
        full = tuple(int(s) for s in self.source.shape)
        self.offset_box: Box = tuple(
            _resolve(r, n, a) for r, n, a in zip((z_range, y_range, x_range), full, "zyx", strict=True)
        )
        self.shape = tuple(b - a for a, b in self.offset_box)
        self.dtype = np.dtype(self.source.dtype)
        vs, off, self.unit = geometry(self.source)
        self.voxel_size = vs
        self.offset = tuple(o + a * v for o, (a, _), v in zip(off, self.offset_box, vs, strict=True))

    def _read_inside(self, box: Box) -> np.ndarray:
        shifted = tuple((a + o, b + o) for (a, b), (o, _) in zip(box, self.offset_box, strict=True))
        return self.source.read(shifted)

    def read(self, box) -> np.ndarray:
        return read_reflected(self._read_inside, box, self.shape)

    def read_all(self) -> np.ndarray:
        """The whole sub-volume ``(Z, Y, X)`` (for small held-out parts)."""
        return self.read(tuple((0, n) for n in self.shape))

    def __repr__(self) -> str:
        return f"SubVolume({self.source!r}, box={self.offset_box})"
