"""Blockwise segmentation: connected components exactly as in memory, watershed within a stated VI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from monai_em.data.synthetic import make_em_volume
from monai_em.segmentation import (
    connected_components,
    seeded_watershed,
    segment_blockwise,
    variation_of_information,
)
from monai_em.transforms.targets import BoundaryTarget


def cc_block(block: np.ndarray) -> np.ndarray:
    return connected_components(block[0] > 0)


def ws_block(block: np.ndarray) -> np.ndarray:
    return seeded_watershed(block[0])


@pytest.mark.parametrize("halo", [0, 2])
def test_blockwise_connected_components_equal_in_memory(rng, halo):
    mask = (ndimage.gaussian_filter(rng.random((20, 40, 36)), 1.5) > 0.52).astype(np.uint8)
    whole = connected_components(mask.astype(bool))
    blocks = segment_blockwise(mask[None], cc_block, block_shape=(7, 13, 10), halo=halo, rule="touch")
    assert whole.max() > 20  # enough components crossing faces to matter
    assert blocks.max() == whole.max()
    assert variation_of_information(whole, blocks, ignore_gt=()) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert np.array_equal(blocks == 0, mask == 0)
    # the numbering does not depend on the order blocks are done in
    reverse = lambda fn, items: list(map(fn, list(items)[::-1]))[::-1]  # noqa: E731
    again = segment_blockwise(
        mask[None], cc_block, block_shape=(7, 13, 10), halo=halo, rule="touch", map_fn=reverse
    )
    assert np.array_equal(blocks, again)


def test_blockwise_watershed_within_stated_vi_of_in_memory():
    """Stated bound: VI(in-memory, blockwise) < 0.05 bits with a halo of (4, 8, 8) on a noisy boundary map."""
    gt = make_em_volume((16, 96, 96), seed=5).label.astype(np.int64)
    rng = np.random.default_rng(0)
    clean = BoundaryTarget(width=2, in_plane=False)(gt[None]).numpy()[0]
    boundary = np.clip(ndimage.gaussian_filter(clean + rng.normal(0, 0.2, gt.shape), 1), 0, 1).astype(
        np.float32
    )
    whole = seeded_watershed(boundary)
    blocks = segment_blockwise(boundary[None], ws_block, block_shape=(8, 48, 48), halo=(4, 8, 8))
    split, merge = variation_of_information(whole, blocks, ignore_gt=())
    assert split + merge < 0.05
    # without a halo the faces cannot be matched by overlap
    with pytest.raises(ValueError, match="needs a halo >= 1 along axis"):
        segment_blockwise(boundary[None], ws_block, block_shape=(8, 48, 48), halo=0)


def test_blockwise_writes_into_a_given_array_and_checks_shapes():
    mask = np.zeros((1, 6, 8, 8), np.uint8)
    mask[0, :, 2:5, 2:5] = 1
    out = np.full((6, 8, 8), 99, np.uint64)
    assert segment_blockwise(mask, cc_block, (3, 4, 4), rule="touch", out=out) is out
    assert set(np.unique(out)) == {0, 1}
    with pytest.raises(ValueError, match=r"out has shape \(6, 8\), the volume \(6, 8, 8\)"):
        segment_blockwise(mask, cc_block, (3, 4, 4), rule="touch", out=np.zeros((6, 8)))
    with pytest.raises(ValueError, match="segment_fn returned shape"):
        segment_blockwise(mask, lambda b: b[0, :1], (3, 4, 4), rule="touch")


def test_blockwise_into_an_ome_zarr_labels_group(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Node

    from monai_em.data.ome_zarr import create_ome_labels, create_ome_zarr

    mask = np.zeros((1, 6, 8, 8), np.uint8)
    mask[0, :, 1:3, 1:3] = mask[0, :, 5:7, 5:7] = 1
    create_ome_zarr(tmp_path / "image.zarr", (1, 6, 8, 8), "uint8", (3, 4, 4), voxel_size=(40, 4, 4))
    out = create_ome_labels(tmp_path / "image.zarr", "cells", (6, 8, 8), np.uint64, (3, 4, 4))
    segment_blockwise(mask, cc_block, (3, 4, 4), rule="touch", out=out)
    node = Node(parse_url(tmp_path / "image.zarr" / "labels" / "cells"), [])
    assert any(isinstance(s, Label) for s in node.specs)  # ome_zarr reads it as a label image
    data = np.asarray(node.data[0])
    assert data.max() == 2
    assert variation_of_information(connected_components(mask[0] > 0), data, ignore_gt=()) == pytest.approx(
        (0, 0)
    )
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == [40.0, 4.0, 4.0]
    assert parse_url(tmp_path / "image.zarr" / "labels").root_attrs["labels"] == ["cells"]
    create_ome_labels(tmp_path / "image.zarr", "mito", (6, 8, 8), np.uint64, (3, 4, 4))
    assert parse_url(tmp_path / "image.zarr" / "labels").root_attrs["labels"] == ["cells", "mito"]


@pytest.mark.slow  # starts a 2-process dask cluster (~10 s)
def test_blockwise_on_a_dask_cluster_equals_in_process(tmp_path, rng):
    """The per-block steps run as dask tasks in other processes, writing into a zarr array on disk."""
    distributed = pytest.importorskip("distributed")
    from monai_em.data.ome_zarr import create_ome_labels, create_ome_zarr

    mask = (ndimage.gaussian_filter(rng.random((12, 40, 40)), 1.5) > 0.52).astype(np.uint8)
    local = segment_blockwise(mask[None], cc_block, (6, 20, 20), halo=1, rule="touch")
    create_ome_zarr(tmp_path / "image.zarr", mask.shape, "uint8", (6, 20, 20))
    out = create_ome_labels(tmp_path / "image.zarr", "cells", mask.shape, np.uint64, (6, 20, 20))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with distributed.Client(cluster) as client:
            dask_map = lambda fn, items: client.gather(client.map(fn, list(items), pure=False))  # noqa: E731
            segment_blockwise(
                mask[None], cc_block, (6, 20, 20), halo=1, rule="touch", out=out, map_fn=dask_map
            )
    assert np.array_equal(np.asarray(out[:]), local)  # bit for bit: the numbering is order-free
