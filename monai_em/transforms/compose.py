"""EMAugmentor: plans the sample size from the transforms' margins, runs them, centre-crops, smooths labels.

PyTC's default augmentation list lives in :mod:`~monai_em.transforms.presets` (``default_em_transforms`` is
re-exported here for old imports).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, InvertibleTransform, MapTransform, OneOf, RandomOrder, SomeOf
from scipy import ndimage

from ..data.chunks import centre_start
from ..roles import default_roles, keys_with_role, resolve_roles
from .base import (
    Margin,
    check_axis_order,
    check_int,
    track_call,
    translation,
    undo_crop,
)
from .fusion import plan, run_plan, run_plan_batch
from .presets import default_em_transforms
from .tensors import as_torch, like_input, signed_view

__all__ = ["EMAugmentor", "default_em_transforms", "flat_length", "plan_sample_size", "smooth_label_edges"]


def _grow(margin: Margin, size: tuple[int, ...]) -> tuple[int, ...]:
    """``margin`` applied to a 3D (z, y, x) or 2D (y, x) size."""
    if len(size) == 2:
        margin = Margin(margin.ratio[1:], margin.add[1:])  # type: ignore[arg-type]
    return margin.grow(size)


def plan_sample_size(transforms: Sequence[Any], input_size: Sequence[int]) -> tuple[int, ...]:
    """The sample size ``transforms`` (run in list order) need to produce ``input_size`` without empty borders.

    Walks the list from the last transform to the first: ``S = ceil(S * ratio) + 2 * add`` with each
    transform's ``margin()``. MONAI ``Compose``/``RandomOrder``/``SomeOf`` count all their members,
    ``OneOf`` the largest branch; transforms without ``margin()`` need no context.
    """
    size = tuple(int(s) for s in input_size)
    for t in reversed(list(transforms)):
        if isinstance(t, OneOf):
            grown = [plan_sample_size([b], size) for b in t.transforms]
            size = tuple(max(g[i] for g in grown) for i in range(len(size))) if grown else size
        elif isinstance(t, (Compose, RandomOrder, SomeOf)):
            size = plan_sample_size(t.transforms, size)
        elif callable(getattr(t, "margin", None)):
            size = _grow(t.margin(), size)
    return size


def flat_length(compose: Compose) -> int:
    """``len(compose)`` as MONAI counts it (nested plain ``Compose`` with the same ``map_items`` inlined),
    without MONAI's ``flatten()``: the new ``Compose`` it builds reseeds every member from OS entropy,
    so ``len()`` or ``bool()`` of a seeded pipeline would change its draws."""
    return sum(
        flat_length(t) if type(t) is Compose and t.map_items == compose.map_items else 1
        for t in compose.transforms
    )


def smooth_label_edges(label, sigma: float = 2.0, threshold: float = 0.5, iterations: int = 2):
    """PyTC's label smoothing: per section and per id (ascending), blur the id's mask with a Gaussian
    (``sigma``, border 'nearest') and threshold, ``iterations`` times; the id's old voxels are cleared
    and the smoothed mask written (later ids win). Each id is processed inside its bounding box
    grown by the filter reach, so the cost scales with the objects' area, not with sections x ids
    (about 10-40 ms for an 8x256x256 label with ~50 ids per section, against ~0.9 s in PyTC).

    Args:
        label: ``(C, Z, Y, X)`` or ``(C, Y, X)`` integer labels (numpy or torch, any device).
    """
    t = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    out = t.copy()
    sections = out.reshape(-1, *out.shape[-2:])
    reach = iterations * int(4.0 * sigma + 0.5) + 1
    for sec in sections:
        ids, inverse = np.unique(sec, return_inverse=True)
        inverse = inverse.reshape(sec.shape)
        boxes = ndimage.find_objects(inverse + 1)
        for n, idx in enumerate(ids):
            if idx == 0 or boxes[n] is None:
                continue
            box = tuple(
                slice(max(s.start - reach, 0), min(s.stop + reach, size))
                for s, size in zip(boxes[n], sec.shape, strict=True)
            )
            patch = sec[box]
            binary = patch == idx
            for _ in range(iterations):
                binary = (
                    ndimage.gaussian_filter(binary.astype(np.float32), sigma, mode="nearest", truncate=4.0)
                    > threshold
                )
            patch[patch == idx] = 0
            patch[binary] = idx
    result = torch.from_numpy(out)
    if isinstance(label, torch.Tensor):
        result = result.to(label.device)
    return like_input(result, label)


class _CentreCrop(InvertibleTransform, MapTransform):
    """Crop ``keys`` (or every array with the right number of axes) to ``size``, margin ``(S - size) // 2``.

    A MetaTensor's affine moves to the crop's origin as with MONAI's ``SpatialCrop``, and the crop is
    recorded; ``inverse`` pads the crop back into zeros of the original shape.
    """

    def __init__(self, size: Sequence[int], keys: Sequence[Hashable] | None = None):
        self.size = tuple(int(s) for s in size)
        self.keys = tuple(keys) if keys is not None else None
        self.allow_missing_keys = True

    def window(self, key: Hashable, shape: Sequence[int]) -> tuple[int, ...]:
        spatial = tuple(shape[-len(self.size) :])
        if any(s < i for s, i in zip(spatial, self.size, strict=True)):
            raise ValueError(
                f"key {key!r}: spatial shape {spatial} is smaller than input_size {self.size}; "
                "crop at least EMAugmentor.sample_size before augmenting"
            )
        return centre_start(spatial, self.size)

    def crop_keys(self, d: Mapping) -> list[Hashable]:
        if self.keys is not None:
            return [k for k in self.keys if k in d]
        n = len(self.size) + 1
        return [k for k, v in d.items() if isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim == n]

    def record(self, out, start: Sequence[int], orig_size: Sequence[int]):
        """``out`` (cropped at ``start`` from a ``orig_size`` volume) with the crop in its metadata."""
        return track_call(self, out, orig_size, translation(start), {"start": [int(s) for s in start]})

    def __call__(self, data: Mapping, done: Sequence[Hashable] = ()) -> dict:
        """Crop every crop key but ``done`` (keys a fused run already cropped and recorded)."""
        d = dict(data)
        for key in self.crop_keys(d):
            if key in done:
                continue
            start = self.window(key, d[key].shape)
            window = (slice(None), *(slice(s, s + i) for s, i in zip(start, self.size, strict=True)))
            out = like_input(as_torch(d[key])[window], d[key])  # a tensor for numpy input too, dtype kept
            d[key] = self.record(out, start, d[key].shape[1:])
        return d

    def inverse(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.crop_keys(d):
            d[key] = undo_crop(self, d[key])
        return d


class _SmoothLabels(MapTransform):
    def __init__(self, keys: Sequence[Hashable]):
        MapTransform.__init__(self, keys, allow_missing_keys=True)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = smooth_label_edges(d[key])
        return d


class EMAugmentor(Compose):
    """PyTC's augmentor (``Compose(input_size=...)``) as a MONAI ``Compose``: plan, augment, centre-crop.

    ``sample_size`` is what the dataset must crop so that every transform has the context it needs
    (:func:`plan_sample_size`). A call runs ``transforms`` in list order, centre-crops every key to
    ``input_size`` (margin ``(size - input_size) // 2``) and optionally smooths label edges. With
    ``fuse=True`` the members run as planned by :mod:`~monai_em.transforms.fusion` from what each
    declares (``contribution()``): patches (cut noise, cut blur, motion blur), section maps
    (mis-alignment, missing sections), window operations (missing parts, grayscale) and point maps
    (elastic, flip/transpose, rescale, rotate) before the crop become ONE pass that reads each key
    once, inside the final crop: same draws, same geometry, far less work (images are interpolated once instead of once per
    transform; a shrinking rescale in the pass is plain bilinear instead of anti-aliased); other
    members run through MONAI's ``apply_transform``. ``set_random_state`` reaches every inner transform
    (MONAI ``Compose`` reseeds each member), so DataLoader workers draw differently.

    A call keeps its draws in the call and touches no process-global state, so one augmentor can
    serve thread workers (``ThreadDataLoader(use_thread_workers=True)``); its RNG is shared, so which
    sample gets which draws depends on thread timing (seeded runs are reproducible with one thread
    or process workers). MetaTensor keys leave with the same affine and ``applied_operations`` as
    running the transforms one by one; ``inverse`` (MONAI's ``Compose.inverse``, ``Invertd``)
    undoes flips, transposes, quarter turns and the centre crop, and raises ``NotImplementedError``
    at a transform that interpolates.

    Args:
        transforms: transforms to run, in order (monai_em and/or MONAI dictionary transforms).
        input_size: output spatial size ``(Z, Y, X)`` (or ``(Y, X)`` for 2D).
        smooth_labels: apply :func:`smooth_label_edges` to ``label_keys`` after the crop (default False).
        label_keys: keys smoothed by ``smooth_labels`` (default ``("label",)``).
        crop_keys: keys to crop; default every array with ``len(input_size) + 1`` axes.
        fuse: run the members as one planned pass (default True); False runs them one by one.

    Example:
        >>> aug = EMAugmentor.from_targets((8, 64, 64), {"image": "img", "label": "mask"})
        >>> aug.sample_size
        (10, 130, 130)
    """

    def __init__(
        self,
        transforms: Sequence[Any],
        input_size: Sequence[int],
        smooth_labels: bool = False,
        label_keys: Sequence[Hashable] = ("label",),
        crop_keys: Sequence[Hashable] | None = None,
        fuse: bool = True,
        **compose_kwargs: Any,
    ):
        input_size = tuple(check_int(f"input_size[{i}]", s) for i, s in enumerate(input_size))
        if len(input_size) not in (2, 3) or min(input_size) < 1:
            raise ValueError(f"input_size must be 2 or 3 positive ints, got {input_size}")
        self.input_size = input_size
        self.augmentations = list(transforms)
        self.smooth_labels, self.label_keys, self.fuse = bool(smooth_labels), tuple(label_keys), bool(fuse)
        self.crop = _CentreCrop(input_size, crop_keys)
        tail: list[Any] = [self.crop] + ([_SmoothLabels(self.label_keys)] if self.smooth_labels else [])
        super().__init__([*self.augmentations, *tail], **compose_kwargs)

    def __len__(self) -> int:
        return flat_length(self)  # not MONAI's flatten(), which reseeds the members

    @property
    def sample_size(self) -> tuple[int, ...]:
        """Spatial size to crop before augmenting (planned from the transforms' margins)."""
        return plan_sample_size(self.augmentations, self.input_size)

    @classmethod
    def from_targets(
        cls,
        input_size: Sequence[int],
        targets: Mapping[str, str] | None = None,
        smooth_labels: bool = False,
        fuse: bool = True,
        **builder_kwargs: Any,
    ) -> EMAugmentor:
        """PyTC's default augmentor for ``targets`` (see :func:`default_em_transforms` for the options).

        ``targets`` maps keys to PyTC target types or roles (:func:`~monai_em.roles.resolve_roles`);
        the keys with the label role are the ones ``smooth_labels`` smooths. An ``input_size`` of one
        section (``(Y, X)`` or ``(1, Y, X)``) gets PyTC's 2D list (``do_2d``) unless ``do_2d`` is given.

        Example:
            >>> aug = EMAugmentor.from_targets((8, 256, 256), {"image": "img", "label": "mask", "valid_mask": "mask"})
            >>> aug.sample_size
            (10, 370, 370)
        """
        roles = resolve_roles(targets or default_roles())
        # one section in (2D, or Z = 1): PyTC's 2D list, since missing sections and mis-alignment need several
        do_2d = builder_kwargs.pop("do_2d", len(input_size) == 2 or int(input_size[0]) == 1)
        transforms = default_em_transforms(roles, do_2d=do_2d, **builder_kwargs)
        labels = keys_with_role(roles, "label")
        return cls(transforms, input_size, smooth_labels=smooth_labels, label_keys=labels, fuse=fuse)

    def check_sample(self, d: Mapping) -> None:
        """ValueError naming the key when an array is smaller than :attr:`sample_size` (or has a zero axis).

        The augmentations' context is planned for ``sample_size``: a smaller sample would get
        borders filled from outside it on some draws and fail on others.
        """
        need = self.sample_size
        if need == self.input_size:  # no context needed: the centre crop's own check names the key
            return
        for key in self.crop.crop_keys(d):
            spatial = tuple(int(n) for n in d[key].shape[-len(need) :])
            if any(s < n for s, n in zip(spatial, need, strict=True)):
                raise ValueError(
                    f"EMAugmentor: key {key!r} has spatial shape {spatial}, smaller than sample_size {need} that "
                    f"its augmentations need for input_size {self.input_size}; crop "
                    "RandRejectionCropd(spatial_size=augmentor.sample_size) (pad_mode pads small volumes) first"
                )

    def __call__(self, input_, start=0, end=None, threading=False, lazy=None):
        if isinstance(input_, Mapping) and start == 0:
            self.check_sample(input_)
        if not self.fuse or not isinstance(input_, Mapping) or start != 0 or end is not None or lazy:
            return super().__call__(input_, start=start, end=end, threading=threading, lazy=lazy)
        d = dict(input_)
        for key in self.crop.crop_keys(d):
            check_axis_order(d[key], key)
        return run_plan(plan(self.transforms, self.crop), d, self.crop, self)

    def augment_batch(self, batch: Mapping[Hashable, Any]) -> dict:
        """A collated batch augmented where it lies (e.g. on the GPU), each sample with its own draws.

        ``batch`` maps keys to ``(B, C, *sample_size)`` tensors (a DataLoader batch of crops moved to
        the device, so the workers only crop); other entries (metadata lists, ...) pass through.
        Sample ``b`` gets the draws of the ``b``-th per-sample call from the same RNG state, so a
        seeded run matches calling the augmentor on each sample in turn (bit for bit on one device).
        Returns those keys as plain ``(B, C, *input_size)`` tensors on the
        batch's device, dtypes kept (a MetaTensor batch's metadata is not carried: call per sample to
        track it). With ``fuse=True`` every member draws per sample and the fused pass reads the
        whole batch (:func:`~monai_em.transforms.fusion.run_plan_batch`: on a GPU one gather per label
        or mask key and one ``grid_sample`` per image key; on the CPU each sample in turn, into the
        batch output); ``fuse=False`` calls the augmentor per sample.

        Raises:
            ValueError: naming the keys when none is a batch of the right rank or their batch sizes differ.
        """
        rank = len(self.input_size) + 2
        arrays = {
            k: v for k, v in batch.items() if isinstance(v, torch.Tensor | np.ndarray) and v.ndim == rank
        }
        sizes = {k: int(v.shape[0]) for k, v in arrays.items()}
        if not arrays or len(set(sizes.values())) != 1:
            raise ValueError(
                f"augment_batch needs keys holding (B, C, {', '.join('ZYX'[-len(self.input_size) :])}) arrays "
                f"of one batch size B; got batch sizes {sizes} among keys {list(batch)}"
            )
        out = dict(batch)
        if self.fuse:
            tensors = {k: as_torch(v) for k, v in arrays.items()}
            self.check_sample({k: v[0] for k, v in tensors.items()})
            outs, stacked = run_plan_batch(plan(self.transforms, self.crop), tensors, self.crop, self)
        else:
            outs = [self({k: v[b] for k, v in arrays.items()}) for b in range(next(iter(sizes.values())))]
            stacked = {}
        for key in arrays:
            if key in stacked:
                out[key] = stacked[key]
                continue
            parts = [signed_view(as_torch(o[key])) for o in outs]
            out[key] = torch.stack(parts).view(as_torch(outs[0][key]).dtype)
        return out
