"""The tiled-volume format on disk: the tile JSON, tile file names and pixel encodings, and a writer.

A tiled volume is one JSON file plus one image file per section, or one file per ``{row}_{column}``
tile of each section (see ``docs/tiles.md``)::

    {"ndim": 1, "dtype": "uint8", "image": ["0000/{row}_{column}.png", ...],
     "height": 512, "width": 512, "depth": 64,
     "tile_ratio": 1, "n_columns": 2, "n_rows": 2, "tile_st": [0, 0], "tile_size": 256}

Relative paths in ``image`` resolve against the folder that holds the JSON file.
Labels wider than 16 bits are stored as RGB PNGs (VAST export): ``id = R * 65536 + G * 256 + B``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "TILE_PATTERN",
    "decode_label_rgb",
    "encode_label_rgb",
    "tile_file",
    "to_pil",
    "write_tiled_volume",
]

TILE_PATTERN = "{row}_{column}"


def tile_file(pattern: str, row: int, column: int, tile_st: Sequence[int] = (0, 0)) -> str:
    """File name of tile (row, column) of a section whose JSON entry is ``pattern``."""
    return pattern.replace("{row}", str(row + int(tile_st[0]))).replace("{column}", str(column + int(tile_st[1])))


def encode_label_rgb(label: np.ndarray) -> np.ndarray:
    """``(Y, X)`` ids < 2**24 -> ``(Y, X, 3)`` uint8 RGB as VAST writes them."""
    label = np.asarray(label)
    if label.size and (label.min() < 0 or label.max() >= 2**24):
        raise ValueError(f"RGB label encoding holds ids in [0, 2**24), got [{label.min()}, {label.max()}]")
    v = label.astype(np.uint32)
    return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8)


def decode_label_rgb(rgb: np.ndarray, dtype="uint32") -> np.ndarray:
    """``(Y, X, 3)`` RGB -> ``(Y, X)`` ids ``R * 65536 + G * 256 + B``."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"an RGB label image must be (Y, X, 3), got shape {rgb.shape}")
    v = rgb[..., :3].astype(np.uint32)
    return ((v[..., 0] << 16) | (v[..., 1] << 8) | v[..., 2]).astype(dtype)


def to_pil(section: np.ndarray) -> Image.Image:
    """A ``(Y, X)`` section as a PIL image: uint8 -> L, uint16 -> I;16, wider ints -> VAST RGB."""
    section = np.asarray(section)
    if section.dtype in (np.uint8, np.uint16):
        return Image.fromarray(np.ascontiguousarray(section))
    if np.issubdtype(section.dtype, np.integer):
        return Image.fromarray(encode_label_rgb(section))
    raise TypeError(f"tiles hold integer sections (uint8, uint16, or ids < 2**24), got dtype {section.dtype}")


def _atomic_save(img: Image.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    img.save(tmp)
    os.replace(tmp, path)


def write_tiled_volume(
    volume: np.ndarray,
    folder: str | os.PathLike,
    tile_size: int | Sequence[int] | None = None,
    ext: str = "png",
    json_name: str = "volume.json",
    tile_st: Sequence[int] = (0, 0),
) -> Path:
    """Write a ``(Z, Y, X)`` volume as section files or ``{row}_{column}`` tiles plus its tile JSON.

    Args:
        volume: ``(Z, Y, X)`` uint8 / uint16 image, or integer label (ids < 2**24, stored as RGB).
        folder: output folder, created if needed; paths in the JSON are relative to it.
        tile_size: ``None`` writes one file per section (``0000.png``); an int or ``(ty, tx)``
            splits each section into tiles (``0000/0_0.png``); the last row/column may be smaller.
        ext: ``"png"`` or ``"tif"``.
        json_name: name of the JSON file written into ``folder``.
        tile_st: ``[row0, col0]`` added to the row/column numbers in file names.

    Returns:
        Path of the JSON file.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"write_tiled_volume expects a (Z, Y, X) volume, got shape {volume.shape}")
    if ext not in ("png", "tif", "tiff"):
        raise ValueError(f"ext must be 'png' or 'tif', got {ext!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    depth, height, width = volume.shape
    tile_yx = (height, width) if tile_size is None else tuple(np.broadcast_to(tile_size, 2).tolist())
    if min(tile_yx) < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    n_rows, n_cols = -(-height // tile_yx[0]), -(-width // tile_yx[1])
    entries = []
    for z in range(depth):
        if tile_size is None:
            entries.append(f"{z:04d}.{ext}")
            _atomic_save(to_pil(volume[z]), folder / entries[-1])
            continue
        entries.append(f"{z:04d}/{TILE_PATTERN}.{ext}")
        (folder / f"{z:04d}").mkdir(exist_ok=True)
        for r in range(n_rows):
            for c in range(n_cols):
                tile = volume[z, r * tile_yx[0] : (r + 1) * tile_yx[0], c * tile_yx[1] : (c + 1) * tile_yx[1]]
                _atomic_save(to_pil(tile), folder / tile_file(entries[-1], r, c, tile_st))
    spec = {
        "ndim": 1,
        "dtype": str(volume.dtype),
        "image": entries,
        "height": int(height),
        "width": int(width),
        "depth": int(depth),
        "tile_ratio": 1,
        "n_columns": int(n_cols),
        "n_rows": int(n_rows),
        "tile_st": [int(t) for t in tile_st],
        "tile_size": int(tile_yx[0]) if tile_yx[0] == tile_yx[1] else [int(t) for t in tile_yx],
    }
    json_path = folder / json_name
    json_path.write_text(json.dumps(spec, indent=1))
    return json_path
