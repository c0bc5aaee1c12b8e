"""Open an inference input lazily as a :class:`~monai_em.data.volume.VolumeSource`."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, ImageSequence

from ..data.readers import first_dataset_name
from ..data.volume import ArrayVolume, VolumeSource

__all__ = ["load_volume"]

_H5 = (".h5", ".hdf5", ".hdf", ".he5")
_TIFF = (".tif", ".tiff")
_IMAGES = (".png", ".jpg", ".jpeg", ".bmp")


def load_volume(source, dataset: str | None = None, role: str = "image") -> VolumeSource:
    """The volume to predict, as a :class:`VolumeSource` that reads box by box.

    Args:
        source: a ``VolumeSource`` (returned as is, e.g. a ``TileVolume``), an array ``(Z, Y, X)`` or
            ``(C, Z, Y, X)``, or a path: a tile JSON (``.json`` -> ``TileVolume``, read tile by tile),
            an HDF5 file (the dataset stays on disk, only boxes are read), a ``.npy`` file (memory
            mapped), a multi-page TIFF (one page per section; loaded into memory) or one 2D image
            (a one-section volume).
        dataset: HDF5 dataset name; default the first dataset of the file.
        role: ``"image"``, ``"label"`` or ``"mask"`` for a tile JSON (missing-tile fill rule).
    """
    if isinstance(source, VolumeSource) and not isinstance(source, np.ndarray):
        return source
    if not isinstance(source, (str, os.PathLike)):
        try:
            import torch

            if isinstance(source, torch.Tensor):
                source = source.detach().cpu().numpy()
        except ImportError:  # pragma: no cover
            pass
        return ArrayVolume(np.asarray(source), name=type(source).__name__)
    path = Path(source)
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"inference input not found: {path}")
    if suffix == ".json":
        from ..data.tiles import TileVolume  # lazy: the tiled-volume reader is optional here

        return TileVolume(str(path), role=role)
    if suffix in _H5:
        try:
            h5 = h5py.File(path, "r")
        except OSError as e:  # zero-byte, truncated or not HDF5: h5py's message does not name the file
            raise ValueError(f"cannot open {path} as HDF5: {e}") from e
        try:
            name = first_dataset_name(h5) if dataset is None else dataset
        except ValueError:
            h5.close()
            raise
        obj = h5.get(name)
        if not isinstance(obj, h5py.Dataset):
            h5.close()
            raise ValueError(f"HDF5 file {path} has no dataset {name!r}")
        vol = ArrayVolume(obj, name=f"{path}:{name}")
        vol.h5file = h5  # keep the file open as long as the volume lives
        return vol
    if suffix == ".npy":
        try:
            return ArrayVolume(np.load(path, mmap_mode="r"), name=str(path))
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"cannot read {path} as a .npy array: {e}") from e
    if suffix in _TIFF + _IMAGES:
        try:
            with Image.open(path) as img:
                pages = [np.asarray(p.copy()) for p in ImageSequence.Iterator(img)]
        except (OSError, SyntaxError, ValueError) as e:  # PIL: unidentified, truncated or corrupt image
            raise ValueError(f"cannot read image {path}: {e}") from e
        array = np.stack(pages)
        if array.ndim == 4:  # RGB pages: colour is channels, never z
            array = np.moveaxis(array, -1, 0)
        return ArrayVolume(array, name=str(path))
    raise ValueError(
        f"cannot open {path} as a volume: expected a tile .json, HDF5 ({', '.join(_H5)}), .npy, TIFF or a 2D image"
    )
