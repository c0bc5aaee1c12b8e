"""Section-wise defects of serial-section EM: mis-alignment, missing sections, missing parts, motion blur."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection

from ..data.volume import reflect_indices
from .base import (
    PATCHES,
    SECTION_WINDOW,
    SECTIONS,
    Margin,
    RandEMDictTransform,
    RandEMSpatialDictTransform,
    RandEMTransform,
    check_int,
    check_unit,
)
from .intensity import paste_patches
from .resample import rotate_xy
from .tensors import as_torch, cast_back, like_input, unsigned_as_signed

__all__ = [
    "MisAlignmentParams",
    "MissingPartsParams",
    "MissingSectionParams",
    "MotionBlurParams",
    "RandMisAlignment",
    "RandMisAlignmentd",
    "RandMissingParts",
    "RandMissingPartsd",
    "RandMissingSection",
    "RandMissingSectiond",
    "RandMotionBlur",
    "RandMotionBlurd",
]


# ---------------------------------------------------------------- mis-alignment


@dataclass(frozen=True)
class MisAlignmentParams:
    """One mis-alignment draw: ``section`` i, 'slip' (only i moves) or 'translation' (i onward moves).

    Translation mode crops every section at ``start0`` (y, x) except the moved ones, cut at
    ``start1``; rotation mode rotates the moved sections by ``angle`` degrees.
    """

    section: int
    slip: bool
    rotate: bool
    displacement: int
    start0: tuple[int, int] = (0, 0)
    start1: tuple[int, int] = (0, 0)
    angle: float = 0.0


class RandMisAlignment(RandEMTransform):
    """Mis-aligned sections (PyTC ``MisAlignment``): one section, or the stack from it on, is shifted or rotated.

    With probability ``rotate_ratio`` the rotation variant, else translation; then 'slip' (50 %)
    moves only section i, 'translation' moves every section from i on; i ~ U{1..Z-2}.
    Translation: (y0, x0), (y1, x1) ~ U{0..d-1}; output ``(C, Z, Y-d, X-d)``, each section cut at
    (y0, x0) or, if moved, at (y1, x1) — a pure crop, so labels keep their values exactly.
    Rotation: angle ~ U(-A, A) with A = 2 asin((d/2) / (1.42 (Y-d)/2)) degrees about the yx
    centre, zero fill; size kept. Margin: ``add = (0, ceil(d/2), ceil(d/2))``.

    Args:
        displacement: d, the largest shift in voxels (default 16).
        rotate_ratio: probability of the rotation variant (default 0.0; PyTC config 0.5).
        prob: probability of applying (default 0.5).
        mode: ``"bilinear"`` (images) or ``"nearest"`` (labels, masks) for the rotation variant.

    Input ``(C, Z, Y, X)`` with Z >= 3 and Y, X > d.

    Example:
        >>> t = RandMisAlignment(displacement=8, prob=1.0).set_random_state(0)
        >>> t(np.zeros((1, 5, 32, 32), np.float32)).shape[-2:]
        torch.Size([24, 24])
    """

    geometric = True

    def __init__(
        self, displacement: int = 16, rotate_ratio: float = 0.0, prob: float = 0.5, mode: str | None = None
    ):
        super().__init__(prob, mode)
        self.displacement = check_int("displacement", displacement, 1)
        self.rotate_ratio = check_unit("rotate_ratio", rotate_ratio)

    def margin(self) -> Margin:
        half = math.ceil(self.displacement / 2)
        return Margin(add=(0, half, half))

    def max_angle(self, height: int) -> float:
        """The rotation bound A in degrees for sections of ``height`` voxels."""
        d = self.displacement
        return math.degrees(2 * math.asin(min(1.0, (d / 2) / (1.42 * (height - d) / 2))))

    def draw(self, spatial_shape: tuple[int, ...]) -> MisAlignmentParams:
        if len(spatial_shape) != 3 or spatial_shape[0] < 3:
            raise ValueError(
                f"mis-alignment needs (C, Z, Y, X) with Z >= 3, got spatial shape {spatial_shape}"
            )
        _, height, width = spatial_shape
        d = self.displacement
        if min(height, width) <= d:
            raise ValueError(
                f"displacement {d} needs Y and X larger than it, got spatial shape {spatial_shape}"
            )
        rotate = bool(self.R.rand() < self.rotate_ratio)
        slip = bool(self.R.rand() < 0.5)
        section = int(self.R.randint(1, spatial_shape[0] - 1))
        if rotate:
            bound = self.max_angle(height)
            return MisAlignmentParams(section, slip, True, d, angle=float(self.R.uniform(-bound, bound)))
        y0, x0, y1, x1 = (int(v) for v in self.R.randint(0, d, size=4))
        return MisAlignmentParams(section, slip, False, d, start0=(y0, x0), start1=(y1, x1))

    def contribution(self) -> str:
        return SECTIONS

    def output_shape(self, params: MisAlignmentParams, spatial_shape: tuple[int, ...]) -> tuple[int, ...]:
        if params.rotate:
            return tuple(spatial_shape)
        depth, height, width = spatial_shape
        return depth, height - params.displacement, width - params.displacement

    def section_map(self, params: MisAlignmentParams, spatial_shape: tuple[int, ...]):
        """``(sources, origins, size, angles)``: translation cuts every section at ``start0`` and the
        moved ones at ``start1``; rotation turns the moved ones by ``angle`` (see ``base.SECTIONS``)."""
        depth, height, width = spatial_shape
        i, j = params.section, params.section + 1 if params.slip else depth
        if params.rotate:
            angles = tuple(params.angle if i <= z < j else None for z in range(depth))
            return tuple(range(depth)), ((0, 0),) * depth, (height, width), angles
        origins = tuple(params.start1 if i <= z < j else params.start0 for z in range(depth))
        d = params.displacement
        return tuple(range(depth)), origins, (height - d, width - d), None

    def apply(self, img, params: MisAlignmentParams, mode: str):
        x, back = unsigned_as_signed(as_torch(img), exact=not params.rotate or mode == "nearest")
        i, j = params.section, params.section + 1 if params.slip else x.shape[1]  # sections [i, j) move
        if params.rotate:
            parts = [x[:, :i], rotate_xy(x[:, i:j], params.angle, mode), x[:, j:]]
        else:
            d = params.displacement
            height, width = x.shape[2] - d, x.shape[3] - d
            (y0, x0), (y1, x1) = params.start0, params.start1
            fixed = x[..., y0 : y0 + height, x0 : x0 + width]
            parts = [fixed[:, :i], x[:, i:j, y1 : y1 + height, x1 : x1 + width], fixed[:, j:]]
        return like_input(back(torch.cat(parts, 1)), img)  # one copy of every voxel


class RandMisAlignmentd(RandEMSpatialDictTransform):
    """Dictionary wrapper of :class:`RandMisAlignment`: every key gets the same draw.

    Args:
        keys: image, label and mask keys (all move together).
        mode: ``"bilinear"`` for images, ``"nearest"`` for labels/masks (one value or one per key);
            left out: bilinear, nearest for integer arrays.
        allow_missing_keys: skip absent keys.
        displacement, rotate_ratio, prob: see :class:`RandMisAlignment`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        displacement: int = 16,
        rotate_ratio: float = 0.0,
        prob: float = 0.5,
        mode: str | Sequence[str] | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(
            keys, RandMisAlignment(displacement, rotate_ratio, 1.0), prob, mode, allow_missing_keys
        )


# ---------------------------------------------------------------- missing sections


@dataclass(frozen=True)
class MissingSectionParams:
    """Indices of the deleted sections (sorted; empty for a one-section volume)."""

    sections: tuple[int, ...]


class RandMissingSection(RandEMTransform):
    """Lost sections (PyTC ``MissingSection``): n distinct sections from [1, Z-2] are deleted, Z shrinks by n.

    Args:
        num_sections: n (default 2), drawn without replacement, never the first or last section.
        prob: probability of applying (default 0.5).

    Input ``(C, Z, Y, X)``, output ``(C, Z - n, Y, X)``; a no-op when Z == 1; ValueError when
    Z - 2 < n. Margin: ``add = (ceil(n/2), 0, 0)``. Works on any dtype (pure indexing).

    Example:
        >>> t = RandMissingSection(num_sections=2, prob=1.0).set_random_state(0)
        >>> t(np.zeros((1, 8, 4, 4))).shape
        torch.Size([1, 6, 4, 4])
    """

    geometric = True

    def __init__(self, num_sections: int = 2, prob: float = 0.5, mode: str | None = None):
        super().__init__(prob, mode)
        self.num_sections = check_int("num_sections", num_sections, 1)

    def margin(self) -> Margin:
        return Margin(add=(math.ceil(self.num_sections / 2), 0, 0))

    def draw(self, spatial_shape: tuple[int, ...]) -> MissingSectionParams:
        if len(spatial_shape) != 3:
            raise ValueError(f"missing sections need (C, Z, Y, X) data, got spatial shape {spatial_shape}")
        depth = spatial_shape[0]
        if depth == 1:
            return MissingSectionParams(())
        if depth - 2 < self.num_sections:
            raise ValueError(
                f"cannot delete num_sections={self.num_sections} interior sections from Z={depth} "
                f"(spatial shape {spatial_shape}); need Z >= {self.num_sections + 2}"
            )
        picked = self.R.choice(np.arange(1, depth - 1), self.num_sections, replace=False)
        return MissingSectionParams(tuple(sorted(int(i) for i in picked)))

    def contribution(self) -> str:
        return SECTIONS

    def output_shape(self, params: MissingSectionParams, spatial_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (spatial_shape[0] - len(params.sections), *spatial_shape[1:])

    def section_map(self, params: MissingSectionParams, spatial_shape: tuple[int, ...]):
        """``(sources, origins, size, angles)``: the kept sections, uncut and unturned."""
        gone = set(params.sections)
        keep = tuple(z for z in range(spatial_shape[0]) if z not in gone)
        return keep, ((0, 0),) * len(keep), tuple(spatial_shape[1:]), None

    def apply(self, img, params: MissingSectionParams, mode: str):
        x = as_torch(img)
        keep = [z for z in range(x.shape[1]) if z not in set(params.sections)]
        return like_input(x[:, keep], img)


class RandMissingSectiond(RandEMSpatialDictTransform):
    """Dictionary wrapper of :class:`RandMissingSection`: the same sections leave every key.

    Args:
        keys: image, label and mask keys. mode: accepted for symmetry (indexing only).
        allow_missing_keys: skip absent keys. num_sections, prob: see the array class.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_sections: int = 2,
        prob: float = 0.5,
        mode: str | Sequence[str] = "nearest",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, RandMissingSection(num_sections, 1.0), prob, mode, allow_missing_keys)


# ---------------------------------------------------------------- missing parts


@dataclass(frozen=True)
class MissingPartsParams:
    """Hit sections; for each, ``(section, vertical, start, end)``: the line runs from ``start`` on
    one border to ``end`` on the opposite one (vertical: top row to bottom row, x positions)."""

    lines: tuple[tuple[int, bool, int, int], ...]
    iterations: int


def _band_window(
    shape: tuple[int, int], vertical: bool, start: int, end: int, iterations: int, device=None
) -> tuple[torch.Tensor, int, int]:
    """The band of one missing part inside the only columns it can touch (rows, for a horizontal line).

    Returns ``(band, lo, hi)``: ``band`` (length, hi - lo) bool over line positions x the window
    ``[lo, hi)`` across the line. The line has one pixel ``across[k]`` per position ``k`` along it,
    so row ``i`` of the band is the union over ``k`` of ``|j - across[k]| <= n - |i - k|``. When the
    line moves at most one pixel per row, that union is just ``|j - across[i]| <= n``.
    """
    height, width = shape
    length, breadth = (height, width) if vertical else (width, height)
    n = iterations
    steps = torch.arange(length, dtype=torch.float64, device=device)
    across = torch.round(start + (end - start) * steps / max(length - 1, 1)).long().clamp_(0, breadth - 1)
    lo, hi = max(int(across.min()) - n, 0), min(int(across.max()) + n + 1, breadth)
    if length == 1 or int((across[1:] - across[:-1]).abs().max()) <= 1:
        cols = torch.arange(lo, hi, dtype=torch.int32, device=device)
        return (cols[None, :] - across[:, None].int()).abs_() <= n, lo, hi
    # steep line: add every row's interval [c - r, c + r] into a difference array, then count coverage
    reach = min(n, length - 1)
    offset = torch.arange(-reach, reach + 1, device=device)
    k = torch.arange(length, device=device)[:, None] + offset
    counts = ((k >= 0) & (k < length)).int()
    centre = across[k.clamp_(0, length - 1)] - lo
    radius = n - offset.abs()
    diff = torch.zeros(length, hi - lo + 1, dtype=torch.int32, device=device)
    diff.scatter_add_(1, (centre - radius).clamp_(min=0), counts)
    diff.scatter_add_(1, (centre + radius + 1).clamp_(max=hi - lo), -counts)
    return diff[:, :-1].cumsum(1) > 0, lo, hi


def _fill(part: torch.Tensor, mask: torch.Tensor, value: torch.Tensor) -> None:
    """``part[mask] = value`` in place (numpy's boolean assignment on the CPU: ~4x faster than ``masked_fill_``)."""
    if part.device.type == "cpu" and part.dtype not in (torch.bfloat16, torch.float16):
        part.numpy()[mask.numpy()] = value.item()
    else:
        part.masked_fill_(mask, value)


def missing_parts_mask(
    shape: tuple[int, int], vertical: bool, start: int, end: int, iterations: int, device=None
) -> torch.Tensor:
    """The band of one missing part: a straight border-to-border line dilated ``iterations`` times
    with a cross (4-connected) structure, i.e. every voxel within city-block distance ``iterations``.

    Returns a ``shape`` bool tensor on ``device``."""
    band, lo, hi = _band_window(shape, vertical, start, end, iterations, device)
    mask = torch.zeros(shape if vertical else shape[::-1], dtype=torch.bool, device=device)
    mask[:, lo:hi] = band
    return mask if vertical else mask.T


class RandMissingParts(RandEMTransform):
    """Torn or folded sections (PyTC ``MissingParts``): a band across a section is replaced by its mean.

    Walk the sections; each is hit with probability ``section_prob`` and a hit makes the next
    section skip. A hit draws a roughly straight line from border to border (vertical or
    horizontal, 50/50; both end points ~ U{1..L-3} on the opposite borders), dilates it
    ``iterations`` times with a cross structure and fills the band with that section's mean
    (per channel; rounded for integer images).

    Args:
        iterations: band half-width in voxels (city-block), default 64.
        section_prob: per-section hit probability (default 0.5; PyTC uses its gate ``p`` here too).
        prob: probability of applying at all (default 0.5; PyTC config 0.9).

    Image only; input ``(C, Z, Y, X)``, shape and dtype kept.

    Example:
        >>> t = RandMissingParts(iterations=4, section_prob=1.0, prob=1.0).set_random_state(0)
        >>> t(np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, iterations: int = 64, section_prob: float = 0.5, prob: float = 0.5):
        super().__init__(prob, "bilinear")
        self.iterations = check_int("iterations", iterations, 0)
        self.section_prob = check_unit("section_prob", section_prob)

    def draw(self, spatial_shape: tuple[int, ...]) -> MissingPartsParams:
        depth, height, width = spatial_shape[-3:] if len(spatial_shape) >= 3 else (1, *spatial_shape)
        lines, skip = [], False
        for z in range(depth):
            if skip:
                skip = False
                continue
            if self.R.rand() < self.section_prob:
                vertical = bool(self.R.rand() < 0.5)
                across = width if vertical else height
                start, end = (int(v) for v in self.R.randint(1, max(across - 2, 2), size=2))
                lines.append((z, vertical, start, end))
                skip = True
        return MissingPartsParams(tuple(lines), self.iterations)

    def contribution(self) -> str:
        return SECTION_WINDOW  # fills with whole-section means of its input

    def apply(self, img, params: MissingPartsParams, mode: str):
        t = as_torch(img)
        t4 = t if t.ndim == 4 else t.unsqueeze(1)
        out = self.apply_window(t.clone(), params, mode, (0,) * (t.ndim - 1), lambda z: t4[:, z])
        return like_input(out, img)

    def apply_window(self, img, params: MissingPartsParams, mode: str, start: tuple[int, ...], section):
        """:meth:`apply` on the window ``img`` of a larger image that begins at ``start`` ((z,) y, x);
        ``section(z)`` gives that image's section z ``(C, Y, X)`` (2D: z = 0, the image). The bands are
        placed and the section means taken in the whole section, so the window of ``apply(image)``
        equals ``apply_window(window)``. Writes into ``img`` (a window the caller owns) and returns it
        as a plain tensor."""
        x = as_torch(img)
        out = x if x.ndim == 4 else x.unsqueeze(1)
        z0, y0, x0 = start if len(start) == 3 else (0, *start)
        depth, height, width = out.shape[1:]
        for z, vertical, begin, end in params.lines:
            if not z0 <= z < z0 + depth:
                continue
            whole = as_torch(section(z))
            shape = tuple(whole.shape[-2:])
            band, lo, hi = _band_window(shape, vertical, begin, end, params.iterations, x.device)
            # the band's rows run along the line (y for a vertical line), its columns across it
            (a0, na), (b0, nb) = ((y0, height), (x0, width)) if vertical else ((x0, width), (y0, height))
            c0, c1 = max(lo, b0), min(hi, b0 + nb)
            if c0 >= c1:
                continue
            band = band[a0 : a0 + na, c0 - lo : c1 - lo]
            # float sections are summed as they are (no float64 copy of the section); integers in float64
            total = whole.sum(dim=(-2, -1), dtype=None if x.dtype.is_floating_point else torch.float64)
            fill = cast_back(total.double() / (shape[0] * shape[1]), x.dtype)
            hit = out[:, z - z0]
            part = hit[..., c0 - b0 : c1 - b0] if vertical else hit[..., c0 - b0 : c1 - b0, :].mT
            for c in range(part.shape[0]):
                _fill(part[c], band, fill[c])
        return x


class RandMissingPartsd(RandEMDictTransform):
    """Dictionary wrapper of :class:`RandMissingParts` for image keys only (labels stay as they are).

    Args:
        keys: image keys. allow_missing_keys: skip absent keys.
        iterations, section_prob, prob: see the array class.
    """

    def __init__(
        self,
        keys: KeysCollection,
        iterations: int = 64,
        section_prob: float = 0.5,
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ):
        super().__init__(
            keys, RandMissingParts(iterations, section_prob, 1.0), prob, "bilinear", allow_missing_keys
        )


# ---------------------------------------------------------------- motion blur


@dataclass(frozen=True)
class MotionBlurParams:
    """Blurred sections, the direction of the line kernel and its size."""

    sections: tuple[int, ...]
    horizontal: bool
    kernel_size: int


def _reflect_index(length: int, before: int, after: int, device) -> torch.Tensor:
    """Indices ``-before .. length+after-1`` mirrored into [0, length) without edge repeat (cv2 default)."""
    return torch.as_tensor(reflect_indices(-before, length + after, length), device=device)


def _reflect_pad(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """``x`` (C, 1, Y, X) float extended along ``dim`` (-1 or -2) by ``before`` / ``after`` mirrored pixels
    (:func:`_reflect_index`). One mirror is torch's ``reflect`` pad (along x ~7x faster than an
    ``index_select``); wider pads, which mirror more than once, take the indices."""
    length = x.shape[dim]
    if max(before, after) < length:
        return F.pad(x, (before, after, 0, 0) if dim == -1 else (0, 0, before, after), mode="reflect")
    return x.index_select(dim, _reflect_index(length, before, after, x.device))


class RandMotionBlur(RandEMTransform):
    """Motion blur during imaging (PyTC ``MotionBlur``): a few sections are smeared along one direction.

    Pick min(``sections``, Z) distinct sections; convolve each with a k×k kernel whose centre
    row (horizontal, 50 %) or centre column (vertical) is 1/k, the rest 0 — a length-k box
    filter along x or y. Borders are mirrored without edge repeat (OpenCV's default ``reflect``).

    Args:
        sections: how many sections to blur (default 2).
        kernel_size: k (odd or even, >= 1; default 11).
        prob: probability of applying (default 0.5).

    Image only; input ``(C, Z, Y, X)``, shape and dtype kept (integer images are rounded).

    Example:
        >>> t = RandMotionBlur(sections=1, prob=1.0).set_random_state(0)
        >>> t(np.zeros((1, 4, 16, 16), np.float32)).shape
        torch.Size([1, 4, 16, 16])
    """

    def __init__(self, sections: int = 2, kernel_size: int = 11, prob: float = 0.5):
        super().__init__(prob, "bilinear")
        self.sections = check_int("sections", sections, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)

    def draw(self, spatial_shape: tuple[int, ...]) -> MotionBlurParams:
        depth = spatial_shape[0] if len(spatial_shape) >= 3 else 1
        picked = self.R.choice(depth, min(self.sections, depth), replace=False)
        horizontal = bool(self.R.rand() < 0.5)
        return MotionBlurParams(tuple(sorted(int(z) for z in picked)), horizontal, self.kernel_size)

    def contribution(self) -> str:
        return PATCHES

    def patches(self, params: MotionBlurParams, spatial_shape, read) -> list:
        """Each picked section, blurred: ``[(box, values)]`` from ``read(box)`` (see ``base.PATCHES``)."""
        height, width = spatial_shape[-2:]
        k = params.kernel_size
        before = (
            k // 2
        )  # the kernel's anchor (cv2: its centre), so output x averages x-before .. x-before+k-1
        dim = -1 if params.horizontal else -2
        out = []
        for z in params.sections:
            box = ((z, z + 1), (0, height), (0, width))
            sec, back = unsigned_as_signed(read(box), exact=False)
            work = sec if sec.dtype.is_floating_point else sec.float()
            length = work.shape[dim]
            padded = _reflect_pad(work, dim, before, k - 1 - before)
            # the box filter as a sum of k shifted views (several times faster than avg_pool1d on the CPU)
            blurred = padded.narrow(dim, 0, length).clone()
            for i in range(1, k):
                blurred += padded.narrow(dim, i, length)
            out.append((box, back(cast_back(blurred.div_(k), sec.dtype))))
        return out

    def apply(self, img, params: MotionBlurParams, mode: str):
        x = as_torch(img)
        x4 = x if x.ndim == 4 else x.unsqueeze(1)
        patches = self.patches(params, x.shape[1:], lambda box: x4[:, box[0][0] : box[0][1]])
        return like_input(paste_patches(x, patches), img)


class RandMotionBlurd(RandEMDictTransform):
    """Dictionary wrapper of :class:`RandMotionBlur` for image keys only.

    Args:
        keys: image keys. allow_missing_keys: skip absent keys.
        sections, kernel_size, prob: see the array class.
    """

    def __init__(
        self,
        keys: KeysCollection,
        sections: int = 2,
        kernel_size: int = 11,
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ):
        super().__init__(
            keys, RandMotionBlur(sections, kernel_size, 1.0), prob, "bilinear", allow_missing_keys
        )
