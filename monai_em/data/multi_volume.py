"""Multi-volume training: pick a volume with probability proportional to its number of crop positions.

PyTC's ``VolumeDataset`` samples volume ``i`` with probability ``prod(L_i - s + 1) / sum_j prod(L_j - s + 1)``,
then a uniform start inside it, so every crop position of every volume is equally likely.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.data.utils import set_rnd
from monai.transforms import Randomizable, apply_transform
from monai.utils import MAX_SEED
from torch.utils.data import Dataset as _TorchDataset

from .chunks import resolve_rank_world

__all__ = ["MultiVolumeDataset", "RandVolumePicker", "crop_positions"]


def crop_positions(shape: Sequence[int], spatial_size: Sequence[int], allow_padding: bool = False) -> int:
    """Number of crop starts of ``spatial_size`` in a volume of spatial ``shape``: ``prod(L - s + 1)``.

    A volume smaller than the crop has 0 positions, or 1 with ``allow_padding`` (it gets padded).
    Python ints: no overflow however large the volume.

    Example:
        >>> crop_positions((10, 100, 100), (4, 32, 32))
        33327
    """
    if len(shape) != len(spatial_size):
        raise ValueError(f"shape {tuple(shape)} and spatial_size {tuple(spatial_size)} have different axes")
    count = 1
    for n, s in zip(shape, spatial_size, strict=True):
        count *= max(int(n) - int(s) + 1, 1 if allow_padding else 0)
    return count


class RandVolumePicker(Randomizable):
    """Draws a volume index with probability proportional to its number of crop positions.

    Args:
        shapes: spatial shape of every volume.
        spatial_size: the crop size (e.g. ``EMAugmentor.sample_size``).
        allow_padding: volumes smaller than the crop count as one position (they will be padded);
            otherwise such a volume is an error naming its index and shape.

    Example:
        >>> picker = RandVolumePicker([(10, 100, 100), (10, 50, 100)], (4, 32, 32)).set_random_state(0)
        >>> picker.probabilities.round(3).tolist()
        [0.784, 0.216]
    """

    def __init__(
        self, shapes: Sequence[Sequence[int]], spatial_size: Sequence[int], allow_padding: bool = False
    ):
        if len(shapes) == 0:
            raise ValueError("RandVolumePicker needs at least one volume shape")
        self.spatial_size = tuple(int(s) for s in spatial_size)
        counts = [crop_positions(shape, self.spatial_size, allow_padding) for shape in shapes]
        small = {i: tuple(shape) for i, (shape, c) in enumerate(zip(shapes, counts, strict=True)) if c == 0}
        if small:
            raise ValueError(
                f"volumes {small} (index: spatial shape) are smaller than spatial_size {self.spatial_size}; "
                "pad them (allow_padding=True with pad_mode='reflect' in the crop) or drop them"
            )
        self.counts = counts
        total = sum(counts)
        self.probabilities = np.asarray([c / total for c in counts], dtype=np.float64)
        self._cumulative = np.cumsum(self.probabilities)

    def randomize(self, data: Any = None) -> int:
        u = self.R.random_sample()
        return int(min(np.searchsorted(self._cumulative, u, side="right"), len(self.counts) - 1))

    def __call__(self) -> int:
        return self.randomize()


def _ddp_rank() -> int:
    """This process's rank in torch.distributed, 0 when it is not initialised."""
    return resolve_rank_world(env=False)[0]


def _check_pair(i: int, volume: Mapping) -> None:
    """The arrays of one volume (image, label, mask) share their spatial shape and, when they carry
    one (MONAI ``MetaTensor``), their affine (voxel size and offset); else a ValueError names both keys."""
    arrays = [(k, v) for k, v in volume.items() if hasattr(v, "shape") and len(v.shape) > 1]
    if not arrays:
        return
    k0, a0 = arrays[0]
    for k, a in arrays[1:]:
        if tuple(a.shape[1:]) != tuple(a0.shape[1:]):
            raise ValueError(
                f"volume {i}: {k!r} has spatial shape {tuple(a.shape[1:])} but {k0!r} has {tuple(a0.shape[1:])}"
            )
        m0, m = getattr(a0, "affine", None), getattr(a, "affine", None)
        if m0 is not None and m is not None and not np.allclose(np.asarray(m0), np.asarray(m)):
            raise ValueError(
                f"volume {i}: {k!r} has affine (voxel size, offset) {np.asarray(m).tolist()} but {k0!r} has "
                f"{np.asarray(m0).tolist()}: the pair does not cover the same voxels"
            )


class MultiVolumeDataset(Randomizable, _TorchDataset):
    """Training samples from several volumes, each drawn by :class:`RandVolumePicker`.

    The volumes are held in memory (loaded once with ``load`` when given), so a crop transform
    such as ``RandRejectionCropd`` sees the same arrays on every call and reuses its integral
    volumes. ``index`` is ignored: every item is a fresh random sample; an epoch has
    ``samples_per_epoch`` items. The arrays of one volume must share their spatial shape (and their
    affine, for MetaTensors). ``set_random_state`` (called per worker by MONAI's ``DataLoader``)
    seeds the picker and, from it, ``transform``.

    Args:
        data: one dict per volume (arrays ``(C, Z, Y, X)``, or whatever ``load`` turns into them).
        transform: applied to the picked volume's dict; typically
            :func:`~monai_em.transforms.train_transform` (rejection crop, augmentor, ...). It may return a
            list (``num_samples`` > 1).
        spatial_size: the crop size used for the volume weights (``train_transform(...).crop.spatial_size``).
        samples_per_epoch: ``len`` of the dataset.
        shape_key: key whose spatial shape weighs a volume (default: the first array in each dict).
        load: optional transform applied once per volume at construction (e.g. ``LoadImaged``).
        allow_padding: see :class:`RandVolumePicker`.
        index_key: output key recording which volume a sample came from (``None`` to skip).
    """

    def __init__(
        self,
        data: Sequence[Mapping[Hashable, Any]],
        transform: Callable | None,
        spatial_size: Sequence[int],
        samples_per_epoch: int = 1000,
        shape_key: Hashable | None = None,
        load: Callable | None = None,
        allow_padding: bool = False,
        index_key: str | None = "volume_index",
    ):
        if int(samples_per_epoch) < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.volumes = [dict(apply_transform(load, d) if load is not None else d) for d in data]
        self.transform = transform
        self.samples_per_epoch = int(samples_per_epoch)
        self.index_key = index_key
        shapes = [self._shape(i, v, shape_key) for i, v in enumerate(self.volumes)]
        self.picker = RandVolumePicker(shapes, spatial_size, allow_padding)
        self.picker.set_random_state(state=self.R)

    @staticmethod
    def _shape(i: int, volume: Mapping, key: Hashable | None) -> tuple[int, ...]:
        _check_pair(i, volume)
        if key is None:
            key = next((k for k, v in volume.items() if hasattr(v, "shape") and len(v.shape) > 1), None)
        if key is None or key not in volume:
            raise ValueError(f"volume {i}: no array under key {key!r} to weigh it (keys: {list(volume)})")
        return tuple(int(s) for s in volume[key].shape[1:])

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        rank = _ddp_rank()
        if seed is not None and rank > 0:  # every DDP rank gets the same seed from set_determinism: split it
            seed = int(np.random.SeedSequence([int(seed), rank]).generate_state(1)[0])
        super().set_random_state(seed, state)
        self.picker.set_random_state(state=self.R)
        if self.transform is not None:
            set_rnd(self.transform, int(self.R.randint(MAX_SEED)))
        return self

    def randomize(self, data: Any = None) -> int:
        return self.picker()

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int):
        i = self.randomize()
        out = (
            apply_transform(self.transform, dict(self.volumes[i]))
            if self.transform is not None
            else dict(self.volumes[i])
        )
        if self.index_key is not None:
            for item in out if isinstance(out, list) else [out]:
                item[self.index_key] = i
        return out
