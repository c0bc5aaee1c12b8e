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
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .volume import parse_geometry

__all__ = [
    "TILE_PATTERN",
    "TileSpec",
    "decode_label_rgb",
    "encode_label_rgb",
    "load_tile_json",
    "tile_file",
    "to_pil",
    "write_tile_json",
    "write_tiled_volume",
]

TILE_PATTERN = "{row}_{column}"


def tile_file(pattern: str, row: int, column: int, tile_st: Sequence[int] = (0, 0)) -> str:
    """File name of tile (row, column) of a section whose JSON entry is ``pattern``."""
    return pattern.replace("{row}", str(row + int(tile_st[0]))).replace(
        "{column}", str(column + int(tile_st[1]))
    )


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


REQUIRED_FIELDS = ("image", "depth", "height", "width")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class TileSpec:
    """A validated tile JSON. ``height``, ``width`` and ``tile_size`` are in volume voxels (after ``tile_ratio``).

    ``entries[z]`` is the absolute file (or ``{row}_{column}`` pattern) of section ``z``.
    """

    path: Path
    entries: tuple[str, ...]
    depth: int
    height: int
    width: int
    tile_size: tuple[int, int]
    tile_st: tuple[int, int]
    tile_ratio: float
    dtype: np.dtype
    n_rows: int
    n_columns: int
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    unit: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.depth, self.height, self.width)

    def is_tiled(self, z: int) -> bool:
        """Whether section ``z`` is split into ``{row}_{column}`` tiles (else one file)."""
        return "{row}" in self.entries[z] or "{column}" in self.entries[z]


def _int_field(spec: dict, name: str, path, minimum: int = 1) -> int:
    value = spec[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or int(value) != value
        or value < minimum
    ):
        raise ValueError(f"tile JSON {path}: field {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _pair_field(spec: dict, name: str, path, default, minimum: int) -> tuple[int, int]:
    value = spec.get(name, default)
    items = [value, value] if np.isscalar(value) else list(value) if isinstance(value, (list, tuple)) else []
    if len(items) != 2 or not all(
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and int(v) == v
        and v >= minimum
        for v in items
    ):
        raise ValueError(
            f"tile JSON {path}: field {name!r} must be an int or [y, x] ints >= {minimum}, got {value!r}"
        )
    return int(items[0]), int(items[1])


def load_tile_json(path: str | os.PathLike) -> TileSpec:
    """Read and validate a tile JSON; relative ``image`` entries resolve against the JSON's folder.

    Raises:
        FileNotFoundError: the JSON file does not exist.
        ValueError: invalid JSON, a missing or malformed field (named), ``depth`` differing from the
            number of ``image`` entries, or ``n_rows``/``n_columns`` contradicting the tile grid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tile JSON not found: {path}")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"tile JSON {path} is not valid JSON: {e}") from e
    if not isinstance(spec, dict):
        raise ValueError(f"tile JSON {path} must hold an object, got {type(spec).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in spec]
    if missing:
        raise ValueError(
            f"tile JSON {path} is missing field(s) {missing} (required: {list(REQUIRED_FIELDS)})"
        )
    entries = spec["image"]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValueError(f"tile JSON {path}: field 'image' must be a list of file names, one per section")
    depth, height, width = (_int_field(spec, f, path) for f in ("depth", "height", "width"))
    if depth != len(entries):
        raise ValueError(f"tile JSON {path}: 'depth' is {depth} but 'image' lists {len(entries)} sections")
    tiled = any("{row}" in e or "{column}" in e for e in entries)
    if tiled and "tile_size" not in spec:
        raise ValueError(
            f"tile JSON {path} is missing field 'tile_size' (needed for {{row}}_{{column}} entries)"
        )
    tile_size = _pair_field(spec, "tile_size", path, [height, width], 1) if tiled else (height, width)
    tile_st = _pair_field(spec, "tile_st", path, [0, 0], 0)
    ratio = spec.get("tile_ratio", 1)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < math.inf:
        raise ValueError(f"tile JSON {path}: field 'tile_ratio' must be a number > 0, got {ratio!r}")
    try:
        dtype = np.dtype(spec.get("dtype", "uint8"))
    except TypeError as e:
        raise ValueError(
            f"tile JSON {path}: field 'dtype' is not a numpy dtype: {spec.get('dtype')!r}"
        ) from e
    if spec.get("dtype", "uint8") is None or dtype.kind not in "biuf":  # np.dtype(None) is float64
        raise ValueError(
            f"tile JSON {path}: field 'dtype' must be a numeric dtype (e.g. \"uint8\"), got {spec.get('dtype')!r}"
        )
    n_rows, n_cols = -(-height // tile_size[0]), -(-width // tile_size[1])
    for name, expect in (("n_rows", n_rows), ("n_columns", n_cols)):
        if tiled and name in spec and spec[name] != expect:
            raise ValueError(
                f"tile JSON {path}: {name!r} is {spec[name]} but height {height} x width {width} in tiles of "
                f"{list(tile_size)} needs {expect}"
            )
    if "ndim" in spec and (isinstance(spec["ndim"], bool) or not isinstance(spec["ndim"], int)):
        raise ValueError(f"tile JSON {path}: field 'ndim' must be an integer, got {spec['ndim']!r}")
    voxel_size, offset, unit = parse_geometry(spec, f"tile JSON {path}")
    root = path.resolve().parent
    return TileSpec(
        path=path,
        entries=tuple(str(root / e) if not os.path.isabs(e) else e for e in entries),
        depth=depth,
        height=height,
        width=width,
        tile_size=tile_size,
        tile_st=tile_st,
        tile_ratio=float(ratio),
        dtype=dtype,
        n_rows=n_rows if tiled else 1,
        n_columns=n_cols if tiled else 1,
        voxel_size=voxel_size,
        offset=offset,
        unit=unit,
    )


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _image_size(path: Path) -> tuple[tuple[int, int], np.dtype]:
    try:
        with Image.open(path) as img:
            width, height = img.size
            mode = img.mode
    except (OSError, SyntaxError, ValueError) as e:  # PIL: zero-byte, truncated or not an image
        raise ValueError(f"cannot read image {path} (for the tile JSON): {e}") from e
    dtype = {"I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32}.get(mode, np.uint8)
    return (height, width), np.dtype(dtype)


def write_tile_json(
    folder: str | os.PathLike,
    json_path: str | os.PathLike | None = None,
    dtype: str | None = None,
    tile_ratio: float = 1,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> Path:
    """Write the tile JSON of an existing folder of section images or of per-section tile folders.

    ``folder`` holds either one image per section (sorted naturally: ``im2.png`` before ``im10.png``),
    or one sub-folder per section holding ``{row}_{column}`` tiles (rows/columns may start at any
    offset, stored as ``tile_st``). Sizes come from the files: the first section (or tile ``0_0``) and,
    for tiles, the last row/column. ``height``, ``width`` and ``tile_size`` are written in volume
    voxels, i.e. file sizes times ``tile_ratio``. Paths are written relative to the JSON's folder.

    Args:
        folder: folder with the section images or section tile folders.
        json_path: output JSON file; default ``<folder>/volume.json``.
        dtype: ``dtype`` field; default from the first file (uint8, uint16; RGB labels: give it).
        tile_ratio: ``tile_ratio`` field (zoom applied to every tile when read).
        suffixes: file suffixes taken as images.

    Returns:
        Path of the JSON file.
    """
    folder = Path(folder).resolve()
    json_path = Path(json_path) if json_path is not None else folder / "volume.json"
    root = json_path.resolve().parent
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file()), key=_natural_key
    )
    rel = lambda p: Path(os.path.relpath(p, root)).as_posix()  # noqa: E731
    if files:
        (height, width), file_dtype = _image_size(files[0])
        entries, tile_yx, n_rows, n_cols, tile_st = [rel(p) for p in files], (height, width), 1, 1, (0, 0)
    else:
        sections = sorted((p for p in folder.iterdir() if p.is_dir()), key=_natural_key)
        grid = re.compile(r"^(\d+)_(\d+)$")
        tiles = (
            []
            if not sections
            else [p for p in sections[0].iterdir() if grid.match(p.stem) and p.suffix in suffixes]
        )
        if not tiles:
            raise ValueError(
                f"{folder} holds neither section images {tuple(suffixes)} nor folders of row_column tiles"
            )
        rc = {tuple(int(v) for v in grid.match(p.stem).groups()): p for p in tiles}
        rows, cols = sorted({r for r, _ in rc}), sorted({c for _, c in rc})
        tile_st, ext = (rows[0], cols[0]), tiles[0].suffix
        (ty, tx), file_dtype = _image_size(rc[(rows[0], cols[0])])
        last_y = _image_size(rc[(rows[-1], cols[0])])[0][0]
        last_x = _image_size(rc[(rows[0], cols[-1])])[0][1]
        n_rows, n_cols = len(rows), len(cols)
        height, width, tile_yx = (n_rows - 1) * ty + last_y, (n_cols - 1) * tx + last_x, (ty, tx)
        entries = [rel(p / f"{TILE_PATTERN}{ext}") for p in sections]
    scale = lambda v: int(round(v * tile_ratio))  # noqa: E731  (each tile is zoomed on its own)
    if files:
        height, width = scale(height), scale(width)
    else:
        height, width = (n_rows - 1) * scale(ty) + scale(last_y), (n_cols - 1) * scale(tx) + scale(last_x)
    tile_yx = (scale(tile_yx[0]), scale(tile_yx[1]))
    spec = {
        "ndim": 1,
        "dtype": str(np.dtype(dtype)) if dtype is not None else str(file_dtype),
        "image": entries,
        "height": height,
        "width": width,
        "depth": len(entries),
        "tile_ratio": tile_ratio,
        "n_columns": n_cols,
        "n_rows": n_rows,
        "tile_st": [int(t) for t in tile_st],
        "tile_size": tile_yx[0] if tile_yx[0] == tile_yx[1] else list(tile_yx),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(spec, indent=1))
    return json_path
