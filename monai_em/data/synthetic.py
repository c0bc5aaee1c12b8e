"""Procedural EM-like volumes with instance labels: the embedded default data for demos and tests.

A volume is built the way serial-section EM looks:

* cells are a Voronoi partition of space, measured in physical units so they change slowly from
  section to section (``anisotropy`` = z spacing / xy spacing), with borders bent by a smooth
  random warp so they are not polygons;
* membranes are dark bands of ``membrane_width`` pixels on the in-plane borders between cells;
* mitochondria are dark ellipsoids with a darker rim, placed inside cells (never across a
  membrane) and returned as a sparse second label;
* the image gets per-cell brightness, low-frequency texture, blur and speckle noise.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``: the same arguments give
the same volume, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["SyntheticEM", "make_em_volume", "membrane_mask"]


@dataclass(frozen=True)
class SyntheticEM:
    """A synthetic EM volume; all arrays are ``(Z, Y, X)``.

    Attributes:
        image: uint8 grey values (membranes and mitochondria dark, cytoplasm bright).
        label: int32 dense cell instance ids, 1..n (every voxel belongs to a cell).
        mito: int32 sparse mitochondrion instance ids, 0 = background.
        membrane: bool, True on the dark membrane bands between cells.
    """

    image: np.ndarray
    label: np.ndarray
    mito: np.ndarray
    membrane: np.ndarray


def membrane_mask(label: np.ndarray, width: int = 2) -> np.ndarray:
    """In-plane cell borders of a ``(Z, Y, X)`` instance label, ``width`` pixels wide (an even number).

    A pixel is on a border when its id differs from the pixel after it in y or x; the border is
    then widened symmetrically to ``width`` pixels (per section, so z never smears it).
    """
    if label.ndim != 3:
        raise ValueError(f"membrane_mask expects a (Z, Y, X) label, got shape {label.shape}")
    if width < 2 or width % 2:
        raise ValueError(
            f"membrane width must be even and >= 2 (the same on both sides of a border), got {width}"
        )
    edge = np.zeros(label.shape, dtype=bool)
    dy = label[:, 1:, :] != label[:, :-1, :]
    dx = label[:, :, 1:] != label[:, :, :-1]
    edge[:, :-1, :] |= dy
    edge[:, 1:, :] |= dy
    edge[:, :, :-1] |= dx
    edge[:, :, 1:] |= dx
    if width > 2:
        struct = np.zeros((1, 3, 3), dtype=bool)
        struct[0, 1, :] = struct[0, :, 1] = True
        edge = ndimage.binary_dilation(edge, struct, iterations=(width - 1) // 2)
    return edge


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma, amplitude: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    field /= max(float(field.std()), 1e-6)
    return field * amplitude


def _cells(rng: np.random.Generator, shape, anisotropy: float, cell_size: float, warp: float) -> np.ndarray:
    """Voronoi cells in physical space with warped borders; ids 1..n as int32."""
    z, y, x = shape
    depth = z * anisotropy
    n_cells = max(2, int(round(depth * y * x / cell_size**3)))
    seeds = np.stack(
        [rng.uniform(0, depth, n_cells) / anisotropy, rng.uniform(0, y, n_cells), rng.uniform(0, x, n_cells)],
        axis=1,
    )
    markers = np.zeros(shape, dtype=np.int32)
    idx = np.clip(np.floor(seeds).astype(np.int64), 0, np.array(shape) - 1)
    markers[idx[:, 0], idx[:, 1], idx[:, 2]] = np.arange(1, n_cells + 1, dtype=np.int32)
    # nearest seed in physical units: z voxels count `anisotropy` times an xy voxel
    _, nearest = ndimage.distance_transform_edt(
        markers == 0, sampling=(anisotropy, 1.0, 1.0), return_indices=True
    )
    label = markers[nearest[0], nearest[1], nearest[2]]
    if warp > 0:  # bend the flat Voronoi faces with a smooth in-plane displacement
        sig = (max(1.0, cell_size / (4 * anisotropy)), cell_size / 4, cell_size / 4)
        dy = _smooth_noise(rng, shape, sig, warp)
        dx = _smooth_noise(rng, shape, sig, warp)
        zz, yy, xx = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
        coords = np.stack([zz, np.clip(yy + dy, 0, y - 1), np.clip(xx + dx, 0, x - 1)])
        label = ndimage.map_coordinates(label, coords, order=0, mode="nearest").astype(np.int32)
    # relabel to consecutive ids (some seeds may lose all their voxels to the warp)
    ids, inverse = np.unique(label, return_inverse=True)
    return (inverse.reshape(shape) + 1).astype(np.int32)


def _mitochondria(rng, label: np.ndarray, membrane: np.ndarray, anisotropy: float, count: int, radius: float):
    """Ellipsoids fully inside one cell each, away from membranes; ids 1..k as int32."""
    shape = label.shape
    mito = np.zeros(shape, dtype=np.int32)
    inside = ndimage.distance_transform_edt(~membrane, sampling=(anisotropy, 1.0, 1.0)) > radius
    candidates = np.argwhere(inside)
    if len(candidates) == 0 or count == 0:
        return mito
    next_id = 1
    for pick in rng.permutation(len(candidates))[: count * 4]:
        if next_id > count:
            break
        cz, cy, cx = candidates[pick]
        ry, rx = radius * rng.uniform(0.6, 1.4), radius * rng.uniform(0.6, 1.4)
        rz = max(radius * rng.uniform(0.6, 1.4) / anisotropy, 0.5)
        sl = tuple(
            slice(max(0, int(c - r) - 1), min(s, int(c + r) + 2))
            for c, r, s in zip((cz, cy, cx), (rz, ry, rx), shape, strict=True)
        )
        gz, gy, gx = np.ogrid[sl]
        blob = ((gz - cz) / rz) ** 2 + ((gy - cy) / ry) ** 2 + ((gx - cx) / rx) ** 2 <= 1.0
        cell = label[cz, cy, cx]
        region = mito[sl]
        if (label[sl][blob] != cell).any() or membrane[sl][blob].any() or region[blob].any():
            continue  # would cross a membrane or touch another mitochondrion
        region[blob] = next_id
        next_id += 1
    return mito


def make_em_volume(
    shape: tuple[int, int, int] = (32, 256, 256),
    anisotropy: float = 4.0,
    cell_size: float = 48.0,
    membrane_width: int = 2,
    n_mito: int | None = None,
    mito_radius: float = 5.0,
    noise: float = 14.0,
    blur: float = 0.8,
    seed: int = 0,
) -> SyntheticEM:
    """Generate an EM-like volume with its cell and mitochondrion labels.

    Args:
        shape: ``(Z, Y, X)`` in voxels; Z may be 1 for a single section.
        anisotropy: z voxel size / xy voxel size (serial-section EM: 4-10; FIB-SEM: 1).
        cell_size: typical cell diameter in xy pixels.
        membrane_width: width in pixels of the dark membrane bands (even, >= 2).
        n_mito: number of mitochondria; default one per ~3 cells, at least 3.
        mito_radius: typical mitochondrion radius in xy pixels.
        noise: standard deviation of the speckle noise in grey levels.
        blur: Gaussian blur sigma (xy pixels) applied before the noise.
        seed: seed of the one random generator behind every draw.

    Returns:
        A :class:`SyntheticEM` with ``image`` uint8, ``label`` and ``mito`` int32, ``membrane`` bool.

    Example:
        >>> vol = make_em_volume((8, 64, 64), seed=1)
        >>> vol.image.shape, vol.image.dtype, int(vol.label.min()) >= 1
        ((8, 64, 64), dtype('uint8'), True)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes (Z, Y, X), got {shape}")
    if anisotropy <= 0 or cell_size <= 2:
        raise ValueError(f"anisotropy must be > 0 and cell_size > 2, got {anisotropy} and {cell_size}")
    rng = np.random.default_rng(seed)
    label = _cells(rng, shape, anisotropy, cell_size, warp=cell_size / 10)
    membrane = membrane_mask(label, membrane_width)
    n_cells = int(label.max())
    if n_mito is None:
        n_mito = max(3, n_cells // 3)
    mito = _mitochondria(rng, label, membrane, anisotropy, n_mito, mito_radius)

    # grey values: bright cytoplasm with per-cell tone and texture, dark membranes and mitochondria
    cell_tone = rng.normal(175.0, 12.0, n_cells + 1).astype(np.float32)
    image = cell_tone[label]
    image += _smooth_noise(rng, shape, (1.0, 3.0, 3.0), 8.0)
    image[membrane] = 55.0
    mito_body = mito > 0
    if mito_body.any():
        rim = mito_body & ~ndimage.binary_erosion(mito_body, np.ones((1, 3, 3), bool))
        image[mito_body] = 105.0
        image[rim] = 50.0
    if blur > 0:
        image = ndimage.gaussian_filter(image, (0.0, blur, blur))
    image += rng.normal(0.0, noise, shape).astype(np.float32)
    return SyntheticEM(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8), label=label, mito=mito, membrane=membrane
    )
