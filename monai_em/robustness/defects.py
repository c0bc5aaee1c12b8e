"""Real serial-section EM defects at controlled rates: the test side of the augmentation ablation.

A test volume ``(Z, Y, X)`` and its instance labels are corrupted with one defect kind (or all of
them mixed) on exactly ``n = min(round(rate * Z), Z - 1)`` sections, chosen without replacement
among sections ``1 .. Z-1`` (section 0 stays intact, so every defect has an intact neighbour). All
draws come from ``numpy.random.default_rng(seed)``: the same seed gives the same corruption, and
nothing else is touched. This code path shares nothing with ``monai_em.transforms`` (the training
augmentations), and each kind draws from a different distribution than its training counterpart:

==================  ==========================================================  ===========================================
kind                this benchmark (test)                                       training augmentation (monai_em defaults)
==================  ==========================================================  ===========================================
``slip``            the section alone moves by ``6-12`` px (uniform), in a      one slip or step per sample, per-axis shift
                    uniform direction; several per volume                       U{0..15} px, or a rotation
``translation``     the stack moves from the section on by ``4-8`` px (uniform  (same transform as above)
                    magnitude, uniform direction): steps add up to a drift
``missing_section`` the section is black (0): acquired but empty                the section is deleted (Z shrinks)
``missing_part``    the part of the section on one side of a random straight    a band of half-width 64 px along a border-
                    line, ``15-40 %`` of its area, is black (0)                 to-border line, filled with the section mean
``blur``            isotropic in-plane Gaussian, sigma ``1.5-3`` px (focus)     11-px line kernel (motion), CutBlur boxes
``contrast``        ``x -> m + g (x - m) + b`` about the section mean m, gain   contrast 1 +- 0.15, brightness +- 0.15,
                    g ``0.5-0.67`` or ``1.5-2`` (log-uniform, 50/50), offset    gamma 2^U(-1, 1), per section or volume
                    b ``+-(0.04-0.12)`` of the grey range
``combined``        each chosen section gets one of the six kinds above,        (the whole list)
                    uniformly
==================  ==========================================================  ===========================================

Labels: a defect that moves content (``slip``, ``translation``) moves the labels with it, by the
same integer shift (mirrored at the borders, as the image is), so the ground truth stays the true
objects under each voxel. Every other defect leaves the labels alone: the tissue is still there, the
image of it is lost or degraded, and a robust model should still segment it.

Example:
    >>> img, lab = np.zeros((10, 32, 32), np.uint8) + 100, np.ones((10, 32, 32), np.uint32)
    >>> out = corrupt(img, lab, "missing_section", rate=0.2, seed=0)
    >>> sorted(d.section for d in out.defects), int((out.image == 0).all(axis=(1, 2)).sum())
    ([6, 7], 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..data.volume import ArrayVolume

__all__ = ["KINDS", "DEFECTS", "Corrupted", "Defect", "apply_defects", "corrupt", "draw_defects"]

#: the single defect kinds
DEFECTS = ("slip", "translation", "missing_section", "missing_part", "blur", "contrast")
#: every kind :func:`corrupt` accepts
KINDS = (*DEFECTS, "combined")

SLIP_PX = (6.0, 12.0)
STEP_PX = (4.0, 8.0)
PART_AREA = (0.15, 0.40)
BLUR_SIGMA = (1.5, 3.0)
GAIN_LOG2 = (math.log2(1.5), 1.0)  # |log2 gain|: gain in [1.5, 2] or [0.5, 0.67]
OFFSET = (0.04, 0.12)  # |offset| as a fraction of the grey range


@dataclass(frozen=True)
class Defect:
    """One altered section. ``shift``: (dy, dx) px (``slip``: this section; ``translation``: a step for
    this section and every later one); ``angle`` (radians) / ``area``: the cut line of ``missing_part``;
    ``sigma``: ``blur``; ``gain`` / ``offset`` (fraction of the grey range): ``contrast``."""

    kind: str
    section: int
    shift: tuple[int, int] = (0, 0)
    angle: float = 0.0
    area: float = 0.0
    sigma: float = 0.0
    gain: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class Corrupted:
    """A corrupted ``(Z, Y, X)`` image, its labels (moved where content moved) and the defects applied."""

    image: np.ndarray
    label: np.ndarray | None
    defects: tuple[Defect, ...]


def _shift(rng: np.random.Generator, low_high: tuple[float, float]) -> tuple[int, int]:
    magnitude, direction = rng.uniform(*low_high), rng.uniform(0.0, 2.0 * math.pi)
    return int(round(magnitude * math.sin(direction))), int(round(magnitude * math.cos(direction)))


def _draw_one(rng: np.random.Generator, kind: str, section: int) -> Defect:
    if kind == "slip":
        return Defect(kind, section, shift=_shift(rng, SLIP_PX))
    if kind == "translation":
        return Defect(kind, section, shift=_shift(rng, STEP_PX))
    if kind == "missing_part":
        return Defect(kind, section, angle=rng.uniform(0.0, 2.0 * math.pi), area=rng.uniform(*PART_AREA))
    if kind == "blur":
        return Defect(kind, section, sigma=rng.uniform(*BLUR_SIGMA))
    if kind == "contrast":
        gain = 2.0 ** (rng.choice((-1.0, 1.0)) * rng.uniform(*GAIN_LOG2))
        return Defect(
            kind, section, gain=float(gain), offset=float(rng.choice((-1.0, 1.0)) * rng.uniform(*OFFSET))
        )
    return Defect(kind, section)  # missing_section


def draw_defects(num_sections: int, kind: str, rate: float, seed: int) -> tuple[Defect, ...]:
    """The defects of ``kind`` for a stack of ``num_sections`` at ``rate``, sorted by section.

    Args:
        num_sections: Z of the stack (>= 2 for any defect).
        kind: one of :data:`KINDS`.
        rate: fraction of the sections altered, in [0, 1]: ``min(round(rate * Z), Z - 1)`` of them.
        seed: seed of the ``numpy.random.Generator`` every draw comes from.
    """
    if kind not in KINDS:
        raise ValueError(f"defect kind must be one of {KINDS}, got {kind!r}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"defect rate must lie in [0, 1], got {rate!r}")
    if int(num_sections) < 1:
        raise ValueError(f"num_sections must be positive, got {num_sections!r}")
    rng = np.random.default_rng(seed)
    n = min(int(round(rate * num_sections)), num_sections - 1)
    sections = np.sort(rng.choice(np.arange(1, num_sections), size=n, replace=False)) if n else []
    kinds = [DEFECTS[int(i)] for i in rng.integers(0, len(DEFECTS), n)] if kind == "combined" else [kind] * n
    return tuple(_draw_one(rng, k, int(z)) for k, z in zip(kinds, sections, strict=True))


def _moved(volume: np.ndarray, z: int, shift: tuple[int, int]) -> np.ndarray:
    """Section ``z`` with its content moved by ``shift`` = (dy, dx): out[y, x] = in[y - dy, x - dx], mirrored."""
    _, h, w = volume.shape
    dy, dx = shift
    return ArrayVolume(volume).read(((z, z + 1), (-dy, h - dy), (-dx, w - dx)))[0]


def _half_plane(shape: tuple[int, int], angle: float, area: float) -> np.ndarray:
    """The pixels on the far side of a line at ``angle`` that cut off a fraction ``area`` of the section."""
    yy, xx = np.indices(shape, dtype=np.float64)
    along = yy * math.sin(angle) + xx * math.cos(angle)
    return along >= np.quantile(along, 1.0 - area)


def _grey_range(dtype: np.dtype) -> tuple[float, float]:
    return (
        (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max))
        if np.issubdtype(dtype, np.integer)
        else (0.0, 1.0)
    )


def apply_defects(image, label, defects) -> Corrupted:
    """Apply ``defects`` (from :func:`draw_defects`) to a ``(Z, Y, X)`` image and its labels (or None).

    Integer images are rounded and clipped to their dtype, float images (in [0, 1]) clipped to [0, 1];
    shape and dtypes are kept. Shifts move image and labels alike; the rest change the image only.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (Z, Y, X), got shape {image.shape}")
    if label is not None and np.shape(label) != image.shape:
        raise ValueError(f"label shape {np.shape(label)} differs from image shape {image.shape}")
    defects = tuple(defects)
    for d in defects:
        if not 0 <= d.section < image.shape[0]:
            raise ValueError(
                f"defect {d.kind!r} at section {d.section} is outside the {image.shape[0]} sections"
            )
    offsets = np.zeros((image.shape[0], 2), np.int64)
    for d in defects:
        if d.kind == "translation":
            offsets[d.section :] += d.shift
        elif d.kind == "slip":
            offsets[d.section] += d.shift
    lo, hi = _grey_range(image.dtype)
    out = image.astype(np.float64)
    lab = None if label is None else np.array(label, copy=True)
    for z in np.flatnonzero(offsets.any(axis=1)):
        out[z] = _moved(image, int(z), tuple(offsets[z]))
        if lab is not None:
            lab[z] = _moved(np.asarray(label), int(z), tuple(offsets[z]))
    for d in defects:
        section = out[d.section]
        if d.kind == "missing_section":
            section[...] = lo
        elif d.kind == "missing_part":
            section[_half_plane(section.shape, d.angle, d.area)] = lo
        elif d.kind == "blur":
            out[d.section] = ndimage.gaussian_filter(section, d.sigma, mode="reflect")
        elif d.kind == "contrast":
            mean = section.mean()
            out[d.section] = mean + d.gain * (section - mean) + d.offset * (hi - lo)
    out = np.clip(np.rint(out) if np.issubdtype(image.dtype, np.integer) else out, lo, hi).astype(image.dtype)
    return Corrupted(out, lab, defects)


def corrupt(image, label, kind: str, rate: float, seed: int) -> Corrupted:
    """``image`` / ``label`` ``(Z, Y, X)`` with ``kind`` defects on a fraction ``rate`` of the sections (see module)."""
    return apply_defects(image, label, draw_defects(np.shape(image)[0], kind, rate, seed))
