"""HDF5 volumes as a MONAI ``ImageReader`` (usable via ``LoadImaged(reader=HDF5Reader)``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import h5py
import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys

from .volume import VOXEL_SIZE_KEYS

__all__ = ["HDF5Reader", "first_dataset_name", "read_hdf5"]

_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def first_dataset_name(h5: h5py.File) -> str:
    """Name of the first dataset of an open HDF5 file, in the file's visit order."""
    names: list[str] = []
    h5.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and not names else None
    )
    if not names:
        raise ValueError(f"HDF5 file {h5.filename} holds no dataset")
    return names[0]


def _all_dataset_names(h5: h5py.File) -> list[str]:
    names: list[str] = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def read_hdf5(
    path: str | os.PathLike, dataset: str | None = None, box: Sequence[slice] | None = None
) -> np.ndarray:
    """Read ``dataset`` (default: the first) of an HDF5 file, optionally only the slices in ``box``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the dataset is not in the file (the message lists the ones that are).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"HDF5 file not found: {path}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"cannot open {path} as HDF5: {e}") from e
    with h5:
        name = first_dataset_name(h5) if dataset is None else dataset
        obj = h5.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise ValueError(f"HDF5 file {path} has no dataset {name!r}; datasets: {_all_dataset_names(h5)}")
        return obj[tuple(box)] if box is not None else obj[()]


class HDF5Reader(ImageReader):
    """Load a dataset of an HDF5 file as a channel-first array with a z-first voxel-size affine.

    A 3D dataset ``(Z, Y, X)`` loads as ``(1, Z, Y, X)``; a 4D dataset is taken as ``(C, Z, Y, X)``;
    a 2D dataset ``(Y, X)`` loads as ``(1, Y, X)``. The affine is diagonal with the voxel size
    in array order (z, y, x): from the dataset attribute ``resolution``, ``voxel_size`` or
    ``element_size_um`` when present, else ``voxel_size``; its translation is the ``offset``
    attribute (CREMI), so pairs that do not overlap are told apart.

    Args:
        dataset: dataset name inside the file; default the first dataset.
        voxel_size: fallback voxel size per spatial axis (z, y, x), default 1.

    Example:
        >>> from monai.transforms import LoadImaged
        >>> load = LoadImaged(keys="image", reader=HDF5Reader(dataset="stack"))  # doctest: +SKIP
        >>> load({"image": "train-image.h5"})["image"].shape  # doctest: +SKIP
        torch.Size([1, 50, 100, 200])
    """

    def __init__(self, dataset: str | None = None, voxel_size: Sequence[float] | None = None, **kwargs):
        super().__init__()
        self.dataset = dataset
        self.voxel_size = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        names = [filename] if isinstance(filename, (str, os.PathLike)) else filename
        return all(os.fspath(n).lower().endswith(_SUFFIXES) for n in names)

    def read(self, data: Sequence[str] | str, **kwargs):
        """Return ``[(path, dataset)]`` per file; the data is read in :meth:`get_data`.

        Reading late keeps errors ours: MONAI's ``LoadImage`` would otherwise fall back to other
        readers on failure and hide the message that names the file and its datasets.
        """
        names = [data] if isinstance(data, (str, os.PathLike)) else data
        return [(os.fspath(name), kwargs.get("dataset", self.dataset)) for name in names]

    def _voxel_size(self, attrs: dict, ndim: int) -> tuple[float, ...]:
        for key in VOXEL_SIZE_KEYS:
            if key in attrs:
                size = np.asarray(attrs[key], dtype=float).ravel()
                if size.size == ndim:
                    return tuple(size.tolist())
        if self.voxel_size is not None:
            if len(self.voxel_size) != ndim:
                raise ValueError(
                    f"voxel_size {self.voxel_size} has {len(self.voxel_size)} entries, data has {ndim} axes"
                )
            return self.voxel_size
        return (1.0,) * ndim

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        """Stack the files read into ``(C, ...)`` and build MONAI metadata (affine, spatial shape)."""
        arrays, meta = [], {}
        for path, dataset in img:
            array = read_hdf5(path, dataset)
            with h5py.File(path, "r") as h5:
                attrs = dict(h5[dataset if dataset is not None else first_dataset_name(h5)].attrs)
            if array.ndim not in (2, 3, 4):
                raise ValueError(
                    f"{path}: expected a 2D, 3D or 4D (C, Z, Y, X) dataset, got shape {array.shape}"
                )
            array = array[None] if array.ndim in (2, 3) else array
            spatial = array.shape[1:]
            affine = np.eye(len(spatial) + 1)
            affine[np.arange(len(spatial)), np.arange(len(spatial))] = self._voxel_size(attrs, len(spatial))
            offset = np.asarray(attrs.get("offset", np.zeros(len(spatial))), dtype=float).ravel()
            if offset.size != len(spatial):
                raise ValueError(
                    f"{path}: attribute 'offset' {offset.tolist()} needs {len(spatial)} entries (z, y, x)"
                )
            affine[: len(spatial), len(spatial)] = offset
            meta = {
                MetaKeys.AFFINE: affine,
                MetaKeys.ORIGINAL_AFFINE: affine.copy(),
                MetaKeys.SPATIAL_SHAPE: np.asarray(spatial),
                MetaKeys.ORIGINAL_CHANNEL_DIM: 0,
                MetaKeys.SPACE: SpaceKeys.RAS,
                "filename_or_obj": path,
            }
            arrays.append(array)
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"cannot stack HDF5 datasets of different shapes: {[a.shape for a in arrays]}")
        data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        return data, meta
