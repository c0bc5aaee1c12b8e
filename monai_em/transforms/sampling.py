"""Rejection-sampling crops for sparse foreground and partially annotated volumes (PyTC REJECT_SAMPLING).

The decision is taken from geometry before anything is augmented: foreground and valid-voxel
counts of the region that survives the augmentor's final centre crop come in O(1) per candidate
from integral volumes (:mod:`monai_em.transforms.integral`), computed once per array and cached.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform, Randomizable, allow_missing_keys_mode
from monai.transforms.traits import MultiSampleTrait
from monai.utils import MAX_SEED

from monai_em.data.chunks import centre_start
from monai_em.data.volume import read_reflected

from .base import (
    check_axis_order,
    check_int,
    check_unit,
    shift_affine,
    track_call,
    translation,
    undo_crop,
)
from .integral import IntegralCache, box_count, integral_volume, nonzero_mask
from .tensors import as_output, like_input

__all__ = ["CropDraw", "Measure", "RandRejectionCropd", "RejectionSampler"]

PAD_MODES = (None, "reflect")


@dataclass(frozen=True)
class CropDraw:
    """Outcome of one rejection loop.

    Attributes:
        start: int64 crop start per spatial axis, in the coordinates of the unpadded volume
            (negative or past the end only where the volume was padded).
        trials: candidates drawn, the returned one included (1 = first draw accepted).
        accepted: False when ``max_trials`` ran out and the last draw was returned.
    """

    start: np.ndarray
    trials: int
    accepted: bool


class Measure(NamedTuple):  # a tuple: built once per candidate, so cheap to make
    """What the rejection tests see of one candidate crop (a measure function's answer).

    Attributes:
        foreground: non-zero voxels of the tested region (read only when ``size_thres > 0``).
        valid_fraction: valid share of the tested region, ``None`` without a valid mask.
        unique_ids: counts the region's unique ids (background included); called only when the
            diversity test is on and the earlier tests passed.
        output: what the caller keeps of the accepted candidate (the exact path: the augmented sample).
    """

    foreground: int
    valid_fraction: float | None
    unique_ids: Callable[[], int]
    output: Any = None


def _as_size(value, name: str, ndim: int | None = None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if np.isscalar(value):
        size = (check_int(name, value),) * (ndim or 3)
    else:
        size = tuple(check_int(f"{name}[{i}]", v) for i, v in enumerate(value))
    if not size or any(s < 1 for s in size):
        raise ValueError(f"{name} must be positive integers, got {value}")
    if ndim is not None and len(size) != ndim:
        raise ValueError(f"{name} has {len(size)} axes, expected {ndim}: {value}")
    return size


class RejectionSampler(Randomizable):
    """Draws crop starts until the crop's tested region passes PyTC's foreground and valid-mask tests.

    PyTC (``DATASET.REJECT_SAMPLING``, ``VALID_MASK_NAME``) draws a crop uniformly, augments it, and
    rejects it when its label is too sparse or its valid mask too thin. Here a candidate start is
    drawn uniformly in ``[0, L - s]`` per axis (int64), and the centred ``test_size`` box inside the
    ``spatial_size`` crop (the region the augmentor's final centre crop keeps) is tested from
    summed-area tables of ``label != 0`` and ``valid != 0``, built once per array and cached:

    * valid mask: rejected (always) unless the valid fraction is strictly above ``valid_ratio``;
    * foreground: if ``size_thres > 0`` and fewer than ``size_thres`` voxels are non-zero,
      rejected with probability ``reject_p``;
    * diversity: if ``diversity > 0`` and the region has fewer unique ids (background included),
      rejected with probability ``reject_p``. Unique ids cannot come from a table: they are counted
      on the candidate's region directly, only when enabled.

    After ``max_trials`` draws without acceptance the last draw is returned with a warning naming
    the key, the thresholds and the best values seen. All draws come from ``self.R``.

    Args:
        spatial_size: crop size per spatial axis (e.g. the augmentor's ``sample_size``).
        test_size: size of the centred region that is tested (e.g. the augmentor's ``input_size``);
            default the whole crop.
        size_thres: minimum foreground voxel count (PyTC ``SIZE_THRES``); -1 disables.
        reject_p: probability of rejecting a crop that fails the foreground or diversity test (``P``).
        diversity: minimum number of unique label ids in the tested region; -1 disables.
        valid_ratio: the valid fraction must be strictly above this (PyTC ``VALID_RATIO``).
        max_trials: draws per sample before giving up (PyTC's 50 by default).
        pad_mode: ``"reflect"`` mirrors volumes smaller than ``spatial_size`` (numpy ``reflect``,
            split evenly on both sides); ``None`` (default) raises ``ValueError`` for them.
        cache_size: how many arrays' integral volumes to keep (0 disables the cache).

    Shapes: ``label`` and ``valid`` are ``(C, *spatial)`` (a voxel counts when any channel is
    non-zero); starts are in the unpadded volume's coordinates.

    Example:
        >>> label = np.zeros((1, 8, 64, 64), np.int32); label[0, 4, 40, 40] = 1
        >>> s = RejectionSampler((4, 16, 16), size_thres=1, reject_p=1.0, max_trials=1000)
        >>> draw = s.set_random_state(0).sample(label)
        >>> bool(np.all((draw.start <= [4, 40, 40]) & ([4, 40, 40] < draw.start + [4, 16, 16])))
        True
    """

    def __init__(
        self,
        spatial_size: Sequence[int] | int,
        test_size: Sequence[int] | int | None = None,
        size_thres: int = -1,
        reject_p: float = 0.95,
        diversity: int = -1,
        valid_ratio: float = 0.5,
        max_trials: int = 50,
        pad_mode: str | None = None,
        cache_size: int = 8,
    ):
        size = _as_size(spatial_size, "spatial_size")
        self.spatial_size = size
        self.test_size = _as_size(test_size, "test_size", len(size)) or size
        if any(t > s for t, s in zip(self.test_size, size, strict=True)):
            raise ValueError(f"test_size {self.test_size} must fit inside spatial_size {size}")
        max_trials = check_int("max_trials", max_trials, 1)
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.size_thres = check_int("size_thres", size_thres)
        self.reject_p = check_unit("reject_p", reject_p)
        self.diversity = check_int("diversity", diversity)
        self.valid_ratio = check_unit("valid_ratio", valid_ratio)
        self.max_trials = max_trials
        self.pad_mode = pad_mode
        self.cache = IntegralCache(cache_size)
        self._cache_lock = threading.Lock()  # thread workers share the cache
        self.test_offset = np.asarray(centre_start(size, self.test_size), dtype=np.int64)

    def __getstate__(self):  # locks do not pickle (process DataLoader workers, deepcopy)
        return {k: v for k, v in self.__dict__.items() if k != "_cache_lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()

    def randomize(self, data: Any = None) -> None:  # draws happen inside `sample`
        return None

    # ---- geometry -------------------------------------------------------------------------------
    def padded_shape(self, shape: Sequence[int]) -> list[int]:
        """A volume's spatial shape once mirror-padded to at least ``spatial_size`` per axis."""
        return [max(int(n), s) for n, s in zip(shape, self.spatial_size, strict=True)]

    def padding(self, shape: Sequence[int], name: str = "label") -> np.ndarray:
        """Voxels mirrored before each axis (0 where the volume is large enough)."""
        if len(shape) != len(self.spatial_size):
            raise ValueError(
                f"'{name}' has spatial shape {tuple(shape)}, expected {len(self.spatial_size)} axes"
            )
        padded = self.padded_shape(shape)
        if tuple(padded) != tuple(shape) and self.pad_mode is None:
            raise ValueError(
                f"'{name}' of spatial shape {tuple(shape)} is smaller than spatial_size {self.spatial_size}; "
                "pass pad_mode='reflect' to mirror-pad it"
            )
        return np.asarray(centre_start(padded, shape), dtype=np.int64)  # the volume centred in the crop

    def table(self, array, name: str = "label") -> np.ndarray:
        """The (cached) integral volume of ``array != 0``, padded as :meth:`padding` says."""
        shape = tuple(int(s) for s in array.shape[1:])
        pad = self.padding(shape, name)

        def build():
            mask = nonzero_mask(array)
            box = [(-int(p), n - int(p)) for p, n in zip(pad, self.padded_shape(shape), strict=True)]
            return integral_volume(read_reflected(lambda b: mask[_slices(b)], box, shape))

        with self._cache_lock:
            return self.cache.get(array, build, extra=(tuple(pad.tolist()), self.spatial_size))

    # ---- decision -------------------------------------------------------------------------------
    def decide(self, fg: int, valid_fraction: float | None, n_ids: Callable[[], int]) -> bool:
        """Accept or reject one candidate (draws from ``self.R`` only when a test fails)."""
        if valid_fraction is not None and not valid_fraction > self.valid_ratio:
            return False
        if 0 < self.size_thres and fg < self.size_thres and self.R.rand() < self.reject_p:
            return False
        if 0 < self.diversity and n_ids() < self.diversity and self.R.rand() < self.reject_p:
            return False
        return True

    def draw_start(self, padded_shape: Sequence[int]) -> np.ndarray:
        """A uniform start in ``[0, L - s]`` per axis of the (padded) volume, int64."""
        return np.asarray(
            [
                self.R.randint(0, n - s + 1, dtype=np.int64)
                for n, s in zip(padded_shape, self.spatial_size, strict=True)
            ],
            dtype=np.int64,
        )

    def give_up(self, name: str, best: dict) -> None:
        seen = ", ".join(
            f"best {k} seen {v:.4g}" if isinstance(v, float) else f"best {k} seen {v}"
            for k, v in best.items()
        )
        warnings.warn(
            f"rejection sampling of '{name}': no acceptable crop in max_trials={self.max_trials} draws "
            f"(size_thres={self.size_thres}, reject_p={self.reject_p}, valid_ratio={self.valid_ratio}, "
            f"diversity={self.diversity}); {seen}; returning the last draw",
            RuntimeWarning,
            stacklevel=4,  # the caller of sample / the dict transform
        )

    def search(
        self, shape: Sequence[int], measure: Callable[[np.ndarray], Measure], name: str = "label"
    ) -> tuple[CropDraw, Measure]:
        """The rejection loop: draw a start, ``measure(start)`` it, accept or reject, up to ``max_trials``.

        ``shape`` is the volume's spatial shape; ``measure`` gets each candidate's int64 start in the
        unpadded volume's coordinates. Returns the draw and the measure of the returned candidate
        (the last one, with a warning naming ``name``, when none was accepted).
        """
        pad = self.padding(shape, name)
        padded = self.padded_shape(shape)
        best: dict = {}
        for trial in range(1, self.max_trials + 1):
            start = self.draw_start(padded) - pad
            m = measure(start)
            if self.decide(m.foreground, m.valid_fraction, m.unique_ids):
                return CropDraw(start, trial, True), m
            _update_best(best, m.foreground if self.size_thres > 0 else None, m.valid_fraction)
        self.give_up(name, best)
        return CropDraw(start, self.max_trials, False), m

    def sample(
        self, label, valid=None, label_name: str = "label", valid_name: str = "valid_mask"
    ) -> CropDraw:
        """Draw until accepted (or ``max_trials``); ``label``/``valid`` are ``(C, *spatial)``.

        The tested region is measured before augmentation, in O(1) from the integral tables.
        """
        shape = tuple(int(s) for s in label.shape[1:])
        if valid is not None and tuple(valid.shape[1:]) != shape:
            raise ValueError(
                f"'{valid_name}' spatial shape {tuple(valid.shape[1:])} differs from '{label_name}' spatial shape {shape}"
            )
        pad = self.padding(shape, label_name)
        fg_table = self.table(label, label_name) if self.size_thres > 0 else None
        valid_table = self.table(valid, valid_name) if valid is not None else None
        test_volume = float(np.prod(self.test_size))
        at_table = self.test_offset + pad  # the tested region's start in the (padded) tables

        def measure(start: np.ndarray) -> Measure:
            at = start + at_table
            fg = box_count(fg_table, at, self.test_size) if fg_table is not None else 0
            vf = None if valid_table is None else box_count(valid_table, at, self.test_size) / test_volume
            return Measure(fg, vf, lambda: _n_unique(crop_region(label, at - pad, self.test_size)))

        return self.search(shape, measure, label_name)[0]


def _update_best(best: dict, fg, vf) -> None:
    """Keep the largest foreground count and valid fraction seen (None: not tested) for the warning."""
    for name, value in (("foreground count", fg), ("valid fraction", vf)):
        if value is not None:
            best[name] = max(best.get(name, value), value)


def crop_region(img, start: np.ndarray, size: Sequence[int]):
    """``img[..., start:start + size]`` per spatial axis, mirrored (numpy ``reflect``) outside the volume.

    A MetaTensor keeps its metadata, with the affine moved to the crop's origin (as MONAI's
    ``SpatialCrop`` moves it); nothing is recorded in ``applied_operations`` (the caller records).
    """
    shape = tuple(int(s) for s in img.shape[1:])
    box = [(int(a), int(a) + int(s)) for a, s in zip(start, size, strict=True)]
    src = img.as_tensor() if isinstance(img, MetaTensor) else img
    out = read_reflected(lambda b: src[(slice(None), *_slices(b))], box, shape)
    if isinstance(img, MetaTensor):
        return shift_affine(like_input(out, img), translation(start))
    return as_output(out)


def _slices(box) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in box)


def _n_unique(region) -> int:
    t = region.as_tensor() if isinstance(region, MetaTensor) else torch.as_tensor(region)
    return int(torch.unique(t).numel())


def _tested(img, test_size: Sequence[int]):
    """The centred ``test_size`` region of an augmented output (the whole output when not larger)."""
    shape = tuple(int(s) for s in img.shape[1:])
    if all(n <= t for n, t in zip(shape, test_size, strict=True)):
        return img
    size = [min(n, t) for n, t in zip(shape, test_size, strict=True)]
    return crop_region(img, np.asarray(centre_start(shape, size), dtype=np.int64), size)


class RandRejectionCropd(Randomizable, InvertibleTransform, MapTransform, MultiSampleTrait):
    """Dictionary crop with rejection sampling: ``num_samples`` crops of ``keys``, as a list of dicts.

    See :class:`RejectionSampler` for the decision and every threshold. The decision reads
    ``label_key`` (and ``valid_key``) before augmentation; ``keys`` are cropped at the accepted
    start. Each output records its crop start (int64, unpadded volume coordinates) under
    ``start_key`` and the number of draws under ``trials_key``; cropped MetaTensors carry both in
    their ``meta`` too, their affine moves to the crop's origin (as with MONAI's ``SpatialCrop``) and
    the crop joins ``applied_operations``: ``inverse`` (``Invertd``, ``Compose.inverse``) undoes
    ``augment`` where it can, then puts each crop back into zeros of the original shape. One
    instance may serve thread workers (the integral-volume cache is locked; the RNG is shared).

    Args:
        keys: keys to crop (image, label, valid mask...), all sharing one spatial shape.
        label_key: the label whose non-zero voxels are the foreground.
        spatial_size: crop size; default ``augment.sample_size`` when ``augment`` is given.
        valid_key: optional valid mask (non-zero = annotated).
        test_size: the tested centred region; default ``augment.input_size`` if given, else the crop.
        size_thres, reject_p, diversity, valid_ratio, max_trials, pad_mode, cache_size: see
            :class:`RejectionSampler`.
        num_samples: crops per call (each with its own rejection loop).
        augment: optional callable on a cropped dict (e.g. an ``EMAugmentor``) applied once per
            returned sample; its RNG is seeded from this transform's.
        exact: PyTC's semantics: draw, ``augment``, then test the augmented label/valid mask
            (centred ``test_size`` region), paying one augmentation per draw. Requires ``augment``.
        start_key, trials_key: output keys for the metadata (``None`` skips one).
        allow_missing_keys: skip absent ``keys`` (``label_key`` is always required).
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str,
        spatial_size: Sequence[int] | int | None = None,
        valid_key: str | None = None,
        test_size: Sequence[int] | int | None = None,
        size_thres: int = -1,
        reject_p: float = 0.95,
        diversity: int = -1,
        valid_ratio: float = 0.5,
        num_samples: int = 1,
        max_trials: int = 50,
        pad_mode: str | None = None,
        augment: Callable | None = None,
        exact: bool = False,
        start_key: str | None = "crop_start",
        trials_key: str | None = "rejection_trials",
        cache_size: int = 8,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if spatial_size is None:
            spatial_size = getattr(augment, "sample_size", None)
            if spatial_size is None:
                raise ValueError("spatial_size is required (or an augment with a .sample_size)")
        if test_size is None:
            test_size = getattr(augment, "input_size", None)
        if exact and augment is None:
            raise ValueError("exact=True re-tests after augmentation and needs an `augment` callable")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.sampler = RejectionSampler(
            spatial_size,
            test_size,
            size_thres,
            reject_p,
            diversity,
            valid_ratio,
            max_trials,
            pad_mode,
            cache_size,
        )
        self.label_key = label_key
        self.valid_key = valid_key
        self.num_samples = int(num_samples)
        self.augment = augment
        self.exact = bool(exact)
        self.start_key = start_key
        self.trials_key = trials_key
        self.sampler.set_random_state(state=self.R)

    @property
    def spatial_size(self) -> tuple[int, ...]:
        return self.sampler.spatial_size

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.sampler.set_random_state(state=self.R)
        if hasattr(self.augment, "set_random_state"):
            self.augment.set_random_state(seed=int(self.R.randint(MAX_SEED)))
        return self

    def randomize(self, data: Any = None) -> None:
        return None

    def _check(self, d: Mapping[Hashable, Any]) -> None:
        for key in (self.label_key, self.valid_key):
            if key is not None and key not in d:
                raise ValueError(
                    f"RandRejectionCropd: key '{key}' is not in the data (keys present: {list(d)})"
                )
        names = list(
            dict.fromkeys(
                [*self.key_iterator(d), self.label_key, *([self.valid_key] if self.valid_key else [])]
            )
        )
        for key in names:
            check_axis_order(d[key], key)
        shapes = {k: tuple(int(s) for s in d[k].shape[1:]) for k in names}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"RandRejectionCropd: keys must share one spatial shape, got {shapes}")
        empty = {k: s for k, s in shapes.items() if 0 in s}
        if empty:
            raise ValueError(f"RandRejectionCropd: keys {list(empty)} have a spatial axis of size 0: {empty}")

    def _crop(self, d: Mapping[Hashable, Any], start: np.ndarray, keys: Sequence[Hashable] = ()) -> dict:
        """``keys`` (and the transform's own keys, which are recorded) cropped at ``start``."""
        out = dict(d)
        own = list(self.key_iterator(d))
        for key in dict.fromkeys([*own, *keys]):
            out[key] = crop_region(d[key], start, self.spatial_size)
            if key in own:
                extra = {"start": [int(s) for s in start]}
                out[key] = track_call(self, out[key], d[key].shape[1:], extra=extra)
        return out

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if isinstance(self.augment, InvertibleTransform):
            with allow_missing_keys_mode(self.augment) if self.allow_missing_keys else nullcontext():
                d = self.augment.inverse(d)  # Invertd passes one key and allows the others to be missing
        for key in self.key_iterator(d):
            d[key] = undo_crop(self, d[key])
        return d

    def _record(self, out: dict, start: np.ndarray, trials: int) -> dict:
        for key, value in ((self.start_key, start.copy()), (self.trials_key, int(trials))):
            if key is None:
                continue
            out[key] = value
            for k in self.key_iterator(out):
                if isinstance(out[k], MetaTensor):
                    out[k].meta[key] = value
        return out

    def _sample_exact(self, d: Mapping[Hashable, Any]) -> dict:
        """PyTC's order: each candidate is cropped and augmented, then its augmented label/mask measured."""
        s = self.sampler
        tested = [self.label_key, *([self.valid_key] if self.valid_key else [])]

        def measure(start: np.ndarray) -> Measure:
            out = self.augment(self._crop(d, start, tested))
            label = _tested(out[self.label_key], s.test_size)
            vf = None
            if self.valid_key is not None:
                vmask = nonzero_mask(_tested(out[self.valid_key], s.test_size))
                vf = float(vmask.sum()) / vmask.size
            return Measure(int(nonzero_mask(label).sum()), vf, lambda: _n_unique(label), out)

        shape = tuple(int(n) for n in d[self.label_key].shape[1:])
        draw, m = s.search(shape, measure, self.label_key)
        return self._record(m.output, draw.start, draw.trials)

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        d = dict(data)
        self._check(d)
        results = []
        for _ in range(self.num_samples):
            if self.exact:
                results.append(self._sample_exact(d))
                continue
            valid = d[self.valid_key] if self.valid_key is not None else None
            draw = self.sampler.sample(d[self.label_key], valid, str(self.label_key), str(self.valid_key))
            out = self._crop(d, draw.start)
            if self.augment is not None:
                out = self.augment(out)
            results.append(self._record(out, draw.start, draw.trials))
        return results
