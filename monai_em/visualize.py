"""Pictures people look at: a section with its label overlaid, panels side by side (PNG, no plotting library)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["label_colors", "overlay", "save_panels", "to_uint8"]


def to_uint8(section) -> np.ndarray:
    """A ``(Y, X)`` array (any dtype, numpy or torch) scaled to uint8 by its own min/max (uint8 kept)."""
    a = np.asarray(section.detach().cpu() if hasattr(section, "detach") else section)
    if a.ndim != 2:
        raise ValueError(f"expected a (Y, X) section, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros(a.shape, np.uint8) if hi <= lo else np.rint((a - lo) / (hi - lo) * 255).astype(np.uint8)


def label_colors(label: np.ndarray) -> np.ndarray:
    """``(Y, X)`` ids -> ``(Y, X, 3)`` uint8 colours, stable per id (hash of the id), black for 0."""
    ids = np.asarray(label).astype(np.uint64)
    h = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(255) for s in (16, 8, 0)], axis=-1).astype(np.uint8)
    rgb = (rgb // 2 + 100).astype(np.uint8)  # keep colours light enough to read over EM
    rgb[ids == 0] = 0
    return rgb


def overlay(image, label=None, alpha: float = 0.45) -> np.ndarray:
    """Grey ``(Y, X)`` section with ``label`` (ids, 0 = none) blended on top -> ``(Y, X, 3)`` uint8."""
    grey = np.repeat(to_uint8(image)[..., None], 3, axis=-1).astype(np.float32)
    if label is None:
        return grey.astype(np.uint8)
    lab = np.asarray(label.detach().cpu() if hasattr(label, "detach") else label)
    if lab.shape != grey.shape[:2]:
        raise ValueError(f"label shape {lab.shape} differs from image shape {grey.shape[:2]}")
    colors = label_colors(lab).astype(np.float32)
    fg = (lab != 0)[..., None]
    return np.where(fg, (1 - alpha) * grey + alpha * colors, grey).astype(np.uint8)


def save_panels(
    panels: Sequence[np.ndarray], titles: Sequence[str], path: str | os.PathLike, gap: int = 4
) -> None:
    """Save ``(Y, X)`` or ``(Y, X, 3)`` uint8 panels side by side with a title above each."""
    panels = [np.repeat(p[..., None], 3, -1) if p.ndim == 2 else p for p in map(np.asarray, panels)]
    height = max(p.shape[0] for p in panels) + 16
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for panel, title in zip(panels, titles, strict=True):
        canvas.paste(Image.fromarray(panel.astype(np.uint8)), (x, 16))
        draw.text((x + 2, 2), title, fill="black")
        x += panel.shape[1] + gap
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    canvas.save(path)
