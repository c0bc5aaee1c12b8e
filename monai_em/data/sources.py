"""Open any volume description as a :class:`~monai_em.data.volume.VolumeSource` that reads box by box.

One entry point for training, inference and the PyTC config: tile JSONs stay tiled, HDF5 datasets and
``.npy`` files stay on disk (only the boxes asked for are read), small formats are read into memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, ImageSequence

from ..roles import role_of_key  # re-exported: the rule that names a key's role lives in monai_em.roles
from .readers import first_dataset_name
from .stores import is_store, open_store
from .volume import ArrayVolume, VolumeSource, normalize_unit, parse_geometry, read_reflected

__all__ = ["HDF5Volume", "open_volume", "role_of_key"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_PIL_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_NIFTI_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")


class HDF5Volume:
    """One HDF5 dataset ``(..., Z, Y, X)`` read box by box, never loaded whole.

    Voxel size, offset and unit come from the dataset's attributes (CREMI: ``resolution`` and
    ``offset`` in nm, (z, y, x)); see :func:`~monai_em.data.volume.parse_geometry`.

    The file is opened on the first read in each process (and reopened after a fork), so the
    volume can be built in the main process and read in DataLoader workers.

    Raises:
        ValueError: the file is not HDF5, or has no dataset ``dataset`` (the message lists those it has).
    """

    def __init__(self, path: str | os.PathLike, dataset: str | None = None):
        self.path = Path(path)
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as e:  # zero-byte, truncated or not HDF5: h5py's message does not name the file
            raise ValueError(f"cannot open {self.path} as HDF5: {e}") from e
        with h5:
            name = first_dataset_name(h5) if dataset is None else dataset
            obj = h5.get(name)
            if not isinstance(obj, h5py.Dataset):
                names: list[str] = []
                h5.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
                raise ValueError(f"HDF5 file {self.path} has no dataset {name!r}; datasets: {names}")
            if obj.ndim < 3:
                raise ValueError(f"{self.path}:{name}: a volume needs (Z, Y, X) axes, got shape {obj.shape}")
            self.full_shape = tuple(int(s) for s in obj.shape)
            self.dtype = np.dtype(obj.dtype)
            self.voxel_size, self.offset, self.unit = parse_geometry(dict(obj.attrs), f"{self.path}:{name}")
        self.dataset = name
        self.shape = self.full_shape[-3:]
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _read_inside(self, box) -> np.ndarray:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return np.asarray(self._file[self.dataset][(Ellipsis,) + tuple(slice(a, b) for a, b in box)])

    def read(self, box) -> np.ndarray:
        return read_reflected(self._read_inside, box, self.shape)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}  # open handles do not pickle

    def __repr__(self) -> str:
        return f"HDF5Volume({self.path}:{self.dataset}, shape={self.full_shape}, dtype={self.dtype})"


def _imagej_geometry(img: Image.Image, path: Path) -> dict:
    """``{voxel_size, unit}`` of an ImageJ TIFF (``unit=``/``spacing=`` in its description,
    X/YResolution in pixels per unit); ``{}`` for other images (their DPI says nothing about voxels)."""
    tags = getattr(img, "tag_v2", None)
    desc = tags.get(270) if tags is not None else None
    if not isinstance(desc, str) or not desc.startswith("ImageJ="):
        return {}
    fields = dict(line.split("=", 1) for line in desc.splitlines() if "=" in line)
    unit = fields.get("unit", "").strip()
    if not unit or unit.lower() in ("pixel", "pixels"):
        return {}
    xres, yres = tags.get(282), tags.get(283)
    try:
        size_y = 1.0 / float(yres) if yres else 1.0
        size_x = 1.0 / float(xres) if xres else 1.0
        spacing = float(fields.get("spacing", 1.0))
    except (ValueError, ZeroDivisionError) as e:
        raise ValueError(f"{path}: unreadable ImageJ voxel size ({desc!r}): {e}") from e
    return {"voxel_size": (spacing, size_y, size_x), "unit": normalize_unit(unit)}


def _read_pil(path: Path) -> tuple[np.ndarray, dict]:
    """Every page of a PNG/TIFF/... as ``(Z, Y, X)``, or ``(C, Z, Y, X)`` for colour pages, and the
    ImageJ voxel size (``{}`` when there is none)."""
    try:
        with Image.open(path) as img:
            meta = _imagej_geometry(img, path)
            pages = [np.asarray(p.copy()) for p in ImageSequence.Iterator(img)]
    except (OSError, SyntaxError, ValueError) as e:  # PIL: unidentified, truncated or corrupt image
        raise ValueError(f"cannot read image {path}: {e}") from e
    if len({p.shape for p in pages}) > 1:
        raise ValueError(f"{path}: pages differ in size {sorted({p.shape for p in pages})}")
    array = np.stack(pages)
    return (np.moveaxis(array, -1, 0) if array.ndim == 4 else array), meta  # colour is channels, never z


def _read_monai(path: Path) -> np.ndarray:
    """NIfTI / MHA / NRRD via MONAI's readers, spatial axes reversed from (X, Y, Z) to (Z, Y, X)."""
    from monai.transforms import LoadImage

    try:
        arr = np.asarray(LoadImage(image_only=True)(str(path)))
    except Exception as e:  # noqa: BLE001  MONAI's readers fail with ITK RuntimeError, nibabel errors, ...
        raise ValueError(f"cannot read volume file {path}: {type(e).__name__}: {e}") from e
    if arr.ndim != 3:
        raise ValueError(f"volume file {path} holds an array of shape {arr.shape}; expected 3 spatial axes")
    return arr.transpose(2, 1, 0)


def open_volume(
    source, role: str = "image", dataset: str | None = None, level: int | None = None, **tile_kwargs
) -> VolumeSource:
    """Any volume description as a :class:`VolumeSource`.

    Args:
        source: a ``VolumeSource`` (returned as is); an array or tensor ``(..., Z, Y, X)``; a dict
            ``{"path": ..., "dataset": ..., "level": ...}``; a chunked store, local or a URL
            (``file://``, ``http(s)://``, ``s3://``, ...): zarr v2/v3 (sharded too), an OME-Zarr image,
            N5 or neuroglancer precomputed (-> :func:`~monai_em.data.stores.open_store`, read chunk by
            chunk); or a path to a tile JSON (-> :class:`TileVolume`, read
            tile by tile), an HDF5 file (-> :class:`HDF5Volume`, read box by box from disk), a
            ``.npy`` file (memory-mapped), a PNG/TIFF file (every page a section, in memory; colour is
            channels), or a NIfTI/MHA/NRRD file (MONAI's readers, axes reversed to (Z, Y, X)).
        role: ``"image"``, ``"label"`` or ``"mask"``: how a tile JSON fills missing tiles.
        dataset: HDF5 dataset name (default the first dataset of the file); the array inside a zarr
            group or N5 container; a precomputed scale key.
        level: pyramid level (0 = finest) of an OME-Zarr image, N5 ``s0..sN`` group or precomputed volume.
        tile_kwargs: passed to :class:`TileVolume` (``fill_value``, ``strict``, ``threads``).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be read as a volume (the message names it).
        TypeError: ``source`` is none of the above.
    """
    if isinstance(source, dict):
        if "path" not in source:
            raise ValueError(
                f"a volume given as a dict needs a 'path' (and optional 'dataset', 'level'), got {source}"
            )
        source, dataset, level = source["path"], source.get("dataset", dataset), source.get("level", level)
    if is_store(source):
        return open_store(source, dataset=dataset, level=level)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"volume file not found: {path}")
        name = path.name.lower()
        if name.endswith(".json"):
            from .tiles import TileVolume

            return TileVolume(path, role=role, **tile_kwargs)
        if name.endswith(HDF5_SUFFIXES):
            return HDF5Volume(path, dataset)
        if name.endswith(".npy"):
            try:
                return ArrayVolume(np.load(path, mmap_mode="r"), name=str(path))
            except (OSError, ValueError, EOFError) as e:
                raise ValueError(f"cannot read {path} as a .npy array: {e}") from e
        if name.endswith(_PIL_SUFFIXES):
            array, meta = _read_pil(path)
            return ArrayVolume(array, name=str(path), **meta)
        if name.endswith(_NIFTI_SUFFIXES):
            return ArrayVolume(_read_monai(path), name=str(path))
        raise ValueError(
            f"cannot open {path} as a volume: expected a tile .json, HDF5 ({', '.join(HDF5_SUFFIXES)}), .npy, "
            f"an image ({', '.join(_PIL_SUFFIXES)}), NIfTI/MHA/NRRD, or a zarr / OME-Zarr / N5 / precomputed "
            "folder or URL"
        )
    if isinstance(source, VolumeSource) and not isinstance(source, np.ndarray):
        return source
    if hasattr(source, "shape") and hasattr(source, "dtype"):
        arr = source.detach().cpu().numpy() if hasattr(source, "detach") else source
        return ArrayVolume(arr, name=type(source).__name__)
    raise TypeError(
        f"cannot open a volume from {type(source).__name__}: give a tile JSON, a volume file, an array or a VolumeSource"
    )
