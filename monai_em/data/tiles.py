"""Tiled volumes: region reads from a tile JSON, touching only the tiles a box needs."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..roles import ROLES, get_role
from .tile_format import TileSpec, decode_label_rgb, load_tile_json, tile_file
from .volume import Box, VolumeSource, check_same_geometry, read_reflected

__all__ = ["MissingTileWarning", "TileVolume", "check_compatible", "zoom_tile"]

logger = logging.getLogger(__name__)


class MissingTileWarning(UserWarning):
    """A tile file named in a tile JSON does not exist; its voxels were filled."""


def _sample_positions(n_in: int, n_out: int, ratio: float) -> np.ndarray:
    """Source coordinates of ``n_out`` output pixel centres for a zoom by ``ratio`` (half-pixel aligned)."""
    return (np.arange(n_out) + 0.5) / ratio - 0.5


def zoom_tile(tile: np.ndarray, ratio: float, linear: bool) -> np.ndarray:
    """Zoom a ``(Y, X)`` tile by ``ratio`` to ``round(size * ratio)`` pixels, keeping its dtype.

    Pixel centres are aligned (output pixel ``i`` samples input ``(i + 0.5) / ratio - 0.5``).
    ``linear=False`` gathers the nearest pixel (labels: ids are never blended); ``linear=True``
    interpolates separably, rounding back for integer dtypes.
    """
    if ratio == 1:
        return tile
    out = tile
    for axis in (0, 1):
        n_in = out.shape[axis]
        n_out = max(1, int(round(n_in * ratio)))
        pos = _sample_positions(n_in, n_out, ratio)
        if not linear:
            idx = np.clip(np.floor(pos + 0.5).astype(np.int64), 0, n_in - 1)
            out = np.take(out, idx, axis=axis)
            continue
        pos = np.clip(pos, 0, n_in - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = (pos - i0).astype(np.float32).reshape((-1, 1) if axis == 0 else (1, -1))
        a, b = np.take(out, i0, axis=axis).astype(np.float32), np.take(out, i1, axis=axis).astype(np.float32)
        out = a * (1 - w) + b * w
    if linear and np.issubdtype(tile.dtype, np.integer):
        info = np.iinfo(tile.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(tile.dtype, copy=False)


class TileVolume:
    """A volume stored as section images or ``{row}_{column}`` tiles described by a tile JSON.

    Implements :class:`~monai_em.data.volume.VolumeSource`: ``read(box)`` returns the ``(Z, Y, X)``
    voxels of ``box = ((z0, z1), (y0, y1), (x0, x1))``, opening only the tiles the box touches
    (decoded by a small thread pool), with the parts outside the volume mirror-padded. Every tile is
    zoomed by the JSON's ``tile_ratio`` as it is read (linear for images, nearest for labels and masks),
    and checked against the size the JSON implies. PNG and TIFF tiles of 8 or 16 bits are read; RGB
    label tiles (VAST export) decode to ``R * 65536 + G * 256 + B``, RGB image tiles convert to gray.

    A missing tile file is filled (images: ``fill_value``; labels and masks: 0, i.e. unlabelled /
    invalid) with a :class:`MissingTileWarning` naming the file, and each read that filled tiles logs
    a summary count; with ``strict=True`` a missing tile raises ``FileNotFoundError`` instead.

    Args:
        json_path: the tile JSON; relative paths in it resolve against the JSON's folder.
        role: ``"image"``, ``"label"`` or ``"mask"`` (valid mask): picks the zoom mode and the fill.
        fill_value: value written for missing image tiles (PyTC's 128). Labels/masks always get 0.
        strict: raise on a missing tile instead of filling it.
        threads: tile decode threads per read (0 or 1: decode in the calling thread).

    Raises:
        ValueError: invalid JSON (named field), a tile whose size or value range disagrees with the
            JSON, or an unreadable tile (the message names the file).

    Example:
        >>> vol = TileVolume("medulla/image.json")  # doctest: +SKIP
        >>> vol.read(((-4, 36), (0, 128), (0, 128))).shape  # doctest: +SKIP
        (40, 128, 128)
    """

    def __init__(
        self,
        json_path: str | os.PathLike,
        role: str = "image",
        fill_value: float = 128,
        strict: bool = False,
        threads: int = 2,
    ):
        kind = get_role(role)  # ValueError naming the roles
        if int(threads) < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self.json_path = Path(json_path)
        self.spec: TileSpec = load_tile_json(json_path)
        self.role = role
        self.fill_value = kind.tile_fill(fill_value)
        self.strict = bool(strict)
        self.threads = int(threads)
        self.shape = self.spec.shape
        self.dtype = self.spec.dtype
        self.tile_ratio = self.spec.tile_ratio
        self.voxel_size, self.offset, self.unit = self.spec.voxel_size, self.spec.offset, self.spec.unit
        self.missing_count = 0  # missing tiles filled so far (all reads)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = -1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"TileVolume({str(self.json_path)!r}, role={self.role!r}, shape={self.shape}, dtype={self.dtype})"
        )

    def __getstate__(self):  # thread pools and locks do not travel to DataLoader workers
        state = dict(self.__dict__)
        state.update(_pool=None, _pool_pid=-1, _lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # geometry ---------------------------------------------------------------------------------
    def _tile_grid(self, z: int) -> tuple[int, int]:
        return self.spec.tile_size if self.spec.is_tiled(z) else (self.spec.height, self.spec.width)

    def tiles_in(self, box: Box) -> list[tuple[int, int, int, str]]:
        """``(z, row, column, file)`` of every tile an in-bounds box touches."""
        (z0, z1), (y0, y1), (x0, x1) = box
        out = []
        for z in range(z0, z1):
            ty, tx = self._tile_grid(z)
            for r in range(y0 // ty, (y1 - 1) // ty + 1):
                for c in range(x0 // tx, (x1 - 1) // tx + 1):
                    path = (
                        tile_file(self.spec.entries[z], r, c, self.spec.tile_st)
                        if self.spec.is_tiled(z)
                        else self.spec.entries[z]
                    )
                    out.append((z, r, c, path))
        return out

    def missing_files(self) -> list[str]:
        """Every tile file of the volume that does not exist (stats all files: slow for huge volumes)."""
        box = tuple((0, n) for n in self.shape)
        return [p for *_, p in self.tiles_in(box) if not os.path.isfile(p)]

    # decoding ---------------------------------------------------------------------------------
    def _cast(self, arr: np.ndarray, path: str) -> np.ndarray:
        if arr.dtype == self.dtype:
            return arr
        if np.can_cast(arr.dtype, self.dtype):
            return arr.astype(self.dtype)
        if np.issubdtype(arr.dtype, np.integer) and np.issubdtype(self.dtype, np.integer) and arr.size:
            lo, hi, info = arr.min(), arr.max(), np.iinfo(self.dtype)
            if info.min <= lo and hi <= info.max:
                return arr.astype(self.dtype)
            raise ValueError(
                f"tile {path} holds {arr.dtype} values in [{lo}, {hi}] that do not fit the JSON dtype {self.dtype} "
                f'({self.json_path}); set "dtype" in the JSON (e.g. "uint16")'
            )
        raise ValueError(
            f"tile {path} has dtype {arr.dtype}, which cannot be read as the JSON dtype {self.dtype} ({self.json_path})"
        )

    def _decode(self, path: str) -> np.ndarray:
        try:
            with Image.open(path) as img:
                if ROLES[self.role].intensities and img.mode in ("RGB", "RGBA", "LA", "P", "CMYK", "YCbCr"):
                    img = img.convert("L")
                arr = np.asarray(img)
        except FileNotFoundError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"cannot read tile {path} ({self.json_path}): {e}") from e
        if arr.ndim == 3:
            arr = decode_label_rgb(arr)
        if arr.ndim != 2:
            raise ValueError(f"tile {path} has shape {arr.shape}; expected a 2D (Y, X) image or RGB label")
        arr = self._cast(arr, path)
        return zoom_tile(arr, self.tile_ratio, linear=ROLES[self.role].interpolation == "bilinear")

    def _load_tile(self, z: int, r: int, c: int, path: str) -> np.ndarray | None:
        """The tile (r, c) of section z in volume voxels, or None if its file is missing."""
        try:
            tile = self._decode(path)
        except FileNotFoundError:
            if self.strict:
                raise FileNotFoundError(
                    f"tile file {path} (section z={z}) of {self.json_path} does not exist"
                ) from None
            return None
        ty, tx = self._tile_grid(z)
        eh, ew = min(ty, self.spec.height - r * ty), min(tx, self.spec.width - c * tx)
        h, w = tile.shape
        ok_h = h == eh or (self.spec.is_tiled(z) and (r + 1) * ty >= self.spec.height and eh < h <= ty)
        ok_w = w == ew or (self.spec.is_tiled(z) and (c + 1) * tx >= self.spec.width and ew < w <= tx)
        if not (ok_h and ok_w):
            zoom = "" if self.tile_ratio == 1 else f" after tile_ratio {self.tile_ratio}"
            raise ValueError(
                f"tile {path} is {h}x{w} voxels{zoom} but {self.json_path} implies {eh}x{ew} "
                f"(section z={z}, row {r}, column {c}, tile_size {list(self.spec.tile_size)})"
            )
        return tile

    def _fill_part(self, out: np.ndarray, box: Box, task) -> str | None:
        z, r, c, path = task
        (z0, _), (y0, y1), (x0, x1) = box
        ty, tx = self._tile_grid(z)
        ys, ye = max(y0, r * ty), min(y1, (r + 1) * ty)
        xs, xe = max(x0, c * tx), min(x1, (c + 1) * tx)
        dst = out[z - z0, ys - y0 : ye - y0, xs - x0 : xe - x0]
        tile = self._load_tile(z, r, c, path)
        if tile is None:
            dst[...] = self.fill_value
            return path
        dst[...] = tile[ys - r * ty : ye - r * ty, xs - c * tx : xe - c * tx]
        return None

    def _executor(self) -> ThreadPoolExecutor | None:
        if self.threads <= 1:
            return None
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tile-decode")
                self._pool_pid = os.getpid()
        return self._pool

    def _read_inside(self, box: Box) -> np.ndarray:
        out = np.empty(tuple(b - a for a, b in box), dtype=self.dtype)
        tasks = self.tiles_in(box)
        pool = self._executor() if len(tasks) > 1 else None
        if pool is None:
            results = [self._fill_part(out, box, t) for t in tasks]
        else:
            results = list(pool.map(lambda t: self._fill_part(out, box, t), tasks))
        missing = [p for p in results if p is not None]
        for p in missing:
            warnings.warn(
                f"missing tile {p} of {self.json_path} filled with {self.fill_value}",
                MissingTileWarning,
                stacklevel=4,
            )
        if missing:
            self.missing_count += len(missing)
            logger.warning(
                "%s: %d missing tile(s) filled with %s while reading box %s",
                self.json_path,
                len(missing),
                self.fill_value,
                box,
            )
        return out

    def read(self, box) -> np.ndarray:
        """The ``(Z, Y, X)`` voxels of ``box``; outside parts mirror-padded."""
        return read_reflected(self._read_inside, box, self.shape)

    def close(self) -> None:
        """Stop the decode threads (they are recreated on the next read)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def check_compatible(volumes: dict[str, VolumeSource]) -> None:
    """Check that the volumes of one dataset cover the same voxels (shape, voxel size, offset, unit,
    see :func:`~monai_em.data.volume.check_same_geometry`) and that tiled ones share their ``tile_ratio``.

    Raises:
        ValueError: naming both keys (and JSON files) and the values that disagree.
    """
    check_same_geometry(volumes)
    items = list(volumes.items())
    if not items:
        return
    key0, ref = items[0]
    for key, vol in items[1:]:
        r0, r1 = getattr(ref, "tile_ratio", None), getattr(vol, "tile_ratio", None)
        if r0 is not None and r1 is not None and r0 != r1:
            raise ValueError(
                f"tile_ratio of {key!r} ({vol.json_path}) is {r1} but {key0!r} ({ref.json_path}) has {r0}: "
                "the label would be misaligned with the image"
            )
