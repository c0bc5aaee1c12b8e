"""Predictions -> instance ids: seeded watershed, affinity agglomeration (waterz), connected components (cc3d).

All functions take ``(Z, Y, X)`` maps (``(Y, X)`` for one image) with probabilities in [0, 1], or
uint8 maps holding ``round(255 * p)`` as the inference bundles write them, and return uint64 ids,
0 = background. :func:`segment` picks the method a target needs (``monai_em.transforms.target_options``)
from a channel-first prediction, with the defaults of :data:`DEFAULTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cc3d
import numpy as np
import waterz
from scipy import ndimage
from skimage.segmentation import watershed

__all__ = [
    "DEFAULTS",
    "agglomerate",
    "as_probability",
    "connected_components",
    "relabel_sequential",
    "seeded_watershed",
    "segment",
]


def as_probability(a, name: str = "prediction") -> np.ndarray:
    """A map as float32 probabilities: uint8 is divided by 255, floats must lie in [0, 1]."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be float probabilities or uint8 (255 * p), got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if a.size and (float(a.min()) < 0 or float(a.max()) > 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1], got range [{a.min()}, {a.max()}]")
    return a


def relabel_sequential(ids) -> np.ndarray:
    """``ids`` renumbered ``1..n`` in increasing order of their values (0 stays 0), as uint64."""
    a = np.asarray(ids)
    uniq, inverse = np.unique(a, return_inverse=True)
    out = inverse.astype(np.uint64).reshape(a.shape)
    if not (len(uniq) and uniq[0] == 0):
        out += np.uint64(1)
    return out


def _per_section(fn, *maps: np.ndarray, **kwargs) -> np.ndarray:
    """Apply a 2D ``fn`` to each z-section of ``(Z, Y, X)`` maps; ids made unique across sections."""
    out = np.zeros(maps[0].shape, np.uint64)
    offset = np.uint64(0)
    for z in range(maps[0].shape[0]):
        seg = fn(*(m[z] if m is not None else None for m in maps), **kwargs)
        out[z] = np.where(seg > 0, seg + offset, 0)
        offset += np.uint64(seg.max()) if seg.size else np.uint64(0)
    return out


def connected_components(mask, threshold: float = 0.5, connectivity: int | None = None) -> np.ndarray:
    """Connected components of a binary mask, a probability map (``>= threshold``), or class ids (each class apart).

    Args:
        mask: ``(Z, Y, X)`` / ``(Y, X)``: bool, integer class ids (components of equal non-zero
            value; 0 = background) or probabilities / uint8 (thresholded at ``threshold``).
        threshold: probability above which a voxel is foreground.
        connectivity: 6, 18 or 26 in 3D, 4 or 8 in 2D (default: faces, 6 / 4).

    Returns uint64 ids 1..n (cc3d's order), 0 = background.
    """
    a = np.asarray(mask)
    if a.ndim not in (2, 3):
        raise ValueError(f"mask must be (Z, Y, X) or (Y, X), got shape {a.shape}")
    if a.dtype == np.uint8 or np.issubdtype(a.dtype, np.floating):
        a = as_probability(a, "mask") >= threshold
    conn = connectivity or (6 if a.ndim == 3 else 4)
    allowed = (6, 18, 26) if a.ndim == 3 else (4, 8)
    if conn not in allowed:
        raise ValueError(f"connectivity must be one of {allowed} for a {a.ndim}D mask, got {conn}")
    src = a.astype(np.uint8) if a.dtype == bool else np.ascontiguousarray(a)
    return cc3d.connected_components(src, connectivity=conn, out_dtype=np.uint64)


def _in_plane_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each voxel of ``mask`` to the nearest voxel outside it, within its z-section."""
    if mask.ndim == 2:
        return ndimage.distance_transform_edt(mask)
    return np.stack([ndimage.distance_transform_edt(s) for s in mask])


def _watershed_2d_or_3d(
    boundary, foreground, seed_threshold, foreground_threshold, min_seed_size, min_size, seed_distance
):
    fg = None if foreground is None else foreground >= foreground_threshold
    seed_mask = boundary < seed_threshold
    if fg is not None:
        seed_mask &= fg
    if seed_distance > 0:  # only the cores of the regions: thin bridges between cells are no seeds
        seed_mask &= _in_plane_distance(seed_mask) > seed_distance
    seeds = connected_components(seed_mask)
    if min_seed_size > 1 and seeds.max():
        sizes = np.bincount(seeds.ravel())
        seeds[sizes[seeds] < min_seed_size] = 0
    seg = watershed(boundary, seeds.astype(np.int64), mask=fg).astype(np.uint64)
    if min_size > 1 and seg.max():
        sizes = np.bincount(seg.ravel())
        small = (sizes[seg] < min_size) & (seg > 0)
        if small.any() and not small[seg > 0].all():  # re-flood small segments' voxels from their neighbours
            seg[small] = 0
            seg = watershed(boundary, seg.astype(np.int64), mask=fg).astype(np.uint64)
    return relabel_sequential(seg)


def seeded_watershed(
    boundary,
    foreground=None,
    seed_threshold: float = 0.3,
    foreground_threshold: float = 0.5,
    min_seed_size: int = 8,
    min_size: int = 64,
    in_plane: bool = False,
    seed_distance: float = 0.0,
) -> np.ndarray:
    """Seeded watershed of a boundary (or contour) map: PyTC's ``bc_watershed`` family.

    Seeds are the connected regions where ``boundary < seed_threshold`` (and, with ``foreground``,
    ``foreground >= foreground_threshold``); each floods the boundary map until it meets another,
    inside the foreground (everywhere without one: dense neurons). Segments under ``min_size``
    voxels are dissolved and their voxels re-flooded by their neighbours (unless all are that small).

    Args:
        boundary: ``(Z, Y, X)`` or ``(Y, X)`` boundary probability (1 = boundary), float or uint8.
        foreground: optional foreground probability of the same shape (mitochondria, nuclei).
        seed_threshold: boundary below this is a seed (lower: fewer, safer seeds, fewer splits).
        foreground_threshold: foreground probability at or above which a voxel is foreground.
        min_seed_size: seeds smaller than this many voxels are dropped.
        min_size: segments smaller than this many voxels are dissolved.
        in_plane: segment each z-section on its own (2D models, strongly anisotropic stacks).
        seed_distance: keep only seed voxels farther than this (in-plane, in voxels) from the
            region's edge, so cells joined by thin gaps in the map (in-plane boundaries of a
            3D volume seen across z, faint membranes) get separate seeds; 0: off.

    Returns uint64 ids ``1..n`` (0 = background, only outside the foreground), the shape of ``boundary``.
    """
    b = as_probability(boundary, "boundary")
    fg = None if foreground is None else as_probability(foreground, "foreground")
    if b.ndim not in (2, 3):
        raise ValueError(f"boundary must be (Z, Y, X) or (Y, X), got shape {b.shape}")
    if fg is not None and fg.shape != b.shape:
        raise ValueError(f"foreground shape {fg.shape} differs from boundary {b.shape}")
    args = (seed_threshold, foreground_threshold, int(min_seed_size), int(min_size), float(seed_distance))
    if in_plane and b.ndim == 3:
        return _per_section(lambda bz, fz: _watershed_2d_or_3d(bz, fz, *args), b, fg)
    return _watershed_2d_or_3d(b, fg, *args)


def _xy_link_mean(a: np.ndarray) -> np.ndarray:
    """Mean of the four in-plane affinities touching each voxel: its own y / x links and its +y / +x neighbours'."""
    links = [a[1], a[2]]
    for c in (1, 2):  # channel c links p and p - e_c, so p's link to p + e_c is stored at p + e_c
        nxt = np.ones_like(a[c])  # no neighbour past the edge: no cut
        src, dst = [slice(None)] * 3, [slice(None)] * 3
        src[c], dst[c] = slice(1, None), slice(0, -1)
        nxt[tuple(dst)] = a[c][tuple(src)]
        links.append(nxt)
    return np.mean(links, axis=0)


def agglomerate(
    affinities,
    threshold: float = 0.5,
    fragments=None,
    seed_threshold: float = 0.2,
    min_seed_size: int = 8,
) -> np.ndarray:
    """Affinity graph -> instances: watershed fragments merged by mean affinity (waterz).

    Fragments (unless given) come from :func:`seeded_watershed` per section on ``1 - mean`` of the
    four y and x affinities that touch a voxel (so both voxels beside a cut link rise alike); waterz then merges neighbouring fragments in order of their mean affinity
    while ``1 - mean affinity < threshold`` (so 0.5 merges everything joined by affinities above 0.5).

    Args:
        affinities: ``(3, Z, Y, X)`` (z, y, x neighbours, ``aff[c, p]`` links ``p`` and ``p - e_c``,
            as :class:`~monai_em.transforms.AffinityTarget`) or ``(2, Y, X)`` for one image.
        threshold: merge threshold on ``1 - mean affinity`` (higher: more merging).
        fragments: optional uint64 ``(Z, Y, X)`` over-segmentation to start from.
        seed_threshold, min_seed_size: fragment seeds (see :func:`seeded_watershed`).

    Returns uint64 ids (0 only where fragments are 0).
    """
    a = as_probability(affinities, "affinities")
    if a.ndim == 3 and a.shape[0] == 2:  # one image: no z affinity, one section
        a = np.concatenate([np.zeros_like(a[:1]), a])[:, None]
        squeeze = True
    elif a.ndim == 4 and a.shape[0] == 3:
        squeeze = False
    else:
        raise ValueError(f"affinities must be (3, Z, Y, X) or (2, Y, X), got shape {a.shape}")
    if fragments is None:
        xy = 1.0 - _xy_link_mean(a)
        fragments = seeded_watershed(
            xy, seed_threshold=seed_threshold, min_seed_size=min_seed_size, min_size=1, in_plane=True
        )
    fragments = np.ascontiguousarray(fragments, dtype=np.uint64).reshape(a.shape[1:])
    seg = next(
        iter(waterz.agglomerate(np.ascontiguousarray(a), [float(threshold)], fragments=fragments.copy()))
    )
    seg = relabel_sequential(np.asarray(seg))
    return seg[0] if squeeze else seg


DEFAULTS: dict[str, dict[str, Any]] = {
    "watershed": {"seed_threshold": 0.3, "min_seed_size": 8, "min_size": 64},
    "distance_watershed": {
        "seed_threshold": 0.5,
        "foreground_threshold": 0.1,
        "min_seed_size": 8,
        "min_size": 64,
    },
    "agglomeration": {"threshold": 0.5, "seed_threshold": 0.2, "min_seed_size": 8},
    "components": {"threshold": 0.5},
}


def segment(prediction, method: str, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """A channel-first network output ``(C, Z, Y, X)`` (or ``(C, Y, X)``) -> uint64 instance ids.

    Args:
        prediction: probabilities (float in [0, 1] or uint8 255 * p): boundary / membrane (1 channel),
            distance (1), foreground (1), class probabilities (K >= 2: argmax, then components per
            class) or affinities (3, or 2 for 2D).
        method: ``"watershed"`` (boundary / membrane), ``"distance_watershed"`` (distance target:
            seeds where distance > ``seed_threshold``, foreground where > ``foreground_threshold``),
            ``"agglomeration"`` (affinities) or ``"components"`` (binary / semantic masks).
        params: overrides of :data:`DEFAULTS` ``[method]``, plus ``in_plane`` for the watersheds and
            ``connectivity`` for components.
    """
    if method not in DEFAULTS:
        raise ValueError(f"segmentation method must be one of {sorted(DEFAULTS)}, got {method!r}")
    kw = {**DEFAULTS[method], **dict(params or {})}
    p = np.asarray(prediction)
    if p.ndim not in (3, 4):
        raise ValueError(f"prediction must be channel-first (C, Z, Y, X) or (C, Y, X), got shape {p.shape}")
    if method == "agglomeration":
        return agglomerate(p, **kw)
    if method == "components" and p.shape[0] > 1:  # class probabilities: components of each argmax class
        return connected_components(
            np.argmax(p, axis=0).astype(np.uint32), **{k: v for k, v in kw.items() if k != "threshold"}
        )
    if p.shape[0] != 1:
        raise ValueError(
            f"{method} needs a 1-channel prediction, got {p.shape[0]} channels (shape {p.shape})"
        )
    if method == "components":
        return connected_components(p[0], **kw)
    if method == "distance_watershed":
        dist = as_probability(p[0], "distance")
        return seeded_watershed(
            1.0 - dist, foreground=dist, seed_threshold=1.0 - kw.pop("seed_threshold"), **kw
        )
    return seeded_watershed(p[0], **kw)
