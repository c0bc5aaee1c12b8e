"""Point maps and the resampling that applies them (shared by the geometric transforms).

A point map says where each output voxel reads from: ``z`` (Zo,) source sections and ``yx``
(Yo, Xo, 2) source pixel positions shared by every section. :func:`resample` applies one; images
are interpolated linearly, labels and masks are moved by index gathering in their own dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .tensors import as_torch, cast_back, like_input, signed_view

__all__ = [
    "MODES",
    "check_img",
    "check_mode",
    "check_spatial",
    "identity_points",
    "pair_rows",
    "point_map_affine",
    "read_window",
    "resample",
    "resample_tensor",
    "rotate_xy",
    "rotate_xy_map",
    "rotation_points",
    "sample_linear",
    "sample_nearest",
    "sample_canvas",
    "sample_sections",
    "sample_windows",
    "section_indices",
    "shift_points",
    "to_float",
]

MODES = ("bilinear", "nearest")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else ValueError."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def check_img(img) -> None:
    """ValueError unless ``img`` is channel-first 2D or 3D."""
    if img.ndim not in (3, 4):
        raise ValueError(
            f"expected a channel-first (C, Y, X) or (C, Z, Y, X) array, got shape {tuple(img.shape)}"
        )


def check_spatial(spatial_shape) -> tuple[int, ...]:
    """``spatial_shape`` as a tuple if it is (Y, X) or (Z, Y, X), else ValueError."""
    if len(spatial_shape) not in (2, 3):
        raise ValueError(
            f"expected a channel-first (C, Y, X) or (C, Z, Y, X) array, got spatial shape {tuple(spatial_shape)}"
        )
    return tuple(spatial_shape)


def to_float(t: torch.Tensor) -> torch.Tensor:
    """``t`` if float32/float64, else a float32 copy (half precision too: interpolation wants the range)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def identity_points(
    spatial_shape: Sequence[int], device=None, start: Sequence[int] | None = None
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The identity point map of ``spatial_shape`` ((Z,) Y, X): ``(z, yx)`` with ``z`` (Z,) float
    section positions (``None`` for 2D) and ``yx`` (Y, X, 2) pixel positions; with ``start``, those of
    a window of that shape beginning at ``start`` (the same values as slicing a larger map)."""
    *zs, h, w = spatial_shape
    *z0, y0, x0 = start if start is not None else (0,) * len(spatial_shape)
    ys = torch.arange(y0, y0 + h, dtype=torch.float32, device=device)
    xs = torch.arange(x0, x0 + w, dtype=torch.float32, device=device)
    yx = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1)
    z = torch.arange(z0[0], z0[0] + zs[0], dtype=torch.float32, device=device) if zs else None
    return z, yx


def read_window(yx: torch.Tensor, size: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The rows and columns of a (H, W) input that bilinear or nearest samples at ``yx`` can touch:
    ``[floor(min), floor(max) + 2)`` per axis, clipped to the input (may be empty). Samples taken from
    that window, with ``yx`` shifted by its start, equal samples from the whole input."""
    out = []
    for a in range(2):
        v = yx[..., a]
        lo, hi = int(torch.floor(v.min())), int(torch.floor(v.max())) + 2
        out.append((min(max(lo, 0), size[a]), max(min(hi, size[a]), 0)))
    return out[0], out[1]


def pair_rows(yx: torch.Tensor, *pairs: Sequence[float]) -> tuple[torch.Tensor, ...]:
    """``yx`` (..., Xo, 2) as rows of (y, x) pairs (..., 2 Xo), and each ``(vy, vx)`` of ``pairs`` as a
    (2 Xo,) row in ``yx``'s dtype that applies ``vy`` to the y and ``vx`` to the x of every pair.

    A per-axis operation then takes one pass over the rows, with the same floats as indexing each axis
    (broadcasting a (2,) tensor over the last axis, or one pass per strided axis, is 4-7x slower)."""
    width = yx.shape[-2]
    rows = yx.reshape(*yx.shape[:-2], 2 * width)
    return rows, *(torch.tensor(list(p), dtype=yx.dtype, device=yx.device).repeat(width) for p in pairs)


def shift_points(yx: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """``yx - (dy, dx)``: positions ``yx`` (..., Xo, 2) in a window that starts at (``dy``, ``dx``)."""
    rows, shift = pair_rows(yx, (dy, dx))
    return (rows - shift).view(yx.shape)


def sample_linear(x4: torch.Tensor, yx: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``x4`` (1, N, H, W) float at pixel positions ``yx`` (Ho, Wo, 2), zero outside;
    a batch: ``x4`` (B, N, H, W) and ``yx`` (B, Ho, Wo, 2) give (B, N, Ho, Wo)."""
    h, w = x4.shape[-2:]
    # (y, x) scaled to [-1, 1], then swapped into grid_sample's (x, y) order
    rows, steps = pair_rows(yx, (2.0 / max(h - 1, 1), 2.0 / max(w - 1, 1)))
    scaled = (rows * steps).sub_(1.0).view(yx.shape)
    grid = torch.empty(yx.shape, dtype=x4.dtype, device=yx.device)
    grid[..., 0], grid[..., 1] = scaled[..., 1], scaled[..., 0]
    batched = yx.ndim == 4
    out = F.grid_sample(
        x4,
        grid if batched else grid[None],
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )
    return out if batched else out[0]


def section_indices(z: torch.Tensor, depth: int) -> list[int]:
    """Integer sections of a point map's ``z`` (rounded), or ValueError when one lies outside [0, depth)."""
    zi = torch.floor(z + 0.5).long().tolist()
    if zi and (min(zi) < 0 or max(zi) >= depth):
        raise ValueError(f"section map reads sections {zi} outside [0, {depth})")
    return zi


def sample_canvas(canvas: torch.Tensor, extents, zs, yxs, dtype: torch.dtype) -> torch.Tensor:
    """Bilinear samples of ``B`` windows at once, as one ``grid_sample``: window ``b`` fills the corner
    ``[:h, :w]`` of ``canvas[b]`` (B, C, Zw, Y, X) float (``extents[b]`` = (h, w); the rest may hold
    anything) and is read at its sections ``zs[b]`` (Zo,) and positions ``yxs[b]`` (Yo, Xo, 2), zero
    outside it. Only the canvas pixels a sample can touch beyond a window are zeroed; the numbers depend
    on the canvas size and the window's data only, so a sample alone and in a batch (one canvas size)
    give the same output. Returns (B, C, Zo, Yo, Xo) in ``dtype``, on the canvas' device."""
    batch, channels, depth, height, width = canvas.shape
    for b, ((h, w), yx) in enumerate(zip(extents, yxs, strict=True)):
        rows = min(int(torch.floor(yx[..., 0].max())) + 2, height)  # what the samples can touch
        cols = min(int(torch.floor(yx[..., 1].max())) + 2, width)
        canvas[b, :, :, h:rows, :cols] = 0
        canvas[b, :, :, : min(h, rows), w:cols] = 0
    grid = torch.stack([yx.to(canvas.device) for yx in yxs])
    out = sample_linear(canvas.view(batch, channels * depth, height, width), grid)
    out = cast_back(out, dtype).view(batch, channels, depth, *grid.shape[1:3])
    picks = [section_indices(z, depth) for z in zs]
    if all(p == list(range(depth)) for p in picks):
        return out
    if batch == 1 and picks[0] == list(range(depth - 1, -1, -1)):
        return torch.flip(signed_view(out), (2,)).view(dtype)
    chosen = signed_view(out).new_empty((batch, channels, len(picks[0]), *grid.shape[1:3]))
    for b, pick in enumerate(picks):
        torch.index_select(signed_view(out)[b], 1, torch.tensor(pick, device=canvas.device), out=chosen[b])
    return chosen.view(dtype)


def sample_windows(windows, zs, yxs, size: Sequence[int]) -> torch.Tensor:
    """:func:`sample_canvas` of ``B`` windows (C, Zw, h, w) (one Zw), each copied into the corner of a
    (Zw, *size) canvas slot, ``size`` (Y, X) at least every window's."""
    first = windows[0]
    work = torch.float64 if first.dtype == torch.float64 else torch.float32
    canvas = torch.empty((len(windows), *first.shape[:2], *size), dtype=work, device=first.device)
    for b, window in enumerate(windows):
        canvas[b, :, :, : window.shape[-2], : window.shape[-1]] = window
    return sample_canvas(canvas, [tuple(w.shape[-2:]) for w in windows], zs, yxs, first.dtype)


def sample_nearest(x3: torch.Tensor, yx: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Nearest samples of ``x3`` (N, H, W), any dtype, at pixel positions ``yx`` (Ho, Wo, 2), zero outside.

    ``cache``: a dict shared by calls with the same ``yx`` (e.g. a label and a mask) to build the
    flat indices once."""
    n, h, w = x3.shape
    key = (h, w, x3.device)
    if cache is not None and key in cache:
        flat, inside = cache[key]
    else:
        iy = torch.floor(yx[..., 0] + 0.5).long()
        ix = torch.floor(yx[..., 1] + 0.5).long()
        inside = ((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)).reshape(1, -1)
        flat = (iy.clamp_(0, h - 1) * w + ix.clamp_(0, w - 1)).reshape(1, -1)
        if cache is not None:
            cache[key] = flat, inside
    src = signed_view(x3).reshape(n, h * w)
    out = torch.gather(src, 1, flat.expand(n, -1))  # ~5x faster than index_select along the last axis
    if not bool(inside.all()):
        out.masked_fill_(~inside, 0)
    return out.view(x3.dtype).reshape(n, *yx.shape[:2])


def sample_sections(t: torch.Tensor, yx: torch.Tensor, mode: str, cache: dict | None = None) -> torch.Tensor:
    """Resample every section of ``t`` (C, [Z,] H, W) at the shared pixel positions ``yx``."""
    lead, (h, w) = t.shape[:-2], t.shape[-2:]
    if mode == "nearest":
        out = sample_nearest(t.reshape(-1, h, w), yx, cache)
    else:
        out = cast_back(sample_linear(to_float(t).reshape(1, -1, h, w), yx), t.dtype)
    return out.reshape(*lead, *yx.shape[:2])


def resample(
    img, z: torch.Tensor | None, yx: torch.Tensor, mode: str = "bilinear", cache: dict | None = None
):
    """Apply a point map: output section ``i`` and pixel ``(y, x)`` read input section ``z[i]`` (rounded)
    at ``yx[y, x]`` (linear or nearest), zero outside the input.

    Args:
        img: ``(C, Z, Y, X)`` (``z`` given) or ``(C, Y, X)`` (``z`` None), numpy or torch.
        z: ``(Zo,)`` source section per output section (integer valued), or ``None`` to keep sections.
        yx: ``(Yo, Xo, 2)`` source pixel positions, shared by all sections.
        mode: ``"bilinear"`` or ``"nearest"``.
        cache: a dict to share between calls with the same ``yx`` (nearest indices are built once).
    """
    check_img(img)
    return like_input(resample_tensor(as_torch(img), z, yx, mode, cache), img)


def resample_tensor(
    t: torch.Tensor,
    z: torch.Tensor | None,
    yx: torch.Tensor,
    mode: str = "bilinear",
    cache: dict | None = None,
) -> torch.Tensor:
    """:func:`resample` of a plain tensor ``t``, returning a plain tensor (no MONAI type conversion)."""
    yx = yx.to(t.device)
    if z is not None and t.ndim == 4:
        picks = section_indices(z, t.shape[1])
        first, n = picks[0] if picks else 0, len(picks)
        if picks == list(range(first, first + n)):  # a run of sections: a view, no copy
            t = t[:, first : first + n]
        elif picks == list(range(first, first - n, -1)):  # a reversed run: sample the run, flip the output
            out = sample_sections(t[:, first - n + 1 : first + 1], yx, check_mode(mode), cache)
            return torch.flip(signed_view(out), (1,)).view(out.dtype)
        else:
            t = t.index_select(1, torch.tensor(picks, device=t.device))
    return sample_sections(t, yx, check_mode(mode), cache)


def rotation_points(angle: float, spatial_shape, yx: torch.Tensor) -> torch.Tensor:
    """Where ``yx`` reads from under a rotation by ``angle`` degrees about the centre of (..., H, W)."""
    h, w = spatial_shape[-2:]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    dy, dx = yx[..., 0] - cy, yx[..., 1] - cx
    return torch.stack((cy + c * dy - s * dx, cx + s * dy + c * dx), -1)


def rotate_xy(
    x: torch.Tensor,
    angle: float,
    mode: str,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Rotate ``x`` (..., Y, X) by ``angle`` degrees about the yx centre, zero fill; with ``rows`` /
    ``cols`` ((lo, hi) each) only that part of the output (the same numbers, computed there only).

    ``nearest`` takes the source pixel rounded half to even and gathers it in the input dtype
    (label ids are never converted to float); anything else is bilinear, computed in float and
    cast back to the input dtype.
    """
    height, width = x.shape[-2:]
    (r0, r1), (c0, c1) = rows or (0, height), cols or (0, width)
    if angle == 0:
        return x[..., r0:r1, c0:c1].clone()
    return sample_sections(x, rotate_xy_map(x.shape[-2:], angle, mode, rows, cols, x.device), mode)


def rotate_xy_map(
    shape: Sequence[int],
    angle: float,
    mode: str,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    device=None,
) -> torch.Tensor:
    """The (rows, cols, 2) source positions :func:`rotate_xy` reads for a (Y, X) ``shape`` (rounded for
    ``nearest``), for sharing between calls on sections of one shape."""
    height, width = shape
    (r0, r1), (c0, c1) = rows or (0, height), cols or (0, width)
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cy, cx = (height - 1) / 2, (width - 1) / 2
    dy = torch.arange(r0, r1, dtype=torch.float32, device=device).sub_(cy)[:, None]
    dx = torch.arange(c0, c1, dtype=torch.float32, device=device).sub_(cx)[None, :]
    # the map of rotation_points, summed in another order: float32 rounding differs by an ulp, and
    # copy-paste / mis-alignment outputs (nearest ties included) are pinned to this order; written
    # straight into the pairs (no stack copy)
    yx = torch.empty((r1 - r0, c1 - c0, 2), dtype=torch.float32, device=device)
    torch.sub(dy * cos, dx * sin, out=yx[..., 0]).add_(cy)
    torch.add(dy * sin, dx * cos, out=yx[..., 1]).add_(cx)
    return yx.round_() if mode == "nearest" else yx


def point_map_affine(source_points, params, spatial_shape: Sequence[int]) -> np.ndarray:
    """The ``(n + 1, n + 1)`` matrix of an affine point map ``source_points(params, shape, z, yx)``:
    output voxel index ``(z, y, x)`` (2D: ``(y, x)``) -> input index, read off at the origin and the
    unit steps (z maps on its own, as every section shares the yx map)."""
    n = len(spatial_shape)
    yx = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    z = torch.tensor([0.0, 1.0], dtype=torch.float64) if n == 3 else None
    z_in, p = source_points(params, tuple(spatial_shape), z, yx)
    out = np.eye(n + 1)
    p = p[0].numpy()
    out[n - 2 : n, n] = p[0]
    out[n - 2 : n, n - 2] = p[1] - p[0]
    out[n - 2 : n, n - 1] = p[2] - p[0]
    if n == 3:
        out[0, 3], out[0, 0] = float(z_in[0]), float(z_in[1] - z_in[0])
    return out
