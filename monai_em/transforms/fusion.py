"""One pass per sample: EMAugmentor's plan of fused steps, built from what each transform declares.

A monai_em transform declares its contribution (``contribution()``, transforms/base.py):
``PATCHES`` (boxes of the image it rewrites), ``SECTIONS`` (a section map: for each output section
its input section, a turn, a yx cut and its size), ``WINDOW`` / ``SECTION_WINDOW`` (an image
operation that may act on only the window a resampling reads), ``POINTS`` (a point map shared by
the sections). :func:`plan` groups consecutive members into fused steps

    PATCHES*  SECTIONS*  (SECTION_WINDOW? WINDOW*)  POINTS+  [centre crop]

(patch, section and window members only where the group ends in the crop; patch and window keys
among the point keys; section keys equal to them) and leaves every other member a step of its own.
:func:`run_plan` runs unfused members through MONAI's ``apply_transform``, so an error names the
transform and the steps after a multi-sample transform run on each of its samples, as in ``Compose``.

A fused step draws every member in list order (the draws of running them one by one), composes the
section maps (:mod:`~monai_em.transforms.frames`; a turn after another map is applied on its own at
that point), chains the point maps back from the crop and reads each key once: labels and masks by
one nearest read per output section straight from the input, images through the window their crop
reads, with the patches written into it. :func:`run_plan_batch` does the same for a batch, each
sample with its own draws, reading every key of the batch at once.
"""

from __future__ import annotations

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
    spatial_shape_of,
)
from .frames import Patched, SectionMap, copy_into, section_part
from .resample import (
    check_img,
    identity_points,
    read_window,
    resample_tensor,
    sample_canvas,
    shift_points,
)
from .tensors import as_torch, like_input, signed_view

__all__ = ["FusedStep", "plan", "run_plan", "run_plan_batch"]


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
    interpolated key (:func:`~monai_em.transforms.resample.sample_canvas`).

    Each member is called once per sample, in sample order, and draws from its own RNG (the augmentor seeds
    its members apart, as MONAI's ``Compose`` does), so sample b gets the draws of the b-th per-sample call.
    Returns the samples and, per key, the (B, C, ...) tensor that holds every sample's output when the
    last step was a batched read (else nothing for that key). A step is read sample by sample when its
    samples differ in shape (:meth:`_Pass.layout`: a step without the crop, after per-sample section
    draws). ``one_kernel``: read each key by one kernel over the batch (default: on a GPU only; see
    :func:`_read_batch`).

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
        if not all(isinstance(p, _Pass) for p in passes) or len({p.layout() for p in passes}) > 1:
            # a step done on some samples, or samples whose draws (missing sections, mis-alignment) or
            # earlier members left them with different shapes: each sample is read on its own
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

    def layout(self) -> tuple:
        """The keys, their input shapes and the output shape: passes with one layout are read as a batch."""
        shapes = tuple((key, tuple(self.data[key].shape)) for key in self.keys)
        return shapes, self.canvas, None if self.z is None else len(self.z), tuple(self.yx.shape)

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
        """``key`` is read by a bilinear sample of its window in the canvas (:func:`sample_canvas`)."""
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
        section = (lambda k: smap.section(img, k)) if len(box) == 3 else (lambda k: section_part(img, None))
        for job, params in self.jobs[key]:
            window = as_torch(job.transform.apply_window(window, params, "bilinear", start, section))
        return window

    def window(self, key):
        """``(window, z, yx)``: :meth:`fill` of :meth:`box`, and the points in it (``z`` None for 2D)."""
        box = self.box(key)
        three = len(box) == 3
        z = None if self.z is None or not three else self.z - box[0][0]
        return self.fill(key, box), z, shift_points(self.yx, box[-2][0], box[-1][0])

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
            copy_into(slot, window)
        extents.append((r1 - r0, c1 - c0))
        zs.append(p.z - z0)
        yxs.append(shift_points(p.yx, r0, c0))
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


def _draw_applied(members, d: Mapping, shape: tuple[int, ...]) -> list[tuple[Any, Any]]:
    """``(member, params)`` of the members that have a key in ``d`` (a missing key raises unless allowed,
    as one by one) and whose draw applies (``params`` not None), drawn in list order."""
    drawn = []
    for t in members:
        if list(t.key_iterator(d)):
            params = _draw(t, shape)
            drawn += [(t, params)] if params is not None else []
    return drawn


def _draw(t: RandEMDictTransform, shape: tuple[int, ...]):
    """``t.sample(shape)``; an error keeps its type and gets a note naming ``t`` (one by one, MONAI's
    ``apply_transform`` names it)."""
    try:
        return t.sample(shape)
    except Exception as e:
        e.add_note(f"raised by {type(t).__name__} (keys {list(t.keys)}) drawing in EMAugmentor's fused pass")
        raise


def _prepare(step: FusedStep, data: Mapping[Hashable, Any], crop: Any) -> _Pass | dict:
    """Every draw of ``step`` on one sample (in list order, as running the members one by one) and the
    maps they make; a dict when none of the step's keys is in ``data`` (the step is done)."""
    d = dict(data)
    head = step.points[0]
    keys = [k for k in head.keys if k in d]
    if not keys:
        for t in (*step.patched, *step.sections, *step.windowed, *step.points):
            list(t.key_iterator(d))  # MONAI's missing-key error, unless allowed, as one by one
        return crop(d) if step.cropped else d
    shape = shape_in = spatial_shape_of(d, keys)
    patches = _draw_applied(step.patched, d, shape)
    sections = []
    for t in step.sections:
        list(t.key_iterator(d))  # a missing key raises unless allowed, as one by one
        params = _draw(t, shape)
        sections.append((t, params, shape))
        shape = shape if params is None else t.transform.output_shape(params, shape)
    live = _draw_applied(step.windowed, d, shape)
    drawn = []
    for t in step.points:
        list(t.key_iterator(d))  # a missing key raises unless allowed, as one by one
        drawn.append(_draw(t, shape))

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
