"""One pass per sample: EMAugmentor's plan of fused steps, built from what each transform declares.

A monai_em transform declares its contribution (``contribution()``, transforms/base.py):
``POINTS`` (a point map shared by the sections), ``SECTIONS`` (a section map: for each output
section its input section, a yx cut and its size), ``WINDOW`` / ``SECTION_WINDOW`` (an image
operation that may act on only the window a resampling reads). :func:`plan` groups consecutive
members into fused steps

    SECTIONS*  (SECTION_WINDOW? WINDOW*)  POINTS+  [centre crop]

(section and window members only where the group ends in the crop; window keys among the point
keys; section keys equal to them) and leaves every other member a step of its own. :func:`run_plan`
runs unfused members through MONAI's ``apply_transform``, so an error names the transform and the
steps after a multi-sample transform run on each of its samples, as in ``Compose``.

A fused step draws every member in list order (the draws of running them one by one), composes the
section maps (a draw that has none, e.g. a rotated mis-alignment, is applied on its own at that
point), chains the point maps back from the crop and reads each key once: labels and masks by one
nearest gather straight from the input, images through the window their crop reads.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import apply_transform

from .base import (
    PATCHES,
    POINTS,
    SECTION_WINDOW,
    SECTIONS,
    WINDOW,
    RandEMDictTransform,
    as_torch,
    like_input,
    signed_view,
    spatial_shape_of,
)
from .intensity import paste_patches
from .resample import (
    check_img,
    identity_points,
    read_window,
    resample_tensor,
    rotate_xy,
    rotate_xy_map,
    sample_canvas,
    sample_sections,
)

__all__ = ["FusedStep", "Patched", "SectionMap", "plan", "run_plan", "run_plan_batch"]


@dataclass(frozen=True)
class FusedStep:
    """Members that run as one pass: patches, section maps, window operations, point maps, then the crop."""

    sections: tuple[RandEMDictTransform, ...]
    windowed: tuple[RandEMDictTransform, ...]
    points: tuple[RandEMDictTransform, ...]
    cropped: bool
    patched: tuple[RandEMDictTransform, ...] = ()


def _role(t: Any) -> str | None:
    return t.contribution() if isinstance(t, RandEMDictTransform) else None


def _group_at(items: Sequence[Any], i: int, crop: Any) -> tuple[FusedStep | None, int]:
    """The fused step that starts at ``items[i]`` and the index after it, or ``(None, i)``."""
    k = i
    patched, sections, windowed, points = [], [], [], []
    while k < len(items) and _role(items[k]) == PATCHES:
        patched.append(items[k])
        k += 1
    while k < len(items) and _role(items[k]) == SECTIONS:
        sections.append(items[k])
        k += 1
    while k < len(items) and (
        _role(items[k]) == WINDOW or (_role(items[k]) == SECTION_WINDOW and not windowed)
    ):
        windowed.append(items[k])
        k += 1
    while k < len(items) and _role(items[k]) == POINTS:
        if points and (items[k].keys != points[0].keys or items[k].mode != points[0].mode):
            break
        points.append(items[k])
        k += 1
    cropped = k < len(items) and items[k] is crop
    if not points or ((patched or sections or windowed) and not cropped):
        return None, i
    if any(t.keys != points[0].keys for t in sections):
        return None, i
    if any(not set(t.keys) <= set(points[0].keys) for t in (*patched, *windowed)):
        return None, i
    if not (sections or windowed or cropped) and len(points) == 1:
        return None, i  # nothing to fuse
    step = FusedStep(tuple(sections), tuple(windowed), tuple(points), cropped, tuple(patched))
    return step, k + int(cropped)


def plan(items: Sequence[Any], crop: Any) -> list[Any]:
    """``items`` (the augmentor's transforms, ending with its ``crop``) as steps: fused groups and single members."""
    steps, i = [], 0
    while i < len(items):
        step, after = _group_at(items, i, crop)
        if step is None:
            steps.append(items[i])
            i += 1
        else:
            steps.append(step)
            i = after
    return steps


def run_plan(steps: Sequence[Any], data: Any, crop: Any, compose: Any) -> Any:
    """Run ``steps`` on ``data``; after a multi-sample member, the rest runs on each of its samples.

    ``compose``: the augmentor; its ``augmentations`` run through ``apply_transform`` with its
    ``map_items`` / ``unpack_items`` / ``log_stats``, its own tail (crop, smoothing) is called directly."""
    for n, step in enumerate(steps):
        if isinstance(data, list):
            return [run_plan(steps[n:], item, crop, compose) for item in data]
        data = (
            _apply_fused(step, data, crop)
            if isinstance(step, FusedStep)
            else _run_member(step, data, compose)
        )
    return data


def _run_member(step: Any, data: Any, compose: Any) -> Any:
    if not any(step is t for t in compose.augmentations):  # the augmentor's own crop / smoothing
        return step(data)
    return apply_transform(
        step,
        data,
        map_items=compose.map_items,
        unpack_items=compose.unpack_items,
        log_stats=compose.log_stats,
    )


def run_plan_batch(
    steps: Sequence[Any],
    batch: Mapping[Hashable, torch.Tensor],
    crop: Any,
    compose: Any,
    one_kernel: bool | None = None,
) -> tuple[list[dict], dict]:
    """:func:`run_plan` on every sample of ``batch`` (key -> (B, C, *spatial) tensors), each fused step read
    for the whole batch at once: one gather per nearest key over the batch tensor, one ``grid_sample`` per
    interpolated key (:func:`~monai_em.transforms.resample.sample_windows`).

    Each member is called once per sample, in sample order, and draws from its own RNG (the augmentor seeds
    its members apart, as MONAI's ``Compose`` does), so sample b gets the draws of the b-th per-sample call.
    Returns the samples and, per key, the (B, C, ...) tensor that holds every sample's output when the
    last step was a batched read (else nothing for that key). ``one_kernel``: read each key by one kernel
    over the batch (default: on a GPU only; see :func:`_read_batch`).

    Raises:
        ValueError: when a member returns several samples for one (``RandSpatialCropSamplesd``).
    """
    stacked = dict(batch)
    samples = [{k: v[b] for k, v in stacked.items()} for b in range(len(next(iter(stacked.values()))))]
    for step in steps:
        if not isinstance(step, FusedStep):
            samples = [_run_member(step, d, compose) for d in samples]
            if any(isinstance(d, list) for d in samples):
                raise ValueError(
                    f"augment_batch: {type(step).__name__} returned several samples for one; a batch keeps one "
                    "output per sample (call the augmentor per sample instead)"
                )
            stacked = {}
            continue
        views = {k: [d.get(k) for d in samples] for k in stacked}
        passes = [_prepare(step, d, crop) for d in samples]
        if not all(isinstance(p, _Pass) for p in passes):
            samples, stacked = [p if isinstance(p, dict) else _read_one(p, step, crop) for p in passes], {}
            continue
        caches: list[dict] = [{} for _ in passes]
        size = crop.size if step.cropped else None
        outs = {}
        for key in passes[0].keys:
            whole = stacked.get(key)
            if whole is not None and any(p.data.get(key) is not views[key][b] for b, p in enumerate(passes)):
                whole = None  # some sample's array is no longer its view of the batch tensor
            outs[key] = _read_batch(passes, key, size, caches, whole, one_kernel)
        samples = []
        for b, p in enumerate(passes):
            d = p.data
            for key in p.keys:
                d[key] = outs[key][b]
            samples.append(crop(d, done=p.keys) if step.cropped else d)
        stacked = outs
    return samples, stacked


def _read_one(p: _Pass, step: FusedStep, crop: Any) -> dict:
    cache: dict = {}
    size = crop.size if step.cropped else None
    return p.finish({key: p.read(key, size, cache) for key in p.keys}, crop, step.cropped)


def _read_batch(
    passes: Sequence[_Pass], key, size, caches: Sequence[dict], whole, one_kernel: bool | None = None
) -> torch.Tensor:
    """``key`` of every pass, read at once where possible: (B, C, *output) (``whole``: the (B, C, ...)
    batch tensor that the passes' arrays are views of, or None). ``one_kernel`` (default: on a GPU, where
    one kernel beats many): one ``gather`` per nearest key over the batch and one ``grid_sample`` per image
    key; otherwise (the CPU) each sample is read while its data is in cache, into the batch output (the
    same numbers: both kernels compute every output voxel on its own)."""
    if one_kernel is None:
        one_kernel = as_torch(passes[0].data[key]).device.type != "cpu"
    if all(p.gathers(key) for p in passes) and not one_kernel:
        first = passes[0]
        dtype, channels = as_torch(first.data[key]).dtype, first.data[key].shape[0]
        device = as_torch(first.data[key]).device
        out = torch.empty(
            (len(passes), channels, len(first.z), *first.yx.shape[:2]), dtype=dtype, device=device
        )
        for b, (p, c) in enumerate(zip(passes, caches, strict=True)):
            p.smap[key].sample_nearest(p.data[key], p.z, p.yx, c, out=out[b])
        return out
    if whole is not None and all(p.gathers(key) for p in passes):
        flats, masks = zip(
            *(
                p.smap[key].flat_indices(p.data[key], p.z, p.yx, c)
                for p, c in zip(passes, caches, strict=True)
            ),
            strict=True,
        )
        batch, channels = whole.shape[:2]
        index = torch.stack(flats)[:, None].expand(batch, channels, -1)
        out = torch.gather(signed_view(whole).reshape(batch, channels, -1), 2, index)
        depth_out, (height, width) = len(passes[0].z), passes[0].yx.shape[:2]
        if any(m is not None for m in masks):
            blank = torch.zeros((1, depth_out, height * width), dtype=torch.bool, device=whole.device)
            mask = torch.stack([blank if m is None else m for m in masks])
            out.view(batch, channels, depth_out, -1).masked_fill_(mask, 0)
        return out.view(whole.dtype).view(batch, channels, depth_out, height, width)
    if all(p.canvassed(key) for p in passes) and not one_kernel:
        return torch.stack([_sample_passes([p], key)[0] for p in passes])
    if (
        all(p.canvassed(key) for p in passes)
        and len({p.box(key)[0][1] - p.box(key)[0][0] for p in passes}) == 1
    ):
        return _sample_passes(passes, key)
    outs = [p.read(key, size, c) for p, c in zip(passes, caches, strict=True)]
    return torch.stack([signed_view(as_torch(o)) for o in outs]).view(as_torch(outs[0]).dtype)


# ------------------------------------------------------------------------------------ section maps


@dataclass(frozen=True)
class SectionMap:
    """Where each section of a (C, Z, Y, X) frame comes from: input section ``sources[k]``, turned by
    ``angles[k]`` degrees (None: not turned; as ``rotate_xy`` with ``turn_mode``), cut at ``origins[k]``
    (y, x) to ``size`` (Y, X). ``None`` sources: the identity (any shape)."""

    sources: tuple[int, ...] | None = None
    origins: tuple[tuple[int, int], ...] = ()
    size: tuple[int, int] = (0, 0)
    angles: tuple[float | None, ...] | None = None
    turn_mode: str = "nearest"

    def then(self, sources, origins, size, angles=None, turn_mode: str = "nearest") -> SectionMap:
        """This map followed by a transform's map (its sections and cuts in this map's frame; turns,
        interpolated with ``turn_mode``, only after the identity)."""
        if self.sources is None:
            origins = tuple(tuple(o) for o in origins)
            return SectionMap(tuple(sources), origins, tuple(size), angles, turn_mode)
        if angles is not None:
            raise ValueError("a section turn composes only as the first section map")
        composed = tuple(
            (self.origins[s][0] + o[0], self.origins[s][1] + o[1])
            for s, o in zip(sources, origins, strict=True)
        )
        turns = None if self.angles is None else tuple(self.angles[s] for s in sources)
        return SectionMap(
            tuple(self.sources[s] for s in sources), composed, tuple(size), turns, self.turn_mode
        )

    def take(self, img) -> torch.Tensor:
        """The mapped frame of ``img`` as a plain tensor (a view when it is one cut of consecutive
        sections, else one copy)."""
        t = as_torch(img)
        if self.sources is None:
            return t
        (h, w), (oy, ox) = self.size, self.origins[0]
        first, n = self.sources[0], len(self.sources)
        if (
            self.angles is None
            and self.sources == tuple(range(first, first + n))
            and len(set(self.origins)) == 1
        ):
            return t[:, first : first + n, oy : oy + h, ox : ox + w]
        s = signed_view(t)
        angles = self.angles or (None,) * n
        parts = []
        for z, (y, x), angle in zip(self.sources, self.origins, angles, strict=True):
            rows, cols = (y, y + h), (x, x + w)
            section = s[:, z] if angle is None else rotate_xy(s[:, z], angle, self.turn_mode, rows, cols)
            parts.append(section[:, y : y + h, x : x + w] if angle is None else section)
        return torch.stack(parts, 1).view(t.dtype)

    def frame_shape(self, img) -> tuple[int, ...]:
        """The spatial shape of the mapped frame of ``img``."""
        return tuple(img.shape[1:]) if self.sources is None else (len(self.sources), *self.size)

    def section(self, img, k: int, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None):
        """Section ``k`` ``(C, Y, X)`` of the mapped frame of ``img`` (3D tensor or :class:`Patched`), or
        its ``rows`` x ``cols`` ((lo, hi) each); a view of a tensor unless turned."""
        img = img if isinstance(img, Patched) else as_torch(img)
        if self.sources is None:
            return _part(img, k, rows, cols)
        (h, w), (y, x), z = self.size, self.origins[k], self.sources[k]
        rows, cols = rows or (0, h), cols or (0, w)
        if self.angles is None or self.angles[k] is None:
            return _part(img, z, (y + rows[0], y + rows[1]), (x + cols[0], x + cols[1]))
        cut = (y + rows[0], y + rows[1]), (x + cols[0], x + cols[1])
        return rotate_xy(signed_view(_part(img, z)), self.angles[k], self.turn_mode, *cut).view(img.dtype)

    def take_window(
        self, img, window: Sequence[tuple[int, int]], out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A copy of ``self.take(img)`` restricted to ``window`` (one (lo, hi) per spatial axis), copying
        only that part; ``img`` a tensor or :class:`Patched`; written into ``out`` when given (C, *window
        size, any strides; its dtype converts). Runs of consecutive sections with one cut and one turn are
        read (and turned) together."""
        img = img if isinstance(img, Patched) else as_torch(img)
        if out is None:
            out = torch.empty(
                (img.shape[0], *(hi - lo for lo, hi in window)), dtype=img.dtype, device=img.device
            )
        if len(window) == 2:  # 2D: no section map
            return _copy_into(out, _part(img, None, *window))
        (z0, z1), rows, cols = window
        if self.sources is None:
            return _copy_into(out, _region(img, (z0, z1), rows, cols))
        k, maps = z0, {}
        while k < z1:  # one run: sources z.., one origin, one angle
            n = 1
            while k + n < z1 and self._continues(k, n):
                n += 1
            (y, x), first = self.origins[k], self.sources[k]
            cut = (y + rows[0], y + rows[1]), (x + cols[0], x + cols[1])
            angle = None if self.angles is None else self.angles[k]
            if not angle:  # None (not turned) or 0 (rotate_xy copies)
                part = _region(img, (first, first + n), *cut)
            else:  # rotate_xy(whole sections)[cut], one map per angle and cut
                whole = signed_view(_region(img, (first, first + n)))
                if (angle, cut) not in maps:
                    maps[angle, cut] = rotate_xy_map(
                        whole.shape[-2:], angle, self.turn_mode, *cut, whole.device
                    )
                part = sample_sections(whole, maps[angle, cut], self.turn_mode).view(img.dtype)
            _copy_into(out[:, k - z0 : k - z0 + n], part)
            k += n
        return out

    def _continues(self, k: int, n: int) -> bool:
        """Section ``k + n`` extends the run of ``n`` sections from ``k`` (next source, same cut and turn)."""
        same_turn = self.angles is None or self.angles[k + n] == self.angles[k]
        return (
            self.sources[k + n] == self.sources[k] + n
            and self.origins[k + n] == self.origins[k]
            and same_turn
        )

    def sample_nearest(
        self, img, z: torch.Tensor, yx: torch.Tensor, cache: dict, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``resample(self.take(img), z, yx, "nearest")`` read straight from ``img`` (no frame copy), as a
        plain tensor (written into ``out``, (C, Zo, Yo, Xo) contiguous, when given).

        ``img`` (C, Z, Y, X); ``z`` (Zo,) sections of the mapped frame; ``yx`` (Yo, Xo, 2) positions in
        it; zero outside it. ``cache``: shared by keys of one shape (the indices are built once). One
        ``index_select`` per output section and channel with a (Yo * Xo,) index that stays in cache,
        from the section's first read voxel on."""
        t = as_torch(img)
        channels = t.shape[0]
        reads, outside = self._reads(t, z, yx, cache)
        src = signed_view(t).reshape(channels, -1)
        shape = (channels, len(reads), yx.shape[0] * yx.shape[1])
        out = src.new_empty(shape) if out is None else signed_view(out).view(shape)
        for k, (offset, index) in enumerate(reads):
            for c in range(channels):
                torch.index_select(src[c, offset:], 0, index, out=out[c, k])
        if outside is not None:
            out.masked_fill_(outside, 0)
        return out.view(t.dtype).reshape(channels, len(reads), *yx.shape[:2])

    def flat_indices(self, img, z: torch.Tensor, yx: torch.Tensor, cache: dict):
        """``(flat, outside)``: the (Zo * Yo * Xo,) indices into ``img`` (C, Z, Y, X) flattened per channel
        that :meth:`sample_nearest` reads, and its (1, Zo, Yo * Xo) mask of points outside (or None)."""
        reads, outside = self._reads(as_torch(img), z, yx, cache)
        flat = torch.cat([index + offset for offset, index in reads])
        return flat, None if outside is None else outside.expand(1, len(reads), -1)

    def _reads(self, t: torch.Tensor, z, yx, cache: dict):
        key = (self, *t.shape[1:], t.device)
        if key not in cache:
            cache[key] = self._indices(z.to(t.device), yx.to(t.device), *t.shape[1:])
        return cache[key]

    def _indices(self, z, yx, depth: int, height: int, width: int):
        """Per output section ``(offset, index)``: flat indices (Yo * Xo,) into a (depth, height, width)
        input from its voxel ``offset`` on (unturned sections share one index); and the points outside
        the mapped frame or the input (a bool mask broadcasting to (1, Zo, Yo * Xo); None when all are
        inside)."""
        identity = self.sources is None
        sources = tuple(range(depth)) if identity else self.sources
        origins = ((0, 0),) * depth if identity else self.origins
        h, w = (height, width) if identity else self.size
        zi = torch.floor(z + 0.5).long()
        if len(zi) and (int(zi.min()) < 0 or int(zi.max()) >= len(sources)):
            raise ValueError(f"section map reads sections {zi.tolist()} outside [0, {len(sources)})")
        iy = torch.floor(yx[..., 0] + 0.5).long()
        ix = torch.floor(yx[..., 1] + 0.5).long()
        outside = ((iy < 0) | (iy >= h) | (ix < 0) | (ix >= w)).reshape(1, 1, -1)
        flat = (iy.clamp_(0, h - 1) * width + ix.clamp_(0, w - 1)).reshape(-1)
        zs = zi.tolist()
        reads = [(sources[k] * (height * width) + origins[k][0] * width + origins[k][1], flat) for k in zs]
        turned = [] if self.angles is None else [(n, self.angles[k]) for n, k in enumerate(zs)]
        turned = [(n, a) for n, a in turned if a is not None]
        if turned:
            outside = outside.expand(1, len(zs), -1).clone()
            cy, cx = (height - 1) / 2, (width - 1) / 2
            for n, angle in turned:  # rotate_xy's map, in its own float32 order, at the pixels read
                cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                (oy, ox), source = origins[zs[n]], sources[zs[n]]
                dy = (iy.reshape(-1) + oy).float().sub_(cy)
                dx = (ix.reshape(-1) + ox).float().sub_(cx)
                qy = (dy * cos - dx * sin + cy).round_()
                qx = (dy * sin + dx * cos + cx).round_()
                outside[0, n] |= (qy < 0) | (qy >= height) | (qx < 0) | (qx >= width)
                qy, qx = qy.long().clamp_(0, height - 1), qx.long().clamp_(0, width - 1)
                reads[n] = (source * (height * width), qy * width + qx)
        return reads, outside if bool(outside.any()) else None


class Patched:
    """An image ``(C, [Z,] Y, X)`` with boxes rewritten by :data:`~monai_em.transforms.base.PATCHES`
    members, in order: a read copies only the region it asks for (a view where no box touches it)."""

    def __init__(self, img):
        self.t = as_torch(img)
        self.shape, self.dtype, self.device = tuple(self.t.shape), self.t.dtype, self.t.device
        self.patches: list[tuple[tuple[tuple[int, int], ...], torch.Tensor]] = []

    def read(self, box: Sequence[tuple[int, int]]) -> torch.Tensor:
        """The region ``box`` ((z0, z1), (y0, y1), (x0, x1); 2D: z is (0, 1)) as ``(C, dz, dy, dx)``."""
        t4 = self.t if self.t.ndim == 4 else self.t.unsqueeze(1)
        region = t4[(slice(None), *(slice(lo, hi) for lo, hi in box))]
        copied = False
        for where, values in self.patches:
            lo = [max(a, p) for (a, _), (p, _) in zip(box, where, strict=True)]
            hi = [min(b, q) for (_, b), (_, q) in zip(box, where, strict=True)]
            if any(a >= b for a, b in zip(lo, hi, strict=True)):
                continue
            if not copied:
                region, copied = region.clone(), True
            into = (slice(None), *(slice(a - o, b - o) for a, b, (o, _) in zip(lo, hi, box, strict=True)))
            src = (slice(None), *(slice(a - o, b - o) for a, b, (o, _) in zip(lo, hi, where, strict=True)))
            region[into] = values[src]
        return region

    def whole(self) -> torch.Tensor:
        """The whole image with every patch written (one copy)."""
        return paste_patches(self.t, self.patches)


def _region(
    img, zs: tuple[int, int], rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
):
    """Sections ``zs`` (lo, hi) of ``img`` (C, Z, Y, X; tensor or :class:`Patched`), cut to ``rows`` x ``cols``."""
    h, w = img.shape[-2:]
    rows, cols = rows or (0, h), cols or (0, w)
    if isinstance(img, Patched):
        return img.read((zs, rows, cols))
    return as_torch(img)[:, zs[0] : zs[1], rows[0] : rows[1], cols[0] : cols[1]]


def _copy_into(out: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``out`` with ``part`` copied in (the same shape; uint16/32/64 copied as their signed bits)."""
    if out.dtype == part.dtype:
        signed_view(out).copy_(signed_view(part))
    else:
        out.copy_(part)
    return out


def _part(img, z: int | None, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None):
    """Section ``z`` ``(C, Y, X)`` of ``img`` (a 2D image: ``z`` None), cut to ``rows`` x ``cols``."""
    h, w = img.shape[-2:]
    rows, cols = rows or (0, h), cols or (0, w)
    if isinstance(img, Patched):
        return img.read(((0, 1) if z is None else (z, z + 1), rows, cols))[:, 0]
    t = as_torch(img)
    return (t if z is None else t[:, z])[:, rows[0] : rows[1], cols[0] : cols[1]]


# ------------------------------------------------------------------------------------ a fused step


def _record(out, calls: Sequence[tuple[Any, Any, tuple[int, ...]]]):
    """``out`` with each ``(transform, params, input shape)`` call recorded, in order (MetaTensor only)."""
    for t, params, shape in calls:
        out = t.track(out, params, shape)
    return out


def _copy_record(value):
    """A copy of one ``applied_operations`` entry (its dicts and lists copied, the numbers and strings shared)."""
    if isinstance(value, dict):
        return {k: _copy_record(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_record(v) for v in value]
    return value


def _track(out, img, calls, crop, start, shape, cropped: bool, records: dict):
    """``out`` (a key's output, the MONAI type of its input ``img``) with ``calls`` and the crop recorded
    as if run one by one (MetaTensor only). Keys that came in without metadata (plain tensors, numpy)
    and share the calls get the same record: it is built once and copied to the others."""
    if not isinstance(out, MetaTensor) or not get_track_meta():
        return out
    memo = None
    if not isinstance(img, MetaTensor):
        memo = (tuple((id(t), id(p), tuple(s)) for t, p, s in calls), tuple(out.shape[1:]))
        if memo in records:
            done = records[memo]
            out.copy_meta_from(done)
            out.applied_operations = [_copy_record(op) for op in done.applied_operations]
            out.affine = done.affine.clone()
            return out
    out = _record(out, calls)
    out = crop.record(out, start, shape) if cropped else out
    if memo is not None:
        records[memo] = out
    return out


@dataclass
class _Pass:
    """One sample's fused step after every draw: the maps, and per key what it is read from."""

    data: dict  # the sample (keys with an interpolated section turn: already turned)
    keys: list  # the step's keys present in the sample
    source: dict  # key -> its array, or a Patched image
    smap: dict  # key -> its composed SectionMap
    pending: dict  # key -> section calls to record on its output
    jobs: dict  # key -> its window operations (member, params)
    mode: dict  # key -> "bilinear" | "nearest"
    calls: list  # (member, params) of the point maps
    shape: tuple  # spatial shape the point maps see
    start: tuple  # the crop's start in that shape
    z: torch.Tensor | None  # (Zo,) output sections' sources
    yx: torch.Tensor  # (Yo, Xo, 2) output pixels' sources
    identity: bool  # no point map moved anything
    canvas: tuple  # (Y, X) of the step's input: interpolated windows are sampled in a canvas of that size

    def gathers(self, key) -> bool:
        """``key`` is read by one nearest gather straight from its array."""
        img, src = self.data[key], self.source[key]
        plain = not self.jobs[key] and not isinstance(src, Patched) and self.smap[key].turn_mode == "nearest"
        return (
            plain
            and not self.identity
            and self.mode[key] == "nearest"
            and self.z is not None
            and img.ndim == 4
        )

    def windowed(self, key) -> bool:
        """``key`` is read through the window of its mapped frame that the points touch."""
        interpolated = not self.identity and self.mode[key] != "nearest"
        return bool(self.jobs[key]) or isinstance(self.source[key], Patched) or interpolated

    def canvassed(self, key) -> bool:
        """``key`` is read by a bilinear sample of its window in the canvas (:func:`sample_windows`)."""
        three = self.z is not None and self.data[key].ndim == 4
        return self.windowed(key) and three and not self.identity and self.mode[key] == "bilinear"

    def read(self, key, size, cache: dict) -> torch.Tensor:
        """``key``'s output as a plain tensor (``size``: the crop's, or None)."""
        smap, z, yx = self.smap[key], self.z, self.yx
        if self.canvassed(key):
            return _sample_passes([self], key)[0]
        if self.windowed(key):
            return _resample_window(*self.window(key), self.identity, self.mode[key])
        if self.gathers(key):
            return smap.sample_nearest(self.data[key], z, yx, cache)
        t = smap.take(self.data[key])
        if self.identity and size is not None:
            return t[(slice(None), *(slice(s, s + n) for s, n in zip(self.start, size, strict=True)))]
        if not self.identity:
            check_img(t)
            return resample_tensor(t, z, yx, self.mode[key])
        return t

    def box(self, key) -> tuple[tuple[int, int], ...]:
        """The part of ``key``'s mapped frame that the points read: (lo, hi) per spatial axis."""
        frame = self.smap[key].frame_shape(self.source[key])
        three = len(frame) == 3
        if self.z is not None and three:
            zi = torch.floor(self.z + 0.5).long()
            z0, z1 = max(int(zi.min()), 0), min(int(zi.max()) + 1, frame[0])
        else:
            z0, z1 = 0, 1
        (r0, r1), (c0, c1) = read_window(self.yx, frame[-2:])
        if r0 >= r1 or c0 >= c1 or z0 >= z1:  # nothing inside is read: any window will do
            z0, r0, c0 = 0, 0, 0
            z1, r1, c1 = (frame[0] if three else 1), frame[-2], frame[-1]
        return ((z0, z1), (r0, r1), (c0, c1)) if three else ((r0, r1), (c0, c1))

    def fill(self, key, box, out: torch.Tensor | None = None) -> torch.Tensor:
        """A copy of ``box`` of ``key``'s mapped frame (written into ``out`` when given) with its jobs
        applied: resampling it equals resampling the whole frame with the jobs applied first, as a
        bilinear or nearest sample only reads the pixels around it (zero outside the input stays zero)."""
        img, smap = self.source[key], self.smap[key]
        img = img if isinstance(img, Patched) else as_torch(img)
        window = smap.take_window(img, box, out)
        start = tuple(lo for lo, _ in box)
        section = (lambda k: smap.section(img, k)) if len(box) == 3 else (lambda k: _part(img, None))
        for job, params in self.jobs[key]:
            window = as_torch(job.transform.apply_window(window, params, "bilinear", start, section))
        return window

    def window(self, key):
        """``(window, z, yx)``: :meth:`fill` of :meth:`box`, and the points in it (``z`` None for 2D)."""
        box = self.box(key)
        three = len(box) == 3
        shift = torch.tensor([box[-2][0], box[-1][0]], dtype=self.yx.dtype)
        z = None if self.z is None or not three else self.z - box[0][0]
        return self.fill(key, box), z, self.yx - shift

    def finish(self, outs: Mapping[Hashable, torch.Tensor], crop: Any, cropped: bool) -> dict:
        """The sample with ``outs`` (plain tensors) as its keys' outputs, each recorded as if run one by one."""
        d, records = self.data, {}
        for key in self.keys:
            img = d[key]
            calls = [*self.pending[key], *((t, p, self.shape) for t, p in self.calls)]
            out = like_input(outs[key], img)
            d[key] = _track(out, img, calls, crop, self.start, self.shape, cropped, records)
        return crop(d, done=self.keys) if cropped else d  # other array keys get the plain centre crop


def _sample_passes(passes: Sequence[_Pass], key) -> torch.Tensor:
    """``key`` of every pass by one bilinear :func:`~monai_em.transforms.resample.sample_canvas`: each
    window is copied (a float image: its jobs applied in place) into its slot of one canvas of the
    step's input size (Y, X); (B, C, Zo, Yo, Xo). The windows must have one depth."""
    boxes = [p.box(key) for p in passes]
    first = passes[0]
    dtype, channels = as_torch(first.data[key]).dtype, first.data[key].shape[0]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    depth = boxes[0][0][1] - boxes[0][0][0]
    device = as_torch(first.data[key]).device
    canvas = torch.empty((len(passes), channels, depth, *first.canvas), dtype=work, device=device)
    extents, zs, yxs = [], [], []
    for b, (p, box) in enumerate(zip(passes, boxes, strict=True)):
        (z0, _), (r0, r1), (c0, c1) = box
        slot = canvas[b, :, :, : r1 - r0, : c1 - c0]
        window = p.fill(key, box, slot if dtype == work else None)
        if window.data_ptr() != slot.data_ptr() or window.stride() != slot.stride():
            _copy_into(slot, window)
        extents.append((r1 - r0, c1 - c0))
        zs.append(p.z - z0)
        yxs.append(p.yx - torch.tensor([r0, c0], dtype=p.yx.dtype))
    return sample_canvas(canvas, extents, zs, yxs, dtype)


def _wide_unsigned(img) -> bool:
    """uint16 / uint32 / uint64 data: interpolating it needs a wider signed copy (``unsigned_as_signed``)."""
    return as_torch(img).dtype in (torch.uint16, torch.uint32, torch.uint64)


def _resample_window(window: torch.Tensor, z, yx, identity: bool, mode: str) -> torch.Tensor:
    """A window from :meth:`_Pass.window` resampled at its points (the crop: just cut)."""
    if identity:
        lead = (slice(None), slice(0, len(z))) if z is not None else (slice(None),)
        return window[(*lead, slice(0, yx.shape[0]), slice(0, yx.shape[1]))]
    return resample_tensor(window, z, yx, mode)


def _prepare(step: FusedStep, data: Mapping[Hashable, Any], crop: Any) -> _Pass | dict:
    """Every draw of ``step`` on one sample (in list order, as running the members one by one) and the
    maps they make; a dict when none of the step's keys is in ``data`` (the step is done)."""
    d = dict(data)
    head = step.points[0]
    keys = [k for k in head.keys if k in d]
    if not keys:
        if not head.allow_missing_keys:
            list(head.key_iterator(d))  # MONAI's missing-key error
        return crop(d) if step.cropped else d
    shape = shape_in = spatial_shape_of(d, keys)
    patches = []
    for t in step.patched:
        if list(t.key_iterator(d)):  # a missing key raises unless allowed, as one by one
            params = t.sample(shape)
            patches += [(t, params)] if params is not None else []
    sections = []
    for t in step.sections:
        list(t.key_iterator(d))  # a missing key raises unless allowed, as one by one
        params = t.sample(shape)
        sections.append((t, params, shape))
        shape = shape if params is None else t.transform.output_shape(params, shape)
    live = []
    for t in step.windowed:
        if list(t.key_iterator(d)):  # a missing key raises unless allowed, as one by one
            params = t.sample(shape)
            live += [(t, params)] if params is not None else []
    drawn = [t.sample(shape) for t in step.points]

    # per key: what it is read from (patched keys: the boxes each patch member rewrites, computed from
    # the image with the earlier ones written), the composed section map and the calls to record
    source: dict[Hashable, Any] = {key: d[key] for key in keys}
    for key in keys:
        for t, params in ((t, p) for t, p in patches if key in t.keys):
            if not isinstance(source[key], Patched):
                source[key] = Patched(d[key])
            source[key].patches += t.transform.patches(params, shape_in, source[key].read)
    smap = {key: SectionMap() for key in keys}
    pending: dict[Hashable, list] = {key: [] for key in keys}
    for t, params, in_shape in sections:
        parts = None if params is None else t.transform.section_map(params, in_shape)
        mode_of = dict(zip(t.keys, t.mode, strict=True))
        for key in keys:
            turned = parts is not None and parts[3] is not None
            turn_mode = t.key_mode(key, d[key], mode_of[key]) if turned else "nearest"
            if parts is None and params is None:
                pending[key].append((t, params, in_shape))
            elif (
                parts is None
                or (
                    turned
                    and (smap[key].sources is not None or (turn_mode != "nearest" and _wide_unsigned(d[key])))
                )
            ):  # no map for this key (a turn after other maps, or interpolating wide unsigned ints): apply it here
                given = source[key].whole() if isinstance(source[key], Patched) else d[key]
                img = _record(like_input(smap[key].take(given), d[key]), pending[key])
                d[key] = source[key] = t.apply_key(img, params, t.key_mode(key, img, mode_of[key]))
                smap[key], pending[key] = SectionMap(), []
            else:
                smap[key] = smap[key].then(*parts, turn_mode=turn_mode)
                pending[key].append((t, params, in_shape))

    start = crop.window(keys[0], (0, *shape)) if step.cropped else (0,) * len(shape)
    z, yx = identity_points(crop.size if step.cropped else shape, start=start)
    identity = True
    for t, params in zip(reversed(step.points), reversed(drawn), strict=True):
        if params is not None:
            z, yx = t.transform.source_points(params, shape, z, yx)
            identity = False
    mode_of = dict(zip(head.keys, head.mode, strict=True))
    mover = next((t for t in step.points if t.transform.geometric), head)  # flips alone move voxels exactly
    modes = {key: mover.key_mode(key, d[key], mode_of[key]) for key in keys}
    jobs = {key: [(t, p) for t, p in live if key in t.keys] for key in keys}
    calls = list(zip(step.points, drawn, strict=True))
    canvas = tuple(shape_in[-2:])
    return _Pass(d, keys, source, smap, pending, jobs, modes, calls, shape, start, z, yx, identity, canvas)


def _apply_fused(step: FusedStep, data: Mapping[Hashable, Any], crop: Any) -> dict:
    done = _prepare(step, data, crop)
    if not isinstance(done, _Pass):
        return done
    cache: dict = {}  # nearest indices shared by the label and mask keys
    size = crop.size if step.cropped else None
    return done.finish({key: done.read(key, size, cache) for key in done.keys}, crop, step.cropped)
