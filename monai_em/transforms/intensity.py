"""Intensity augmentations for EM images: grayscale jitter, CutBlur, CutNoise (image keys only).

All three work on intensities in [0, 1]. Float images are taken as they are (values outside
[0, 1] get clipped where PyTC clips); integer images (e.g. uint8) are scaled by their dtype's
maximum, augmented, and returned in their own dtype, rounded — so a uint8 pipeline stays uint8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.config import KeysCollection

from ..deprecation import renamed_arg, renamed_value
from .base import (
    PATCHES,
    WINDOW,
    RandEMDictTransform,
    RandEMTransform,
    check_number,
    check_unit,
)
from .tensors import as_torch, cast_back, like_input

__all__ = [
    "CutBlurParams",
    "CutNoiseParams",
    "GrayscaleParams",
    "RandCutBlur",
    "RandCutBlurd",
    "RandCutNoise",
    "RandCutNoised",
    "RandGrayscale",
    "RandGrayscaled",
]

Box = tuple[tuple[int, int], ...]


def _to_unit(x: torch.Tensor) -> tuple[torch.Tensor, float | None]:
    """Float copy of ``x`` in [0, 1] units: integers divided by their dtype maximum (returned as scale)."""
    if x.dtype.is_floating_point:
        return x.clone(), None
    if x.dtype == torch.bool:
        raise TypeError("intensity augmentations need an image, got a bool tensor (a mask?)")
    scale = float(torch.iinfo(x.dtype).max)
    return x.float() / scale, scale


def _from_unit(y: torch.Tensor, dtype: torch.dtype, scale: float | None) -> torch.Tensor:
    """Inverse of :func:`_to_unit`: back to ``dtype`` (integers rescaled, rounded and clamped)."""
    return cast_back(y if scale is None else y * scale, dtype)


def _as_4d(x: torch.Tensor) -> torch.Tensor:
    """``(C, Y, X)`` 2D images as one-section ``(C, 1, Y, X)`` volumes."""
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"expected a (C, Z, Y, X) or (C, Y, X) image, got shape {tuple(x.shape)}")
    return x


def _spatial3(spatial_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(spatial_shape) == 2:
        return (1, *spatial_shape)
    if len(spatial_shape) != 3:
        raise ValueError(f"expected a (C, Z, Y, X) or (C, Y, X) image, got spatial shape {spatial_shape}")
    return tuple(spatial_shape)


def _check_ratio(name: str, value: float) -> float:
    value = check_number(name, value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return float(value)


# ---------------------------------------------------------------- grayscale


@dataclass(frozen=True)
class GrayscaleParams:
    """``factors``: one (r0, r1, r2) for the volume ('3D') or one per section ('2D'); ``invert``: 1 - x after."""

    mode: str
    factors: tuple[tuple[float, float, float], ...]
    invert: bool
    contrast: float
    brightness: float


class RandGrayscale(RandEMTransform):
    """Brightness, contrast and gamma changes between sections or volumes (PyTC ``Grayscale``).

    With r0, r1, r2 ~ U(0, 1): ``x *= 1 + (r0 - 0.5) * contrast``; ``x += (r1 - 0.5) * brightness``;
    clip to [0, 1]; ``x = x ** 2 ** (2 r2 - 1)``; then ``x = 1 - x`` if inverted. '3D' draws once
    for the volume, '2D' once per section, 'mix' picks '2D' or '3D' (50/50) on every call.

    Args:
        contrast: contrast factor (default 0.3).
        brightness: brightness factor (default 0.3).
        grayscale_mode: ``"mix"`` (default), ``"2D"`` or ``"3D"`` (PyTC's ``mode``; the old name
            ``mode`` is accepted with a DeprecationWarning, and refused from version 0.3).
        invert: allow inversion (default False); when True each call inverts with probability ``invert_p``.
        invert_p: inversion probability (default 0.0).
        prob: probability of applying (default 0.5; PyTC config 0.75).

    Image only; input ``(C, Z, Y, X)`` or ``(C, Y, X)`` in [0, 1] (float) or an integer dtype
    scaled by its maximum (uint8: /255); shape and dtype kept.

    Example:
        >>> t = RandGrayscale(grayscale_mode="3D", prob=1.0).set_random_state(0)
        >>> t(torch.full((1, 2, 4, 4), 0.5)).shape
        torch.Size([1, 2, 4, 4])
    """

    @renamed_arg("mode", "grayscale_mode")
    def __init__(
        self,
        contrast: float = 0.3,
        brightness: float = 0.3,
        grayscale_mode: str = "mix",
        invert: bool = False,
        invert_p: float = 0.0,
        prob: float = 0.5,
        *,
        mode: str | None = None,
    ):
        super().__init__(prob, "bilinear")
        grayscale_mode, name = renamed_value("mode", mode, "grayscale_mode", grayscale_mode)
        if grayscale_mode not in ("mix", "2D", "3D"):
            raise ValueError(f"{name} must be 'mix', '2D' or '3D', got {grayscale_mode!r}")
        self.contrast, self.brightness = (
            check_number("contrast", contrast),
            check_number("brightness", brightness),
        )
        self.gray_mode, self.invert, self.invert_p = (
            grayscale_mode,
            bool(invert),
            check_unit("invert_p", invert_p),
        )

    def draw(self, spatial_shape: tuple[int, ...]) -> GrayscaleParams:
        depth = _spatial3(spatial_shape)[0]
        mode = self.gray_mode
        if mode == "mix":
            mode = "3D" if self.R.rand() < 0.5 else "2D"
        count = 1 if mode == "3D" else depth
        factors = tuple(tuple(float(v) for v in row) for row in self.R.rand(count, 3))
        invert = bool(self.invert and self.R.rand() < self.invert_p)
        return GrayscaleParams(mode, factors, invert, self.contrast, self.brightness)

    def contribution(self) -> str:
        return WINDOW

    def apply_window(self, img, params: GrayscaleParams, mode: str, start: tuple[int, ...], section=None):
        """:meth:`apply` on a window of a larger image that begins at ``start`` ((z,) y, x), as a plain
        tensor: pointwise, so only the per-section draws need the window's first section. Writes into
        ``img`` (a float window the caller owns) and returns it; other dtypes get a new tensor."""
        if len(params.factors) > 1:
            params = dataclasses.replace(params, factors=params.factors[start[0] : start[0] + img.shape[1]])
        return self._apply(as_torch(img), params, in_place=True)

    def apply(self, img, params: GrayscaleParams, mode: str):
        return like_input(self._apply(as_torch(img), params, in_place=False), img)

    def _apply(self, x: torch.Tensor, params: GrayscaleParams, in_place: bool) -> torch.Tensor:
        x4 = _as_4d(x)
        if x.dtype.is_floating_point:
            y, scale = x4 if in_place else torch.empty_like(x4), None
        elif x.dtype == torch.bool:
            raise TypeError("intensity augmentations need an image, got a bool tensor (a mask?)")
        else:
            y, scale = x4.float().div_(float(torch.iinfo(x.dtype).max)), float(torch.iinfo(x.dtype).max)
        source = x4 if scale is None else y
        # one (contrast, brightness, gamma) per section or for the volume: scalar in-place ops, one pass each
        sections = [slice(None)] if len(params.factors) == 1 else range(len(params.factors))
        for z, (r0, r1, r2) in zip(sections, params.factors, strict=True):
            part = y[:, z]
            torch.mul(source[:, z], 1 + (r0 - 0.5) * params.contrast, out=part)
            part.add_((r1 - 0.5) * params.brightness).clamp_(0, 1).pow_(2.0 ** (2 * r2 - 1))
        if params.invert:
            y.neg_().add_(1)
        return _from_unit(y, x.dtype, scale).reshape(x.shape)


class RandGrayscaled(RandEMDictTransform):
    """Dictionary wrapper of :class:`RandGrayscale` for image keys only (one draw for all of them).

    Args:
        keys: image keys. allow_missing_keys: skip absent keys.
        contrast, brightness, grayscale_mode, invert, invert_p, prob: see the array class.
    """

    @renamed_arg("mode", "grayscale_mode")
    def __init__(
        self,
        keys: KeysCollection,
        contrast: float = 0.3,
        brightness: float = 0.3,
        grayscale_mode: str = "mix",
        invert: bool = False,
        invert_p: float = 0.0,
        prob: float = 0.5,
        allow_missing_keys: bool = False,
        *,
        mode: str | None = None,
    ):
        grayscale_mode, _ = renamed_value("mode", mode, "grayscale_mode", grayscale_mode)
        inner = RandGrayscale(contrast, brightness, grayscale_mode, invert, invert_p, 1.0)
        super().__init__(keys, inner, prob, "bilinear", allow_missing_keys)


# ---------------------------------------------------------------- cuboids


def _draw_box(R, shape3: tuple[int, int, int], length_ratio: float) -> Box:
    """A random cuboid with side ``max(1, int(ratio * L))`` per axis (all of z when Z == 1)."""
    box = []
    for axis, size in enumerate(shape3):
        if axis == 0 and size == 1:
            box.append((0, 1))
            continue
        length = max(1, int(length_ratio * size))
        start = int(R.randint(0, size - length + 1))
        box.append((start, start + length))
    return tuple(box)


def _box_slices(box: Box) -> tuple[slice, ...]:
    return (slice(None), *(slice(a, b) for a, b in box))


def paste_patches(img, patches) -> torch.Tensor:
    """A copy of ``img`` (C, [Z,] Y, X) with each ``(box, values)`` of ``patches`` written in turn (the
    whole-image ``apply`` of a :data:`~monai_em.transforms.base.PATCHES` transform)."""
    x = as_torch(img)
    out = _as_4d(x).clone()
    for box, values in patches:
        out[_box_slices(box)] = values
    return out.reshape(x.shape)


def _read_from(img):
    """``read(box)`` of a whole image ``img`` (C, [Z,] Y, X): its 4D view there."""
    x4 = _as_4d(as_torch(img))
    return lambda box: x4[_box_slices(box)]


@dataclass(frozen=True)
class CutBlurParams:
    """The cuboid ``((z0, z1), (y0, y1), (x0, x1))`` and the down-sampling factor per axis (z, y, x)."""

    box: Box
    factors: tuple[float, float, float]


class RandCutBlur(RandEMTransform):
    """Locally lower resolution (PyTC ``CutBlur``): a cuboid is down-sampled and blown up again.

    A cuboid with side ``int(length_ratio * L)`` per axis (all of z when Z == 1) at a uniform
    random position is down-sampled by r ~ U(down_ratio_min, down_ratio_max) in y and x (and z if
    ``downsample_z``), each new side ``max(1, int(side / r))``, with area averaging (the
    anti-aliased filter), then up-sampled back with nearest neighbour and pasted in place.

    Args:
        length_ratio: cuboid side as a fraction of each axis (default 0.25; PyTC config 0.4).
        down_ratio_min: smallest factor r (default 2.0).
        down_ratio_max: largest factor r (default 8.0).
        downsample_z: also down-sample along z (default False).
        prob: probability of applying (default 0.5).

    Image only; input ``(C, Z, Y, X)`` or ``(C, Y, X)``; shape and dtype kept (integers rounded).

    Example:
        >>> t = RandCutBlur(length_ratio=0.5, prob=1.0).set_random_state(0)
        >>> t(torch.zeros(1, 4, 16, 16)).shape
        torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self,
        length_ratio: float = 0.25,
        down_ratio_min: float = 2.0,
        down_ratio_max: float = 8.0,
        downsample_z: bool = False,
        prob: float = 0.5,
    ):
        super().__init__(prob, "bilinear")
        self.length_ratio = _check_ratio("length_ratio", length_ratio)
        down_ratio_min = check_number("down_ratio_min", down_ratio_min)
        down_ratio_max = check_number("down_ratio_max", down_ratio_max)
        if not 1.0 <= down_ratio_min <= down_ratio_max:
            raise ValueError(
                f"need 1 <= down_ratio_min <= down_ratio_max, got {down_ratio_min}, {down_ratio_max}"
            )
        self.down_ratio_min, self.down_ratio_max = float(down_ratio_min), float(down_ratio_max)
        self.downsample_z = bool(downsample_z)

    def draw(self, spatial_shape: tuple[int, ...]) -> CutBlurParams:
        shape3 = _spatial3(spatial_shape)
        box = _draw_box(self.R, shape3, self.length_ratio)
        r = float(self.R.uniform(self.down_ratio_min, self.down_ratio_max))
        rz = r if self.downsample_z and shape3[0] > 1 else 1.0
        return CutBlurParams(box, (rz, r, r))

    def contribution(self) -> str:
        return PATCHES

    def patches(self, params: CutBlurParams, spatial_shape, read) -> list:
        """The cuboid, blurred: ``[(box, values)]`` from ``read(box)`` (see ``base.PATCHES``)."""
        cut = read(params.box)
        work = cut if cut.dtype.is_floating_point else cut.float()
        small = tuple(max(1, int(s / f)) for s, f in zip(cut.shape[1:], params.factors, strict=True))
        low = F.interpolate(work.unsqueeze(0), size=small, mode="area")
        back = F.interpolate(low, size=tuple(cut.shape[1:]), mode="nearest-exact")[0]
        return [(params.box, cast_back(back, cut.dtype))]

    def apply(self, img, params: CutBlurParams, mode: str):
        return like_input(paste_patches(img, self.patches(params, None, _read_from(img))), img)


class RandCutBlurd(RandEMDictTransform):
    """Dictionary wrapper of :class:`RandCutBlur` for image keys only (same cuboid for all of them).

    Args:
        keys: image keys. allow_missing_keys: skip absent keys.
        length_ratio, down_ratio_min, down_ratio_max, downsample_z, prob: see the array class.
    """

    def __init__(
        self,
        keys: KeysCollection,
        length_ratio: float = 0.25,
        down_ratio_min: float = 2.0,
        down_ratio_max: float = 8.0,
        downsample_z: bool = False,
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ):
        inner = RandCutBlur(length_ratio, down_ratio_min, down_ratio_max, downsample_z, 1.0)
        super().__init__(keys, inner, prob, "bilinear", allow_missing_keys)


@dataclass(frozen=True)
class CutNoiseParams:
    """The cuboid, the noise amplitude and the seed of the noise field (a CPU torch.Generator, moved to the data's device)."""

    box: Box
    scale: float
    seed: int


class RandCutNoise(RandEMTransform):
    """Local noise (PyTC ``CutNoise``): uniform noise U(-scale, scale) added inside a random cuboid.

    The cuboid is drawn as in :class:`RandCutBlur`; inside it ``x += U(-scale, scale)`` (an
    independent value per voxel and channel), then clipped to [0, 1]; voxels outside never change.
    The noise comes from a CPU ``torch.Generator`` seeded by a draw from ``self.R`` and is then
    moved to the data's device (it only covers the cuboid), so every device gets the same field.

    Args:
        length_ratio: cuboid side as a fraction of each axis (default 0.25; PyTC config 0.4).
        scale: noise amplitude (default 0.2; PyTC config 0.3), in [0, 1] intensity units.
        prob: probability of applying (default 0.5; PyTC config 0.75).

    Image only; input ``(C, Z, Y, X)`` or ``(C, Y, X)`` in [0, 1] (float) or an integer dtype scaled
    by its maximum; shape and dtype kept.

    Example:
        >>> t = RandCutNoise(length_ratio=0.5, prob=1.0).set_random_state(0)
        >>> t(torch.zeros(1, 4, 16, 16)).shape
        torch.Size([1, 4, 16, 16])
    """

    def __init__(self, length_ratio: float = 0.25, scale: float = 0.2, prob: float = 0.5):
        super().__init__(prob, "bilinear")
        self.length_ratio = _check_ratio("length_ratio", length_ratio)
        if check_number("scale", scale) < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        self.scale = float(scale)

    def draw(self, spatial_shape: tuple[int, ...]) -> CutNoiseParams:
        box = _draw_box(self.R, _spatial3(spatial_shape), self.length_ratio)
        return CutNoiseParams(box, self.scale, int(self.R.randint(0, 2**31 - 1)))

    def contribution(self) -> str:
        return PATCHES

    def patches(self, params: CutNoiseParams, spatial_shape, read) -> list:
        """The cuboid with its noise: ``[(box, values)]`` from ``read(box)`` (see ``base.PATCHES``)."""
        given = read(params.box)
        cut, scale = _to_unit(given)
        gen = torch.Generator().manual_seed(params.seed)  # CPU: the same field on every device
        noise = torch.rand(cut.shape, generator=gen, dtype=cut.dtype).to(cut.device)
        cut = (cut + (noise * 2 - 1) * params.scale).clamp(0, 1)
        return [(params.box, _from_unit(cut, given.dtype, scale))]

    def apply(self, img, params: CutNoiseParams, mode: str):
        return like_input(paste_patches(img, self.patches(params, None, _read_from(img))), img)


class RandCutNoised(RandEMDictTransform):
    """Dictionary wrapper of :class:`RandCutNoise` for image keys only (same cuboid and noise for all).

    Args:
        keys: image keys. allow_missing_keys: skip absent keys.
        length_ratio, scale, prob: see the array class.
    """

    def __init__(
        self,
        keys: KeysCollection,
        length_ratio: float = 0.25,
        scale: float = 0.2,
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, RandCutNoise(length_ratio, scale, 1.0), prob, "bilinear", allow_missing_keys)
