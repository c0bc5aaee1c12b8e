"""OME-Zarr (NGFF 0.4 / 0.5) images and labels: create, open, read the voxel size, add a y/x pyramid.

An OME-Zarr image is a zarr group whose attributes describe a multiscale image: the axes (``c``
optional, then ``z, y, x`` with a unit) and, per level, a ``scale`` (voxel size) and a
``translation`` (physical position of voxel ``(0, 0, 0)``). NGFF 0.5 is zarr v3 (metadata under
``attributes["ome"]``), NGFF 0.4 is zarr v2. The metadata is written by ome-zarr-py's own writer,
so it follows the library that viewers (napari, neuroglancer) are tested against.

Conventions: ``voxel_size`` and ``offset`` are ``(z, y, x)`` in ``unit``; ``offset`` is the
coordinate of voxel ``(0, 0, 0)`` (the NGFF translation); level ``k`` of a pyramid is level 0
downsampled by ``2**k`` in y and x only (anisotropic EM keeps its sections).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

from .volume import as_voxel_size, as_zyx_numbers

__all__ = [
    "axis_dicts",
    "create_ome_labels",
    "create_ome_zarr",
    "level_path",
    "multiscale_of",
    "multiscale_paths",
    "open_ome_zarr",
    "read_ngff_transform",
    "write_pyramid",
]

_FORMATS = {"0.4": FormatV04, "0.5": FormatV05}
_SPATIAL = ("z", "y", "x")
_RESERVED = ("ome", "multiscales", "omero", "labels", "image-label", "version")


def _location(path) -> str:
    """A zarr store location: local paths as strings, URLs unchanged."""
    return os.fspath(path)


def _compressor(zarr_format: int):
    if zarr_format == 3:
        return zarr.codecs.ZstdCodec(level=3)
    from numcodecs import Zstd

    return Zstd(level=3)


def _ome_attrs(group: zarr.Group) -> dict:
    """The group's NGFF attributes (0.5: under ``"ome"``; 0.4: top level)."""
    attrs = group.attrs.asdict()
    return dict(attrs["ome"]) if "ome" in attrs else attrs


def multiscale_of(group: zarr.Group, where) -> dict:
    """The group's ``multiscales[0]`` dict (NGFF 0.4 or 0.5); ValueError naming ``where`` when the group
    is not an OME-Zarr image."""
    ms = _ome_attrs(group).get("multiscales")
    if not ms:
        raise ValueError(f"{where} is not an OME-Zarr image: its attributes have no 'multiscales'")
    return ms[0]


def axis_dicts(ms: Mapping) -> list[dict]:
    """The axes of a ``multiscales[0]`` dict, each a dict with a ``"name"`` (NGFF 0.3 lists bare names;
    no ``axes`` at all means ``z, y, x``)."""
    return [a if isinstance(a, Mapping) else {"name": a} for a in ms.get("axes", ["z", "y", "x"])]


def _open_group(path, mode: str = "r") -> zarr.Group:
    try:
        return zarr.open_group(_location(path), mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
        raise FileNotFoundError(f"no zarr group at {path}") from e


def level_path(ms: Mapping, level: int, where) -> str:
    """The array path of level ``level`` (0 = finest) of a ``multiscales[0]`` dict; ValueError listing the levels."""
    paths = [d["path"] for d in ms["datasets"]]
    if not 0 <= int(level) < len(paths):
        raise ValueError(f"{where} has levels 0..{len(paths) - 1} ({paths}), got level={level}")
    return paths[int(level)]


def multiscale_paths(path) -> list[str]:
    """Paths of the levels of the OME-Zarr image at ``path``, finest first (e.g. ``["0", "1"]``)."""
    return [d["path"] for d in multiscale_of(_open_group(path), path)["datasets"]]


def _axes(ndim: int, unit: str | None) -> list[dict]:
    spatial = [{"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in _SPATIAL]
    return ([{"name": "c", "type": "channel"}] if ndim == 4 else []) + spatial


def _transform(ndim: int, voxel_size, offset) -> list[dict]:
    lead = [1.0] * (ndim - 3)
    zero = [0.0] * (ndim - 3)
    return [
        {"type": "scale", "scale": lead + [float(v) for v in voxel_size]},
        {"type": "translation", "translation": zero + [float(v) for v in offset]},
    ]


def _write_metadata(group, fmt, ndim, levels, unit, name, channel_names) -> None:
    """``levels``: ``[(path, voxel_size, offset)]``, finest first."""
    datasets = [{"path": p, "coordinateTransformations": _transform(ndim, vs, off)} for p, vs, off in levels]
    metadata: dict[str, Any] = {}
    if channel_names is not None:
        metadata["omero"] = {"channels": [{"label": str(n), "active": True} for n in channel_names]}
    write_multiscales_metadata(
        group,
        datasets,
        fmt=fmt,
        axes=[a["name"] for a in _axes(ndim, None)],
        axes_units={a: unit for a in _SPATIAL} if unit else None,
        name=name,
        **({"metadata": metadata} if metadata else {}),
    )


def _create_level(
    group, path, shape, dtype, chunks, shards, zarr_format, fill_value, where, overwrite: bool = False
) -> zarr.Array:
    """One level array of an image: NGFF chunk keys ('/' in v2), axis names (v3), zstd, optional shards."""
    ndim = len(shape)
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) == 3 and ndim == 4:
        chunks = (int(shape[0]),) + chunks
    if len(chunks) != ndim or any(c < 1 for c in chunks):
        raise ValueError(f"{where}: chunks {chunks} must be 3 positive sizes (z, y, x) for shape {shape}")
    kwargs: dict[str, Any] = {}
    if shards is not None:
        if zarr_format != 3:
            raise ValueError(f"{where}: shards need zarr v3 (ngff_version='0.5')")
        shards = tuple(int(s) for s in shards)
        if len(shards) == 3 and ndim == 4:
            shards = (int(shape[0]),) + shards
        if len(shards) != ndim or any(s % c for s, c in zip(shards, chunks, strict=True)):
            raise ValueError(f"{where}: shards {shards} must be multiples of chunks {chunks}")
        kwargs["shards"] = shards
    if zarr_format == 2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}  # NGFF 0.4 asks for '/'
    else:
        kwargs["dimension_names"] = [a["name"] for a in _axes(ndim, None)]
    return group.create_array(
        path,
        shape=tuple(int(s) for s in shape),
        dtype=np.dtype(dtype),
        chunks=chunks,
        compressors=_compressor(zarr_format),
        fill_value=fill_value,
        overwrite=overwrite,
        **kwargs,
    )


def create_ome_zarr(
    path,
    shape: Sequence[int],
    dtype,
    chunks: Sequence[int],
    *,
    voxel_size: Sequence[float] = (1, 1, 1),
    offset: Sequence[float] = (0, 0, 0),
    unit: str | None = "nanometer",
    channel_names: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    ngff_version: str = "0.5",
    shards: Sequence[int] | None = None,
    overwrite: bool = False,
    name: str | None = None,
    fill_value=0,
) -> zarr.Array:
    """Create an empty OME-Zarr image and return its writable level-0 array (``<path>/0``).

    Args:
        path: folder (or URL) of the new image.
        shape: ``(C, Z, Y, X)`` or ``(Z, Y, X)``.
        dtype: numpy dtype of the voxels.
        chunks: ``(z, y, x)`` chunk shape (the channel chunk is ``C``: one chunk holds every channel).
        voxel_size: ``(z, y, x)`` size of a voxel in ``unit`` (NGFF ``scale``).
        offset: ``(z, y, x)`` position of voxel ``(0, 0, 0)`` in ``unit`` (NGFF ``translation``), e.g. a
            ``z_range`` prediction starting at section ``z0`` has offset ``z0 * voxel_size[0]``.
        unit: NGFF unit of the spatial axes (``"nanometer"``, ``"micrometer"``, ...), or None.
        channel_names: one name per channel (written as ``omero`` channel labels).
        attrs: extra JSON attributes of the image group (prediction settings, network fingerprint).
        ngff_version: ``"0.5"`` (zarr v3, zstd) or ``"0.4"`` (zarr v2, zstd).
        shards: ``(z, y, x)`` shard shape (multiples of ``chunks``; zarr v3 only): many chunks per file.
        overwrite: replace an existing image at ``path``; otherwise an existing one is an error.
        name: the multiscale's name (default: the folder name).
        fill_value: value of voxels never written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: a bad shape, chunk, shard, version, voxel size or reserved attribute (named).

    Example:
        >>> arr = create_ome_zarr("pred.ome.zarr", (2, 32, 256, 256), "uint8", (16, 128, 128),
        ...                       voxel_size=(30, 8, 8))  # doctest: +SKIP
        >>> arr[:, :16] = prediction  # doctest: +SKIP
    """
    if ngff_version not in _FORMATS:
        raise ValueError(f"ngff_version must be one of {sorted(_FORMATS)}, got {ngff_version!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4) or any(s < 1 for s in shape):
        raise ValueError(f"{path}: shape must be (C, Z, Y, X) or (Z, Y, X) with positive sizes, got {shape}")
    if channel_names is not None and (len(shape) != 4 or len(channel_names) != shape[0]):
        raise ValueError(f"{path}: channel_names {list(channel_names)} need one name per channel of {shape}")
    voxel_size, offset = as_voxel_size(voxel_size, path), as_zyx_numbers(offset, "offset", path)
    attrs = dict(attrs or {})
    bad = sorted(set(attrs) & set(_RESERVED))
    if bad:
        raise ValueError(f"{path}: attrs may not set the OME-Zarr keys {bad}")
    fmt = _FORMATS[ngff_version]()
    loc = _location(path)
    if not overwrite and _exists(loc):
        raise FileExistsError(
            f"{path} exists; pass overwrite=True to replace it, or open it with open_ome_zarr(path, mode='r+')"
        )
    group = zarr.open_group(loc, mode="w" if overwrite else "w-", zarr_format=fmt.zarr_format)
    array = _create_level(group, "0", shape, dtype, chunks, shards, fmt.zarr_format, fill_value, path)
    name = name or os.path.basename(loc.rstrip("/")) or "image"
    _write_metadata(group, fmt, len(shape), [("0", voxel_size, offset)], unit, name, channel_names)
    if attrs:
        group.attrs.update(attrs)
    return array


def _exists(loc: str) -> bool:
    if "://" in loc and not loc.startswith("file://"):
        return False  # remote stores: zarr's mode 'w-' refuses an existing group itself
    local = loc.removeprefix("file://")
    return os.path.exists(local) and (not os.path.isdir(local) or bool(os.listdir(local)))


def open_ome_zarr(path, level: int = 0, mode: str = "r") -> zarr.Array:
    """Level ``level`` (0 = finest) of the OME-Zarr image at ``path`` as a zarr array.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not an OME-Zarr image, or no such level (the message lists the levels).
    """
    group = _open_group(path, mode)
    return group[level_path(multiscale_of(group, path), level, path)]


def _spatial_transform(transforms: Sequence[Mapping], n: int, where) -> tuple[np.ndarray, np.ndarray]:
    scale, translation = np.ones(n), np.zeros(n)
    for t in transforms or ():
        if t.get("type") == "scale":
            scale = np.asarray(t["scale"], dtype=float)
        elif t.get("type") == "translation":
            translation = np.asarray(t["translation"], dtype=float)
        elif t.get("type") != "identity":
            raise ValueError(f"{where}: coordinate transformation {t} is not supported (scale/translation)")
    if scale.size != n or translation.size != n:
        raise ValueError(f"{where}: transformations {list(transforms)} do not match the {n} axes")
    return scale, translation


def read_ngff_transform(path, level: int = 0) -> tuple[tuple[float, ...], tuple[float, ...], str | None]:
    """``(voxel_size, offset, unit)`` of level ``level``, each ``(z, y, x)``, from the NGFF metadata.

    The level's ``scale``/``translation`` are composed with the multiscale's own (NGFF allows both).
    ``unit`` is the spatial axes' unit (None when the metadata gives none).

    Raises:
        ValueError: no ``z, y, x`` space axes, spatial axes with different units, or no such level.
    """
    ms = multiscale_of(_open_group(path), path)
    return ngff_transform(ms, level, path)


def ngff_transform(ms: Mapping, level: int, where) -> tuple[tuple[float, ...], tuple[float, ...], str | None]:
    """:func:`read_ngff_transform` from an already read ``multiscales[0]`` dict."""
    axes = axis_dicts(ms)
    names = [a["name"] for a in axes]
    spatial = [names.index(a) if a in names else None for a in _SPATIAL]
    if None in spatial:
        raise ValueError(f"{where}: OME-Zarr axes {names} lack one of the spatial axes z, y, x")
    level_path(ms, level, where)  # no such level: ValueError
    dataset = ms["datasets"][int(level)]
    n = len(names)
    scale, translation = _spatial_transform(dataset.get("coordinateTransformations"), n, where)
    g_scale, g_translation = _spatial_transform(ms.get("coordinateTransformations"), n, where)
    scale, translation = scale * g_scale, translation * g_scale + g_translation
    units = {axes[i].get("unit") for i in spatial}
    if len(units) > 1:
        raise ValueError(f"{where}: spatial axes have different units {sorted(map(str, units))}")
    unit = units.pop()
    return (
        tuple(float(scale[i]) for i in spatial),
        tuple(float(translation[i]) for i in spatial),
        unit or None,
    )


def create_ome_labels(
    image_path,
    name: str,
    shape: Sequence[int],
    dtype,
    chunks: Sequence[int],
    *,
    voxel_size: Sequence[float] | None = None,
    offset: Sequence[float] | None = None,
    unit: str | None = None,
    **kwargs,
) -> zarr.Array:
    """Create the label image ``<image_path>/labels/<name>`` and return its writable level-0 array.

    ``shape`` is ``(Z, Y, X)`` (or ``(C, Z, Y, X)``); ``voxel_size``, ``offset`` and ``unit`` default to
    the image's level 0, and the NGFF version follows the image's. Other keyword arguments as
    :func:`create_ome_zarr`. The image's ``labels`` list gets ``name``.
    """
    image = _open_group(image_path, "r+")
    ms = multiscale_of(image, image_path)
    img_vs, img_off, img_unit = ngff_transform(ms, 0, image_path)
    version = "0.4" if image.metadata.zarr_format == 2 else "0.5"
    fmt = _FORMATS[version]()
    labels = image.require_group("labels")
    array = create_ome_zarr(
        os.path.join(_location(image_path), "labels", name)
        if "://" not in _location(image_path)
        else f"{_location(image_path).rstrip('/')}/labels/{name}",
        shape,
        dtype,
        chunks,
        voxel_size=img_vs if voxel_size is None else voxel_size,
        offset=img_off if offset is None else offset,
        unit=img_unit if unit is None else unit,
        ngff_version=version,
        name=name,
        **kwargs,
    )
    existing = _ome_attrs(labels).get("labels", [])
    if name in existing:  # overwrite=True of an existing label: keep one entry
        existing.remove(name)
        _set_ome(labels, fmt, {"labels": existing})
    write_label_metadata(labels, name, fmt=fmt, source={"image": "../../"})
    return array


def _set_ome(group: zarr.Group, fmt, values: dict) -> None:
    if fmt.version == "0.4":
        group.attrs.update(values)
    else:
        group.attrs["ome"] = {**_ome_attrs(group), **values}


def write_pyramid(
    path,
    levels: int,
    *,
    label: bool | None = None,
    block: Sequence[int] | None = None,
) -> list[zarr.Array]:
    """Add ``levels`` downsampled levels to the OME-Zarr image at ``path``, each 2x smaller in y and x.

    Level ``k`` is read from level ``k - 1`` block by block (memory bounded) and written with the same
    chunks. Images are 2x2 means (their voxel centres move by half a level-``k-1`` voxel: the
    translation says so); labels (``label=True``; default: the image has NGFF ``image-label``
    metadata, as :func:`create_ome_labels` writes) take every second voxel, never mixing ids. Existing levels beyond 0 are replaced.

    Returns:
        the arrays of the new levels, coarsest last.
    """
    group = _open_group(path, "r+")
    ms = multiscale_of(group, path)
    fmt = _FORMATS["0.4" if group.metadata.zarr_format == 2 else "0.5"]()
    base = group[ms["datasets"][0]["path"]]
    ndim = base.ndim
    vs, off, unit = ngff_transform(ms, 0, path)
    label = "image-label" in _ome_attrs(group) if label is None else bool(label)
    entries = [(ms["datasets"][0]["path"], vs, off)]
    out, src = [], base
    for k in range(1, int(levels) + 1):
        shape = src.shape[:-2] + tuple(max(1, s // 2) for s in src.shape[-2:])
        prev_vs, prev_off = entries[-1][1], entries[-1][2]
        new_vs = (prev_vs[0], prev_vs[1] * 2, prev_vs[2] * 2)
        shift = 0.0 if label else 0.5
        new_off = (prev_off[0], prev_off[1] + shift * prev_vs[1], prev_off[2] + shift * prev_vs[2])
        dst = _create_level(group, str(k), shape, base.dtype, base.chunks, None, group.metadata.zarr_format,
                            base.fill_value, path, overwrite=True)  # fmt: skip
        _downsample_into(src, dst, label, block)
        entries.append((str(k), new_vs, new_off))
        out.append(dst)
        src = dst
    channel_names = None
    omero = _ome_attrs(group).get("omero")
    if omero:
        channel_names = [c.get("label", "") for c in omero.get("channels", [])]
    _write_metadata(group, fmt, ndim, entries, unit, ms.get("name"), channel_names)
    return out


def _downsample_into(src: zarr.Array, dst: zarr.Array, label: bool, block: Sequence[int] | None) -> None:
    """``dst`` = ``src`` halved in y and x, written in boxes of ``dst`` chunks (aligned, memory bounded)."""
    bz, by, bx = block or (dst.chunks[-3], dst.chunks[-2] * 4, dst.chunks[-1] * 4)
    Z, Y, X = dst.shape[-3:]
    for z0 in range(0, Z, bz):
        for y0 in range(0, Y, by):
            for x0 in range(0, X, bx):
                z1, y1, x1 = min(z0 + bz, Z), min(y0 + by, Y), min(x0 + bx, X)
                lead = (slice(None),) * (src.ndim - 3)
                data = np.asarray(src[lead + (slice(z0, z1), slice(2 * y0, 2 * y1), slice(2 * x0, 2 * x1))])
                if label:
                    small = data[..., ::2, ::2]
                else:
                    h, w = data.shape[-2] // 2 * 2, data.shape[-1] // 2 * 2
                    d = data[..., :h, :w].astype(np.float64)
                    small = (
                        d[..., 0::2, 0::2] + d[..., 1::2, 0::2] + d[..., 0::2, 1::2] + d[..., 1::2, 1::2]
                    ) / 4
                    if np.issubdtype(dst.dtype, np.integer):
                        small = np.rint(small)
                    small = small.astype(dst.dtype)
                dst[lead + (slice(z0, z1), slice(y0, y1), slice(x0, x1))] = small[..., : y1 - y0, : x1 - x0]
