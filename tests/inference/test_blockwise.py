"""Blockwise inference in-process: equals whole-volume inference, writes only its aligned chunks, resumes."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import zarr

from monai_em.data.chunks import BlockPlan
from monai_em.data.ome_zarr import open_ome_zarr, read_ngff_transform
from monai_em.data.subvolume import SubVolume
from monai_em.data.volume import ArrayVolume
from monai_em.inference import ChunkedInference
from monai_em.inference.backends import run_blocks
from monai_em.inference.blockwise import markers_folder, prediction_job
from monai_em.inference.settings import WindowSettings

from .blockfns import CountBlocks, FailAt
from .helpers import Pointwise, pointwise_reference, reflect_conv

SHAPE = (13, 37, 41)  # not a multiple of the chunks (4, 8, 8) nor of the blocks (4, 16, 16)
CHUNKS, BLOCK, HALO = (4, 8, 8), (4, 16, 16), (2, 4, 4)
SETTINGS = WindowSettings((4, 12, 12), overlap=0.5, output_dtype="float32")


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).integers(0, 256, size=SHAPE, dtype=np.uint8)


def job_of(net, volume, out, **kw):
    return prediction_job(
        net, volume, out, SETTINGS, CHUNKS, kw.pop("block_shape", BLOCK), kw.pop("halo", HALO), **kw
    )


def test_blocks_equal_the_whole_volume_network_at_every_border(volume, tmp_path):
    """A 3x3x3 reflect-padded conv: blocks read with >= 1 voxel of mirrored context equal the conv of the whole volume.

    One window per read box (roi >= read box) so only block borders can differ; without halo they do.
    """
    net = reflect_conv()
    with torch.no_grad():
        whole = net(torch.from_numpy(volume.astype(np.float32) / 255)[None, None])[0].numpy()
    settings = WindowSettings((8, 24, 24), overlap=0.0, output_dtype="float32")
    job = prediction_job(net, volume, tmp_path / "p.zarr", settings, CHUNKS, BLOCK, halo=(2, 4, 4))
    assert len(job.plan) == 4 * 3 * 3 and run_blocks(job, progress=False) == list(range(36))
    out = open_ome_zarr(tmp_path / "p.zarr")[:]
    assert out.shape == (1, *SHAPE)
    np.testing.assert_allclose(out, whole, atol=1e-5)
    one_window = WindowSettings(BLOCK, overlap=0.0, output_dtype="float32")  # read box = write box inside
    job0 = prediction_job(net, volume, tmp_path / "h0.zarr", one_window, CHUNKS, BLOCK, halo=0)
    run_blocks(job0, progress=False)
    assert np.abs(open_ome_zarr(tmp_path / "h0.zarr")[:] - whole).max() > 1e-2  # the oracle can fail


def test_a_block_writes_exactly_its_aligned_chunks(volume, tmp_path):
    job = job_of(reflect_conv(), volume, tmp_path / "p.zarr")
    block = job.plan.block(7)  # z 0-4, y 32-37 (clipped), x 16-32
    assert block.write_box == ((0, 4), (32, 37), (16, 32)) and block.read_box == ((-2, 6), (28, 41), (12, 36))
    job.run(7)
    level0 = tmp_path / "p.zarr" / "0" / "c"
    keys = sorted(p.relative_to(level0).as_posix() for p in level0.rglob("*") if p.is_file())
    assert keys == ["0/0/4/2", "0/0/4/3"]  # chunk (c, z, y, x): the block's two chunks, nothing else
    marker = json.loads((markers_folder(tmp_path / "p.zarr") / f"{block.name}.json").read_text())
    assert marker == {"fingerprint": job.fingerprint, "box": [[0, 4], [32, 37], [16, 32]]}


def test_crash_then_rerun_computes_only_missing_blocks(volume, tmp_path):
    ref = job_of(reflect_conv(), volume, tmp_path / "ref.zarr")
    run_blocks(ref, progress=False)
    job = job_of(reflect_conv(), volume, tmp_path / "p.zarr")
    job.fn = FailAt(job.fn, 5)
    with pytest.raises(RuntimeError, match=r"block 5 \(0-4-16-32-32-41\) of .*p.zarr failed.*injected"):
        run_blocks(job, progress=False)
    job = job_of(reflect_conv(), volume, tmp_path / "p.zarr")
    assert job.missing() == list(range(5, len(job.plan)))
    job.fn = CountBlocks(job.fn, tmp_path / "count.txt")
    assert run_blocks(job, progress=False) == list(range(5, len(job.plan)))
    assert job.fn.counted() == list(range(5, len(job.plan)))
    np.testing.assert_array_equal(
        open_ome_zarr(tmp_path / "p.zarr")[:], open_ome_zarr(tmp_path / "ref.zarr")[:]
    )
    assert run_blocks(job, progress=False) == [] and job.missing() == []


def test_changed_network_recomputes_stale_blocks(volume, tmp_path):
    run_blocks(job_of(reflect_conv(0), volume, tmp_path / "p.zarr"), progress=False)
    retrained = reflect_conv(0)
    with torch.no_grad():
        retrained.weight[0, 0, 1, 1, 1] += 0.5
    job = job_of(retrained, volume, tmp_path / "p.zarr")
    n = len(job.plan)
    assert job.missing() == list(range(n))  # every marker is stale
    job.fn = CountBlocks(job.fn, tmp_path / "count.txt")
    run_blocks(job, progress=False)
    assert job.fn.counted() == list(range(n))
    fresh = job_of(retrained, volume, tmp_path / "fresh.zarr")
    run_blocks(fresh, progress=False)
    np.testing.assert_array_equal(
        open_ome_zarr(tmp_path / "p.zarr")[:], open_ome_zarr(tmp_path / "fresh.zarr")[:]
    )
    same = job_of(reflect_conv(0), volume, tmp_path / "p.zarr")  # back to the first network: all stale again
    assert same.missing() == list(range(n))
    assert zarr.open_group(tmp_path / "p.zarr").attrs["fingerprint"] == same.fingerprint


def test_ranks_split_the_missing_blocks(volume, tmp_path):
    """torchrun ranks list the missing blocks before any writes: each rank runs on a copy of that state."""
    job = job_of(reflect_conv(), volume, tmp_path / "p.zarr")
    for i in (0, 1, 2, 9):
        job.run(i)
    shares = []
    for r in range(3):
        for name in ("p.zarr", "p.blocks"):
            shutil.copytree(tmp_path / name, tmp_path / f"rank{r}" / name)
        rank_job = job_of(reflect_conv(), volume, tmp_path / f"rank{r}" / "p.zarr")
        shares.append(run_blocks(rank_job, rank=r, world_size=3, progress=False))
    n = len(job.plan)
    assert sorted(i for s in shares for i in s) == sorted(set(range(n)) - {0, 1, 2, 9})  # each once
    assert [len(s) for s in shares] == [10, 11, 11]


def test_block_function_of_wrong_shape_names_the_block(volume, tmp_path):
    job = job_of(reflect_conv(), volume, tmp_path / "p.zarr")
    job.fn = lambda data, block: np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(
        ValueError, match=r"\(1, 2, 2, 2\) float32 for block 0-4-0-16-0-16 .* expected \(1, 4, 16, 16\)"
    ):
        job.run(0)
    assert job.missing() == list(range(len(job.plan)))  # nothing marked


def test_plan_rounds_blocks_up_to_whole_chunks():
    plan = BlockPlan.aligned(SHAPE, CHUNKS, block_shape=(5, 10, 16), halo=1)
    assert plan.block_shape == (8, 16, 16) and plan.grid == (2, 3, 3)
    with pytest.raises(ValueError, match="block id 18 out of range for a plan of 18 blocks"):
        plan.block(18)
    with pytest.raises(ValueError, match="halo needs 1 or 3 integers >= 0"):
        BlockPlan(SHAPE, CHUNKS, halo=-1)


def test_output_is_ome_zarr_with_the_inputs_voxel_size_and_z_range_offset(volume, tmp_path):
    source = ArrayVolume(volume, voxel_size=(30, 8, 8), offset=(0, 80, 0), unit="nanometer")
    job = job_of(Pointwise(), SubVolume(source, z_range=[3, None]), tmp_path / "p.zarr")
    run_blocks(job, progress=False)
    assert read_ngff_transform(tmp_path / "p.zarr") == ((30.0, 8.0, 8.0), (90.0, 80.0, 0.0), "nanometer")
    attrs = zarr.open_group(tmp_path / "p.zarr").attrs
    assert attrs["fingerprint"] == job.fingerprint and attrs["settings"]["halo"] == list(HALO)
    np.testing.assert_allclose(
        open_ome_zarr(tmp_path / "p.zarr")[:], pointwise_reference(volume[3:]), atol=1e-6
    )


def test_chunked_inference_ome_zarr_output_equals_its_hdf5_output(volume, tmp_path):
    kw = dict(
        roi_size=(4, 12, 12), chunk_num=(2, 3, 2), pad_size=(2, 4, 4), progress=False, output_dtype="float32"
    )
    h5_out = ChunkedInference(Pointwise(), output_dir=tmp_path / "h5", **kw)(volume)
    with h5py.File(h5_out, "r") as h5:
        ref = h5["main"][()]
    infer = ChunkedInference(Pointwise(), output_dir=tmp_path / "z", output_format="ome-zarr", output_chunks=(4, 8, 8),
                             **kw)  # fmt: skip
    out = infer(volume)
    assert out == tmp_path / "z" / "prediction.ome.zarr" and open_ome_zarr(out).chunks == (2, 4, 8, 8)
    assert infer.blockwise_job(volume).plan.block_shape == (
        8,
        16,
        24,
    )  # ceil((13, 37, 41) / (2, 3, 2)), whole chunks
    np.testing.assert_allclose(
        open_ome_zarr(out)[:], ref, atol=1e-5
    )  # other block boxes: float blending order
    np.testing.assert_allclose(ref, pointwise_reference(volume), atol=1e-5)
    with pytest.raises(ValueError, match="backend 'dask' writes blocks into one OME-Zarr image"):
        ChunkedInference(Pointwise(), output_dir=tmp_path, backend="dask", **kw)
    with pytest.raises(ValueError, match="output_format must be one of"):
        ChunkedInference(Pointwise(), output_dir=tmp_path, output_format="n5", **kw)


def test_sharded_output_blocks_are_whole_shards(volume, tmp_path):
    ref = job_of(reflect_conv(), volume, tmp_path / "ref.zarr")
    run_blocks(ref, progress=False)
    job = job_of(reflect_conv(), volume, tmp_path / "p.zarr", block_shape=(4, 8, 8), shards=(4, 16, 16))
    assert job.plan.block_shape == (4, 16, 16)  # rounded up to whole shards, not only chunks
    run_blocks(job, progress=False)
    arr = open_ome_zarr(tmp_path / "p.zarr")
    assert arr.shards == (1, 4, 16, 16) and arr.chunks == (1, 4, 8, 8)
    np.testing.assert_array_equal(arr[:], open_ome_zarr(tmp_path / "ref.zarr")[:])
    with pytest.raises(ValueError, match=r"block shape \(4, 8, 8\) is not a multiple of the output shards"):
        type(job)(volume, BlockPlan(SHAPE, (4, 8, 8)), job.fn, tmp_path / "q.zarr", "x").create(
            1, "float32", CHUNKS, shards=(4, 16, 16)
        )


@pytest.mark.parametrize(
    "shape, chunks, block",
    [
        ((13, 37, 41), (4, 8, 8), (4, 16, 16)),
        ((1, 5, 300), (2, 3, 64), None),
        ((9, 9, 9), (9, 9, 9), (1, 1, 1)),
    ],
)
def test_plan_write_boxes_partition_the_volume_on_chunk_boundaries(shape, chunks, block):
    plan = BlockPlan.aligned(shape, chunks, block, halo=(1, 2, 3), min_read=(4, 4, 4))
    cover = np.zeros(shape, np.int32)
    for b in plan:
        cover[tuple(slice(a, e) for a, e in b.write_box)] += 1
        assert all(
            a % c == 0 for (a, _), c in zip(b.write_box, chunks, strict=True)
        )  # starts on a chunk boundary
        assert all(
            e % c == 0 or e == s for (_, e), c, s in zip(b.write_box, chunks, shape, strict=True)
        )  # ends on one, or the edge
        for (a, e), (ra, re), h in zip(b.write_box, b.read_box, (1, 2, 3), strict=True):
            assert ra <= a - h and re >= e + h and re - ra >= max(4, e - a + 2 * h)
        assert cover[tuple(slice(a, e) for a, e in b.write_box)].max() == 1
    assert (cover == 1).all()  # every voxel written by exactly one block
