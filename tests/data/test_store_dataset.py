"""TileDataset over chunked stores in forked DataLoader workers (zarr-python and tensorstore)."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import numpy as np
import pytest
from monai.data import DataLoader

from monai_em.data.ome_zarr import create_ome_zarr
from monai_em.data.sources import open_volume
from monai_em.data.tile_dataset import TileDataset

from .stores_fixtures import sample_volume, write_format
from .test_stores import reflect_oracle

SHAPE = (8, 24, 20)


def coords_volume(shape=SHAPE):
    """Each voxel holds its own linear index, so any chunk tells where it came from."""
    return np.arange(np.prod(shape), dtype=np.int32).reshape(shape)


def fork_loader(ds):
    return DataLoader(
        ds, batch_size=1, num_workers=2, multiprocessing_context=multiprocessing.get_context("fork")
    )


def test_ome_zarr_tile_dataset_two_fork_workers_each_chunk_once_per_round(tmp_path):
    data = coords_volume()
    arr = create_ome_zarr(tmp_path / "em.ome.zarr", SHAPE, "int32", (4, 8, 8), voxel_size=(30, 6, 6))
    arr[...] = data
    vol = open_volume(tmp_path / "em.ome.zarr")
    vol.read(((0, 2), (0, 2), (0, 2)))  # the parent reads before forking
    ds = TileDataset({"image": vol}, chunk_num=(2, 2, 2), chunk_iter=2, num_rounds=2, pad_size=2)
    reads = []
    for b in fork_loader(ds):
        box = b["chunk_box"][0].reshape(3, 2).tolist()
        np.testing.assert_array_equal(b["image"][0, 0].numpy(), reflect_oracle(data, box))
        reads.append((int(b["chunk_round"]), int(b["chunk_id"]), int(b["worker"])))
    per_round = Counter((r, c) for r, c, _ in reads)
    assert set(per_round) == {(r, c) for r in range(2) for c in range(8)}
    assert set(per_round.values()) == {2}  # chunk_iter samples of one read
    readers = {}
    for r, c, w in reads:
        readers.setdefault((r, c), set()).add(w)
    assert all(len(ws) == 1 for ws in readers.values()) and {w for _, _, w in reads} == {0, 1}


@pytest.mark.parametrize("kind", ["n5", "precomputed"])
def test_tensorstore_reads_in_fork_workers_after_the_parent_read(tmp_path, kind):
    """Tensorstore aborts a forked child of a process that used it: the workers must not crash."""
    data = sample_volume(SHAPE, np.uint16)
    vol = open_volume(tmp_path / write_format(kind, tmp_path, data))
    np.testing.assert_array_equal(vol.read(((0, 8), (0, 24), (0, 20))), data)  # parent uses tensorstore
    ds = TileDataset({"image": vol}, chunk_num=(2, 2, 1), mode="inference", pad_size=(1, 3, 3))
    seen = []
    for b in fork_loader(ds):
        box = b["chunk_box"][0].reshape(3, 2).tolist()
        np.testing.assert_array_equal(b["image"][0, 0].numpy(), reflect_oracle(data, box))
        seen.append(int(b["chunk_id"]))
    assert sorted(seen) == [0, 1, 2, 3]


def test_isolated_reads_match_in_process_reads(tmp_path):
    data = sample_volume(SHAPE, np.uint16)
    name = write_format("n5", tmp_path, data)
    box = ((-2, 5), (3, 27), (-1, 9))
    inproc = open_volume(tmp_path / name).read(box)
    from monai_em.data.stores import open_store

    isolated = open_store(tmp_path / name, isolate=True).read(box)
    np.testing.assert_array_equal(isolated, reflect_oracle(data, box))
    np.testing.assert_array_equal(inproc, isolated)
