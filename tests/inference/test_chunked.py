"""Chunked inference: equals whole-volume inference, resumes after a crash, splits ranks, stitches."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference
from PIL import Image

from monai_em.data.chunks import chunk_box, chunk_name
from monai_em.data.sources import HDF5Volume, open_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.data.volume import ArrayVolume
from monai_em.inference import ChunkedInference, chunk_path, predict_chunks, stitch_chunks
from monai_em.inference import chunked as chunked_module

from .helpers import Pointwise, pointwise_reference, reflect_conv

KW = dict(progress=False, output_dtype="float32")


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).integers(0, 256, size=(13, 37, 41), dtype=np.uint8)


def read_h5(path, dataset="main"):
    with h5py.File(path, "r") as h5:
        return h5[dataset][()]


def test_uneven_grid_equals_whole_volume_sliding_window(volume, tmp_path):
    net = Pointwise()
    infer = ChunkedInference(
        net, roi_size=(4, 16, 16), output_dir=tmp_path, chunk_num=(2, 3, 3), pad_size=(1, 4, 4),
        overlap=(0.5, 0.25, 0.25), output_dataset="pred", **KW,
    )  # fmt: skip
    out = read_h5(infer(volume), "pred")
    x = torch.from_numpy(volume.astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        whole = sliding_window_inference(x, (4, 16, 16), 1, net, overlap=(0.5, 0.25, 0.25), mode="gaussian")[
            0
        ]
    assert out.shape == (2, 13, 37, 41) and out.dtype == np.float32
    np.testing.assert_allclose(out, whole.numpy(), atol=1e-5)
    np.testing.assert_allclose(out, pointwise_reference(volume), atol=1e-5)
    names = sorted(p.name for p in tmp_path.glob("*-*.h5"))
    assert len(names) == 18 and f"{chunk_name(chunk_box((13, 37, 41), (2, 3, 3), 17, False))}.h5" in names


def test_context_padding_makes_chunk_borders_exact(tmp_path):
    """A 3x3x3 conv with reflect padding: chunks padded by >= 1 voxel of real context equal the whole-volume conv."""
    vol = np.random.default_rng(1).integers(0, 256, size=(10, 30, 34), dtype=np.uint8)
    net = reflect_conv()
    with torch.no_grad():
        whole = net(torch.from_numpy(vol.astype(np.float32) / 255)[None, None])[0].numpy()
    roi = (7, 17, 14)  # the largest padded chunk: one window per chunk, no window-border effects
    padded = read_h5(ChunkedInference(net, roi, tmp_path / "a", (2, 2, 3), pad_size=1, **KW)(vol))
    np.testing.assert_allclose(padded, whole, atol=1e-5)
    roi0 = (5, 15, 12)  # the largest unpadded chunk, no context at its borders
    unpadded = read_h5(ChunkedInference(net, roi0, tmp_path / "b", (2, 2, 3), pad_size=0, **KW)(vol))
    assert np.abs(unpadded - whole).max() > 1e-2  # the oracle can fail: missing context shows


def test_tiled_volume_input_equals_array_input(volume, tmp_path):
    json_path = write_tiled_volume(volume, tmp_path / "tiles", tile_size=(16, 16))
    kw = dict(roi_size=(4, 16, 16), chunk_num=(2, 2, 3), pad_size=(1, 4, 4), **KW)
    tiled = read_h5(ChunkedInference(Pointwise(), output_dir=tmp_path / "t", **kw)(str(json_path)))
    array = read_h5(ChunkedInference(Pointwise(), output_dir=tmp_path / "a", **kw)(ArrayVolume(volume)))
    np.testing.assert_array_equal(tiled, array)
    np.testing.assert_allclose(tiled, pointwise_reference(volume), atol=1e-5)


def test_kill_and_resume_identical_and_skips_finished_chunks(tmp_path):
    vol = np.random.default_rng(2).integers(0, 256, size=(16, 32, 32), dtype=np.uint8)
    kw = dict(roi_size=(8, 16, 16), chunk_num=(2, 2, 2), pad_size=(2, 4, 4), overlap=0.5, **KW)
    full_net = Pointwise()
    full = read_h5(ChunkedInference(full_net, output_dir=tmp_path / "full", **kw)(vol))
    per_chunk = full_net.calls // 8
    assert per_chunk * 8 == full_net.calls  # equal chunks, equal window counts

    out_dir = tmp_path / "run"
    crashing = Pointwise(fail_at_call=3 * per_chunk + 2)  # dies inside chunk 3
    with pytest.raises(RuntimeError, match="injected failure"):
        ChunkedInference(crashing, output_dir=out_dir, **kw)(vol)
    done = sorted(out_dir.glob("*.h5"))
    assert len(done) == 3 and not list(out_dir.glob(".*"))  # chunk 3 left no file, no temp
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    # a crash while writing (SIGKILL) can leave a temp file behind: it must not count as finished
    box3 = chunk_box(vol.shape, (2, 2, 2), 3, False)
    (out_dir / f".{chunk_name(box3)}.999.tmp.h5").write_bytes(b"\x89HDF half-written")

    resumed_net = Pointwise()
    resumed = read_h5(ChunkedInference(resumed_net, output_dir=out_dir, **kw)(vol))
    assert resumed_net.calls == 5 * per_chunk  # chunks 0-2 were not recomputed
    assert {p: p.stat().st_mtime_ns for p in done} == mtimes
    assert not list(out_dir.glob(".*"))  # the killed run's temp file was cleared when its chunk was redone
    np.testing.assert_array_equal(resumed, full)


def test_crash_during_write_leaves_no_finished_looking_file(tmp_path, monkeypatch):
    vol = np.zeros((8, 16, 16), np.uint8)

    def broken_replace(src, dst):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(chunked_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="injected"):
        predict_chunks(Pointwise(), vol, tmp_path, (8, 16, 16), **KW)
    assert list(tmp_path.iterdir()) == []


def test_rank_world_split_covers_all_chunks_once(volume, tmp_path):
    kw = dict(roi_size=(4, 16, 16), chunk_num=(1, 3, 2), pad_size=(1, 4, 4), **KW)
    nets = [Pointwise(), Pointwise()]
    assert ChunkedInference(nets[1], output_dir=tmp_path, rank=1, world_size=2, **kw)(volume) is None
    out = ChunkedInference(nets[0], output_dir=tmp_path, rank=0, world_size=2, **kw)(volume)
    single = Pointwise()
    ref = read_h5(ChunkedInference(single, output_dir=tmp_path / "single", **kw)(volume))
    assert nets[0].calls + nets[1].calls == single.calls and nets[0].calls > 0 and nets[1].calls > 0
    np.testing.assert_array_equal(read_h5(out), ref)


def test_rank_world_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    infer = ChunkedInference(Pointwise(), (4, 8, 8), tmp_path, chunk_num=(3, 1, 2), **KW)
    assert (infer.rank, infer.world_size) == (2, 3) and list(infer.chunk_ids()) == [4, 5]
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="rank 3 out of range for world_size 3"):
        ChunkedInference(Pointwise(), (4, 8, 8), tmp_path, **KW)


def test_uint8_output_and_sections(volume, tmp_path):
    infer = ChunkedInference(
        Pointwise(), (4, 16, 16), tmp_path, chunk_num=(2, 2, 2), pad_size=2, activation="sigmoid",
        output_dtype="uint8", section_dir=tmp_path / "png", progress=False,
    )  # fmt: skip
    out = read_h5(infer(volume))
    expected = np.round(255 / (1 + np.exp(-pointwise_reference(volume))))
    assert out.dtype == np.uint8 and np.abs(out.astype(float) - expected).max() <= 1
    with h5py.File(chunk_path(tmp_path, chunk_box(volume.shape, (2, 2, 2), 0, False)), "r") as h5:
        assert h5["main"].dtype == np.uint8 and h5["main"].attrs["box"].tolist() == [[0, 6], [0, 18], [0, 20]]
    # 2 channels -> one gray PNG per section and channel
    assert sorted(p.name for p in (tmp_path / "png").glob("*.png"))[:3] == [
        "0000_c0.png",
        "0000_c1.png",
        "0001_c0.png",
    ]
    assert len(list((tmp_path / "png").glob("*.png"))) == 2 * 13
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png" / "0004_c1.png")), out[1, 4])


def test_2d_model_over_volume_section_by_section(volume, tmp_path):
    net2d = Pointwise(dims=2)
    infer = ChunkedInference(
        net2d, roi_size=(16, 16), output_dir=tmp_path, chunk_num=(2, 2, 1), pad_size=(0, 4, 4), spatial_dims=2, **KW
    )  # fmt: skip
    out = read_h5(infer(volume))
    assert out.shape == (2, 13, 37, 41)  # a 2D network's channels, stacked back over z
    assert ChunkedInference(net2d, (16, 16), tmp_path, pad_size=4, spatial_dims=2).pad_size == (0, 4, 4)
    np.testing.assert_allclose(out, pointwise_reference(volume), atol=1e-5)


def test_stitch_errors(volume, tmp_path):
    predict_chunks(Pointwise(), volume, tmp_path, (4, 16, 16), chunk_num=(1, 2, 2), **KW)
    os.remove(chunk_path(tmp_path, chunk_box(volume.shape, (1, 2, 2), 2, False)))
    with pytest.raises(FileNotFoundError, match="1 chunk file"):
        stitch_chunks(tmp_path, volume.shape, (1, 2, 2), tmp_path / "out.h5")
    with h5py.File(chunk_path(tmp_path, chunk_box(volume.shape, (1, 1, 1), 0, False)), "w") as h5:
        h5["main"] = np.zeros((2, 1, 1, 1), np.float32)  # a foreign file under a chunk name
    with pytest.raises(ValueError, match="holds shape"):
        stitch_chunks(tmp_path, volume.shape, (1, 1, 1), tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="roi_size must be 3 positive"):
        ChunkedInference(Pointwise(), (8, 8), tmp_path)
    with pytest.raises(ValueError, match="overlap must be in"):
        ChunkedInference(Pointwise(), (8, 8, 8), tmp_path, overlap=(0.5, 1.0, 0.5))
    with pytest.raises(ValueError, match="output_dtype must be one of"):
        ChunkedInference(Pointwise(), (8, 8, 8), tmp_path, output_dtype="int8")
    with pytest.raises(ValueError, match="chunk_num must be three"):
        ChunkedInference(Pointwise(), (8, 8, 8), tmp_path, chunk_num=(2, 2))
    with pytest.raises(ValueError, match="activation must be one of"):
        ChunkedInference(Pointwise(), (8, 8, 8), tmp_path, activation="relu")


def test_open_volume_reads_hdf5_lazily_and_npy(volume, tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as h5:
        h5["raw"] = volume
    vol = open_volume(tmp_path / "v.h5", dataset="raw")
    assert isinstance(vol, HDF5Volume)  # stays on disk: boxes are read from the file
    np.testing.assert_array_equal(
        vol.read(((1, 3), (-2, 5), (0, 4))), np.pad(volume, 2, "reflect")[3:5, 0:7, 2:6]
    )
    np.save(tmp_path / "v.npy", volume)
    assert open_volume(tmp_path / "v.npy").shape == volume.shape
    with pytest.raises(ValueError, match="no dataset 'nope'"):
        open_volume(tmp_path / "v.h5", dataset="nope")
    with pytest.raises(FileNotFoundError, match="not found"):
        open_volume(tmp_path / "missing.h5")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_network_windows_on_gpu_output_on_cpu(volume, tmp_path):
    net = reflect_conv().cuda()
    seen = []
    net.register_forward_pre_hook(lambda m, args: seen.append(args[0].device.type))
    kw = dict(roi_size=(8, 24, 24), chunk_num=(2, 2, 2), pad_size=(2, 6, 6), sw_batch_size=4, **KW)
    gpu = read_h5(ChunkedInference(net, output_dir=tmp_path / "gpu", **kw)(volume))
    cpu = read_h5(ChunkedInference(net.cpu(), output_dir=tmp_path / "cpu", **kw)(volume))
    assert set(seen[: len(seen) // 2]) == {"cuda"}  # windows ran on the network's device
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    torch.cuda.reset_peak_memory_stats()
    net.cuda()
    ChunkedInference(net, output_dir=tmp_path / "gpu2", **kw).predict(volume)
    assert torch.cuda.max_memory_allocated() < 32 * 2**20  # the blend buffer stays on the CPU
