"""Where a fused pass reads from: section maps over an input and images with rewritten boxes.

:class:`SectionMap` composes the section maps of mis-alignment and missing sections (per output
section: its input section, a turn, a yx cut) and reads through them without copying the frame: a
window of it (:meth:`SectionMap.take_window`), or labels and masks by one nearest read per output
section (:meth:`SectionMap.sample_nearest`). :class:`Patched` is an image with the boxes that cut
noise, cut blur and motion blur rewrite (``base.PATCHES``), read by region.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .intensity import paste_patches
from .resample import rotate_xy, rotate_xy_map, sample_sections, section_indices
from .tensors import as_torch, signed_view

__all__ = ["Patched", "SectionMap", "copy_into", "section_part"]


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
            return section_part(img, k, rows, cols)
        (h, w), (y, x), z = self.size, self.origins[k], self.sources[k]
        rows, cols = rows or (0, h), cols or (0, w)
        if self.angles is None or self.angles[k] is None:
            return section_part(img, z, (y + rows[0], y + rows[1]), (x + cols[0], x + cols[1]))
        cut = (y + rows[0], y + rows[1]), (x + cols[0], x + cols[1])
        return rotate_xy(signed_view(section_part(img, z)), self.angles[k], self.turn_mode, *cut).view(
            img.dtype
        )

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
            return copy_into(out, section_part(img, None, *window))
        (z0, z1), rows, cols = window
        if self.sources is None:
            return copy_into(out, _region(img, (z0, z1), rows, cols))
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
            copy_into(out[:, k - z0 : k - z0 + n], part)
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
        it; zero outside it. ``cache``: shared by keys of one shape (the indices are built once). Per
        output section and channel, the box of the input it reads is copied row by row into a buffer
        (a sequential read the memory prefetches: gathering straight from a sample not in cache waits
        on memory, ~2.5x longer) and gathered by one ``index_select`` with a (Yo * Xo,) index."""
        t = as_torch(img)
        channels = t.shape[0]
        reads, outside = self._reads(t, z, yx, cache)
        src = signed_view(t)
        shape = (channels, len(reads), yx.shape[0] * yx.shape[1])
        out = src.new_empty(shape) if out is None else signed_view(out).view(shape)
        buffer = src.new_empty(max(r.rows * r.cols for r in reads)) if reads else None
        for k, r in enumerate(reads):
            box = buffer[: r.rows * r.cols].view(r.rows, r.cols)
            for c in range(channels):
                box.copy_(src[c, r.section, r.top : r.top + r.rows, r.left : r.left + r.cols])
                torch.index_select(buffer[: r.rows * r.cols], 0, r.index, out=out[c, k])
        if outside is not None:
            out.masked_fill_(outside, 0)
        return out.view(t.dtype).reshape(channels, len(reads), *yx.shape[:2])

    def flat_indices(self, img, z: torch.Tensor, yx: torch.Tensor, cache: dict):
        """``(flat, outside)``: the (Zo * Yo * Xo,) indices into ``img`` (C, Z, Y, X) flattened per channel
        that :meth:`sample_nearest` reads, and its (1, Zo, Yo * Xo) mask of points outside (or None)."""
        t = as_torch(img)
        key = ("flat", self, *t.shape[1:], t.device)
        if key not in cache:  # built once for the keys of one shape, like the reads
            reads, outside = self._reads(t, z, yx, cache)
            height, width = t.shape[-2:]
            in_section = {}  # unturned sections share one index: turn it into section offsets once
            for r in reads:
                if id(r.index) not in in_section:
                    in_section[id(r.index)] = r.in_section(width)
            flat = torch.cat([in_section[id(r.index)] + r.start(height, width) for r in reads])
            cache[key] = flat, None if outside is None else outside.expand(1, len(reads), -1)
        return cache[key]

    def _reads(self, t: torch.Tensor, z, yx, cache: dict):
        key = (self, *t.shape[1:], t.device)
        if key not in cache:
            cache[key] = self._indices(z.to(t.device), yx.to(t.device), *t.shape[1:])
        return cache[key]

    def _indices(self, z, yx, depth: int, height: int, width: int):
        """Per output section a :class:`_Read` of a (depth, height, width) input (unturned sections share
        one index); and the points outside the mapped frame or the input (a bool mask broadcasting to
        (1, Zo, Yo * Xo); None when all are inside)."""
        identity = self.sources is None
        sources = tuple(range(depth)) if identity else self.sources
        origins = ((0, 0),) * depth if identity else self.origins
        h, w = (height, width) if identity else self.size
        zs = section_indices(z, len(sources))
        iy = torch.floor(yx[..., 0] + 0.5).long().reshape(-1)
        ix = torch.floor(yx[..., 1] + 0.5).long().reshape(-1)
        shared, off_frame = _Read.within(0, iy, ix, h, w)  # iy, ix now inside the frame
        outside = None if off_frame is None else off_frame.reshape(1, 1, -1)
        reads = [shared.moved(sources[k], *origins[k]) for k in zs]
        turned = [] if self.angles is None else [(n, self.angles[k]) for n, k in enumerate(zs)]
        turned = [(n, a) for n, a in turned if a is not None]
        cy, cx = (height - 1) / 2, (width - 1) / 2
        turned_out = {}  # output section -> (N,) points its turn takes out of the input
        for n, angle in turned:  # rotate_xy's map, in its own float32 order, at the pixels read
            cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            (oy, ox), source = origins[zs[n]], sources[zs[n]]
            dy = (iy + oy).float().sub_(cy)
            dx = (ix + ox).float().sub_(cx)
            qy = (dy * cos - dx * sin + cy).round_()
            qx = (dy * sin + dx * cos + cx).round_()
            reads[n], off_input = _Read.within(source, qy.long(), qx.long(), height, width)
            if off_input is not None:
                turned_out[n] = off_input
        if turned_out:
            blank = torch.zeros((1, 1, iy.numel()), dtype=torch.bool, device=iy.device)
            outside = (blank if outside is None else outside).expand(1, len(zs), -1).clone()
            for n, out in turned_out.items():
                outside[0, n] |= out
        return reads, outside


@dataclass(frozen=True, eq=False)
class _Read:
    """What one output section reads: the box ``rows`` x ``cols`` from (``top``, ``left``) of input
    section ``section``, and ``index`` (N,) into that box flattened."""

    section: int
    top: int
    left: int
    rows: int
    cols: int
    index: torch.Tensor

    @staticmethod
    def of(section: int, iy: torch.Tensor, ix: torch.Tensor) -> _Read:
        """The read of the pixels (``iy``, ``ix``) (N,) each of ``section``; its box may leave the input
        (see :meth:`inside`)."""
        if iy.numel() == 0:
            return _Read(section, 0, 0, 0, 0, iy)
        top, bottom, left, right = torch.stack([*torch.aminmax(iy), *torch.aminmax(ix)]).tolist()  # one sync
        rows, cols = bottom + 1 - top, right + 1 - left
        return _Read(section, top, left, rows, cols, ix.add(iy, alpha=cols).sub_(top * cols + left))

    @staticmethod
    def within(section: int, iy: torch.Tensor, ix: torch.Tensor, height: int, width: int):
        """``(read, outside)``: :meth:`of` the pixels (``iy``, ``ix``) (N,) each, those outside a (height,
        width) section moved to the nearest inside (``iy``, ``ix`` clamped in place), and the (N,) mask of
        the ones that were outside (None when none was)."""
        read = _Read.of(section, iy, ix)
        if read.inside(height, width):
            return read, None
        outside = (iy < 0) | (iy >= height) | (ix < 0) | (ix >= width)
        return _Read.of(section, iy.clamp_(0, height - 1), ix.clamp_(0, width - 1)), outside

    def inside(self, height: int, width: int) -> bool:
        """The box lies inside a (height, width) section."""
        return (
            self.top >= 0
            and self.left >= 0
            and self.top + self.rows <= height
            and self.left + self.cols <= width
        )

    def moved(self, section: int, dy: int, dx: int) -> _Read:
        """The same read from ``section``, its box shifted by (``dy``, ``dx``)."""
        return _Read(section, self.top + dy, self.left + dx, self.rows, self.cols, self.index)

    def in_section(self, width: int) -> torch.Tensor:
        """``index`` as flat indices into a section ``width`` wide, from the box's corner (add :meth:`start`)."""
        rows, cols = self.index.div(self.cols, rounding_mode="floor"), self.index.remainder(self.cols)
        return rows.mul_(width).add_(cols)

    def start(self, height: int, width: int) -> int:
        """The flat index of the box's corner in a (Z, height, width) input."""
        return (self.section * height + self.top) * width + self.left


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


def copy_into(out: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``out`` with ``part`` copied in (the same shape; uint16/32/64 copied as their signed bits)."""
    if out.dtype == part.dtype:
        signed_view(out).copy_(signed_view(part))
    else:
        out.copy_(part)
    return out


def section_part(
    img, z: int | None, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
):
    """Section ``z`` ``(C, Y, X)`` of ``img`` (a 2D image: ``z`` None), cut to ``rows`` x ``cols``."""
    if z is None and not isinstance(img, Patched):  # a Patched 2D image reads as one section
        img = as_torch(img).unsqueeze(1)
    return _region(img, (0, 1) if z is None else (z, z + 1), rows, cols)[:, 0]
