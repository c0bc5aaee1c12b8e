"""An OME-Zarr ``labels/`` group for a segmentation written block by block (NGFF 0.5, zarr format 3).

``<image>.zarr/labels/<name>/0`` holds the ids, chunked like the blockwise write boxes so parallel
blocks never share a chunk; the ``ome`` attributes of ``labels/`` list the label images and those of
``labels/<name>`` carry the ``multiscales`` (axes z, y, x with the voxel size) and ``image-label``
metadata that OME-Zarr viewers and ``ome_zarr`` read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import zarr

__all__ = ["create_label_array"]


def create_label_array(
    path: str | os.PathLike,
    name: str,
    shape: Sequence[int],
    chunks: Sequence[int],
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    unit: str = "nanometer",
    dtype=np.uint64,
) -> zarr.Array:
    """Create (or replace) label image ``name`` under ``path/labels`` and return its writable ``(Z, Y, X)`` array.

    Args:
        path: the OME-Zarr image group (created when absent; an existing image is kept).
        name: label image name, e.g. ``"cells"``.
        shape: ``(Z, Y, X)`` of the image.
        chunks: chunk shape; use the blockwise ``block_shape``.
        voxel_size: ``(z, y, x)`` physical size of a voxel in ``unit``.
    """
    if len(shape) != 3 or len(chunks) != 3 or len(voxel_size) != 3:
        raise ValueError(
            f"shape, chunks and voxel_size need 3 entries (z, y, x), got {shape}, {chunks}, {voxel_size}"
        )
    if not name or "/" in name:
        raise ValueError(f"label name must be a non-empty name without '/', got {name!r}")
    root = zarr.open_group(os.fspath(path), mode="a", zarr_format=3)
    labels = root.require_group("labels")
    meta = dict(labels.attrs.get("ome", {}))
    names = list(meta.get("labels", []))
    labels.attrs["ome"] = {**meta, "version": "0.5", "labels": names if name in names else [*names, name]}
    group = labels.require_group(name)
    axes = [{"name": a, "type": "space", "unit": unit} for a in "zyx"]
    scale = [{"type": "scale", "scale": [float(v) for v in voxel_size]}]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {"name": name, "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
        ],
        "image-label": {"source": {"image": "../../"}},
    }
    return group.create_array(
        "0",
        shape=tuple(int(s) for s in shape),
        chunks=tuple(int(c) for c in chunks),
        dtype=dtype,
        fill_value=0,
        overwrite=True,
    )
