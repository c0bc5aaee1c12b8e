"""Augmentations that mix content: copy-paste of labelled objects (per sample) and mixup (per batch)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from .base import (
    RandEMDictTransform,
    RandEMTransform,
    check_int,
    check_number,
    check_unit,
)
from .resample import rotate_xy
from .tensors import as_output, as_torch, like_input, max_value, unsigned_as_signed

__all__ = ["CopyPasteParams", "MixupParams", "RandCopyPasted", "RandMixup", "RandMixupd"]


# ---------------------------------------------------------------- copy-paste


@dataclass(frozen=True)
class CopyPasteParams:
    """The chosen copy: z-flipped or not, rotated by ``angle`` degrees in yx; its overlap with the
    original foreground before clearing, and how many voxels were finally pasted."""

    flip_z: bool
    angle: int
    overlap: int
    pasted: int


def _centroid(mask: torch.Tensor) -> torch.Tensor:
    """Centre of mass of a ``(Z, Y, X)`` mask in units of the volume size."""
    coords = torch.nonzero(mask).float()
    return coords.mean(0) / torch.tensor(mask.shape, dtype=torch.float32, device=mask.device)


def _flip_z(t: torch.Tensor) -> torch.Tensor:
    """``t`` (C, Z, Y, X) flipped along z, bit-exact for every dtype (torch's flip lacks some unsigned kernels)."""
    work, back = unsigned_as_signed(t, exact=True)
    return back(work.flip(1))


def _offset_ids(moved: torch.Tensor, label: torch.Tensor, name) -> torch.Tensor:
    """``moved + label.max()`` on the non-zero voxels, in the label's own dtype (unsigned ones too).

    Raises:
        ValueError: the offset ids do not fit the label dtype (they would wrap around onto other ids).
    """
    top = max_value(label)
    if moved.dtype.is_floating_point or moved.dtype == torch.bool:
        return torch.where(moved != 0, moved + top, moved)
    highest, limit = max_value(moved) + top, int(torch.iinfo(moved.dtype).max)
    if highest > limit:
        raise ValueError(
            f"relabel: pasted ids up to {highest} do not fit the {moved.dtype} label {name!r} (max {limit}); "
            "use a wider label dtype or relabel=False"
        )
    work, back = unsigned_as_signed(moved, exact=True)
    bits = 8 * moved.element_size()
    off = top if work.dtype == moved.dtype else ((top + 2 ** (bits - 1)) % 2**bits) - 2 ** (bits - 1)
    return back(torch.where(work != 0, work + off, work))  # same bits as the unsigned sum (checked: no wrap)


class RandCopyPasted(RandomizableTransform, MapTransform):
    """More foreground objects (PyTC ``CopyPasteAugmentor``): the labelled object(s) are copied into the background.

    The foreground (``label != 0``) is tried as 23 copies: flipped along z or not, rotated in the
    yx plane by 0, 30, ..., 330 degrees (the unmoved original excluded). The copy overlapping the
    original foreground least is chosen; among copies with no overlap, the one whose centre is
    closest to the original's. Voxels of the copy within ``dilation`` voxels (chessboard distance,
    in z, y and x) of the original foreground are dropped, so the two never touch. At the remaining
    voxels the image keys get the moved image content (bilinear) and the label gets the moved
    label (nearest, ids kept, or offset by the label's maximum with ``relabel``) — PyTC forgot to
    update the label. Nothing happens when the foreground is empty or exceeds ``aug_thres`` of
    the volume. Only the ``prob`` gate is random; the choice is a function of the label.

    Args:
        keys: image keys that receive the pasted content.
        label_key: the label key (foreground = non-zero, any channel); updated in place of the copy.
        aug_thres: largest foreground fraction still augmented (default 0.7).
        dilation: gap kept between original and copy, in voxels (default 3).
        relabel: give pasted voxels ``id + label.max()`` so instance ids stay unique (default False:
            ids copied as they are, right for binary or semantic labels).
        prob: probability of applying (default 0.8).
        allow_missing_keys: skip absent image keys (the label key is always required).

    Arrays are ``(C, Z, Y, X)``; shapes and dtypes kept. ``self.params`` holds the last choice
    (``None`` when nothing was pasted).

    Example:
        >>> lab = torch.zeros(1, 2, 16, 16, dtype=torch.int32); lab[:, :, 2:6, 2:6] = 1
        >>> out = RandCopyPasted("image", prob=1.0)({"image": lab.float(), "label": lab})
        >>> int((out["label"] > 0).sum()) > int((lab > 0).sum())
        True
    """

    backend = RandEMTransform.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        label_key: str = "label",
        aug_thres: float = 0.7,
        dilation: int = 3,
        relabel: bool = False,
        prob: float = 0.8,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        check_unit("prob", prob)
        if not 0.0 < check_number("aug_thres", aug_thres) <= 1.0:
            raise ValueError(f"aug_thres must be in (0, 1], got {aug_thres}")
        dilation = check_int("dilation", dilation, 0)
        RandomizableTransform.__init__(self, prob)
        self.label_key, self.aug_thres = label_key, float(aug_thres)
        self.dilation, self.relabel = dilation, bool(relabel)
        self.params: CopyPasteParams | None = None

    def choose(self, fg: torch.Tensor) -> tuple[bool, int, int]:
        """The (flip_z, angle, overlap) of the least-overlapping copy of the ``(Z, Y, X)`` mask ``fg``."""
        best: tuple[bool, int, int] | None = None
        best_dist = float("inf")
        centre = _centroid(fg)
        for flip in (False, True):
            base = fg.flip(0) if flip else fg
            for angle in range(0, 360, 30):
                if not flip and angle == 0:
                    continue
                moved = rotate_xy(base, float(angle), "nearest")
                overlap = int((moved & fg).sum())
                if best is None or overlap < best[2]:
                    best, best_dist = (flip, angle, overlap), float("inf")
                if overlap == 0 and best[2] == 0 and moved.any():
                    dist = float(((_centroid(moved) - centre) ** 2).mean())
                    if dist < best_dist:
                        best, best_dist = (flip, angle, 0), dist
        return best  # type: ignore[return-value]  (23 candidates: never None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.label_key not in d:
            raise ValueError(
                f"RandCopyPasted needs the label key {self.label_key!r}, data has keys {list(d)}"
            )
        self.randomize(None)
        self.params = None
        label = as_torch(d[self.label_key])
        if label.ndim != 4:
            raise ValueError(f"label {self.label_key!r} must be (C, Z, Y, X), got shape {tuple(label.shape)}")
        fg = (label != 0).any(0)
        fraction = float(fg.float().mean())
        if not self._do_transform or fraction == 0 or fraction > self.aug_thres:
            for key in [*self.key_iterator(d), self.label_key]:
                d[key] = as_output(d[key])
            return d
        flip, angle, overlap = self.choose(fg)
        moved_label = rotate_xy(_flip_z(label) if flip else label, float(angle), "nearest")
        k = 2 * self.dilation + 1
        near = F.max_pool3d(fg[None, None].float(), k, stride=1, padding=self.dilation)[0, 0] > 0
        paste = (moved_label != 0).any(0) & ~near
        self.params = CopyPasteParams(flip, angle, overlap, int(paste.sum()))
        for key in self.key_iterator(d):
            img = as_torch(d[key])
            if tuple(img.shape[1:]) != tuple(label.shape[1:]):
                raise ValueError(
                    f"key {key!r} has spatial shape {tuple(img.shape[1:])}, label {tuple(label.shape[1:])}"
                )
            moved = rotate_xy(_flip_z(img) if flip else img, float(angle), "bilinear")
            d[key] = like_input(torch.where(paste, moved, img), d[key])
        if self.relabel:
            moved_label = _offset_ids(moved_label, label, self.label_key)
        d[self.label_key] = like_input(torch.where(paste, moved_label, label), d[self.label_key])
        return d


# ---------------------------------------------------------------- mixup


@dataclass(frozen=True)
class MixupParams:
    """``(major, minor, ratio)`` per mixed sample: ``batch[major] = batch[major]*ratio + batch[minor]*(1-ratio)``."""

    pairs: tuple[tuple[int, int, float], ...]


class RandMixup(RandEMTransform):
    """Mixup on a batch (PyTC ``MixupAugmentor``): a few samples are blended with other samples.

    Pick min(``num_aug``, B) distinct samples; mix each with another sample j != i drawn
    uniformly: ``v_i = v_i * r + v_j * (1 - r)``, r ~ U(min_ratio, max_ratio), all from the
    batch as it came in (a sample mixed earlier is not mixed again into another). Labels are not
    touched (the major sample's label stands), so use it on image keys only. A batch of one is
    left as it is.

    Args:
        min_ratio: smallest weight of the major sample (default 0.7).
        max_ratio: largest weight of the major sample (default 0.9).
        num_aug: how many samples to mix (default 2).
        prob: probability of mixing the batch at all (default 1.0).

    Input a batch ``(B, C, ...)`` (after collation); shape and dtype kept (integers rounded).

    Example:
        >>> t = RandMixup(prob=1.0).set_random_state(0)
        >>> out = t(torch.stack([torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)]))
        >>> bool(((out > 0.05) & (out < 0.95)).any())
        True
    """

    def __init__(self, min_ratio: float = 0.7, max_ratio: float = 0.9, num_aug: int = 2, prob: float = 1.0):
        super().__init__(prob, "bilinear")
        min_ratio, max_ratio = check_number("min_ratio", min_ratio), check_number("max_ratio", max_ratio)
        if not 0.0 <= min_ratio <= max_ratio <= 1.0:
            raise ValueError(f"need 0 <= min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
        num_aug = check_int("num_aug", num_aug, 1)
        self.min_ratio, self.max_ratio, self.num_aug = float(min_ratio), float(max_ratio), num_aug

    def draw(self, batch_shape: tuple[int, ...]) -> MixupParams:
        """Draw the pairs for a batch of shape ``(B, ...)`` (the full shape, batch axis first)."""
        size = int(batch_shape[0])
        if size < 2:
            return MixupParams(())
        pairs = []
        for major in self.R.choice(size, min(self.num_aug, size), replace=False):
            minor = int(self.R.randint(0, size - 1))
            minor += minor >= major  # uniform over the other samples
            pairs.append((int(major), minor, float(self.R.uniform(self.min_ratio, self.max_ratio))))
        return MixupParams(tuple(pairs))

    def apply(self, img, params: MixupParams, mode: str = "bilinear"):
        x = as_torch(img)
        out = x.clone()
        for major, minor, ratio in params.pairs:
            mixed = x[major].double() * ratio + x[minor].double() * (1 - ratio)
            if not x.dtype.is_floating_point:
                mixed = mixed.round()
            out[major] = mixed.to(x.dtype)
        return like_input(out, img)

    def draw_shape(self, img) -> tuple[int, ...]:
        return tuple(img.shape)  # the batch size is part of the draw


class RandMixupd(RandEMDictTransform):
    """Dictionary wrapper of :class:`RandMixup` for batched image keys (one draw for all of them).

    Args:
        keys: image keys of a collated batch ``(B, C, ...)``; leave labels out (they stay).
        allow_missing_keys: skip absent keys.
        min_ratio, max_ratio, num_aug, prob: see the array class.
    """

    def __init__(
        self,
        keys: KeysCollection,
        min_ratio: float = 0.7,
        max_ratio: float = 0.9,
        num_aug: int = 2,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ):
        super().__init__(
            keys, RandMixup(min_ratio, max_ratio, num_aug, 1.0), prob, "bilinear", allow_missing_keys
        )

    def draw_shape(self, data: Mapping[Hashable, Any], keys: Sequence[Hashable]) -> tuple[int, ...]:
        sizes = {k: int(data[k].shape[0]) for k in keys}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"keys must share one batch size to be mixed together, got {sizes}")
        return (sizes[keys[0]],)
