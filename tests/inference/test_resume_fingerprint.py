"""Resuming chunked inference: chunk fingerprints, the DDP split of missing chunks, errors naming the chunk."""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest
import torch

from monai_em.data.chunks import chunk_box
from monai_em.inference import ChunkedInference, TestTimeFlips, chunk_path, stitch_chunks
from monai_em.inference import chunked as chunked_module

from .helpers import Counted, Pointwise, reflect_conv

KW = dict(roi_size=(8, 8, 8), chunk_num=(1, 2, 2), pad_size=(0, 2, 2), overlap=0.5, progress=False,
          output_dtype="float32")  # fmt: skip
SHAPE = (8, 16, 16)


@pytest.fixture(scope="module")
def vol():
    return np.random.default_rng(5).integers(0, 256, size=SHAPE, dtype=np.uint8)


def read_h5(path):
    with h5py.File(path, "r") as h5:
        return h5["main"][()]


def paths_of(out_dir, ids, chunk_num=(1, 2, 2)):
    return [chunk_path(out_dir, chunk_box(SHAPE, chunk_num, i, train=False)) for i in ids]


def test_changed_weights_recompute_every_chunk_same_network_skips(vol, tmp_path, caplog):
    out = tmp_path / "pred"
    first = Counted(reflect_conv(0))
    ChunkedInference(first, output_dir=out, **KW)(vol)
    per_run = first.calls
    files = paths_of(out, range(4))
    mtimes = [p.stat().st_mtime_ns for p in files]

    same = Counted(reflect_conv(0))  # a fresh instance with equal weights: nothing to redo
    ChunkedInference(same, output_dir=out, **KW)(vol)
    assert same.calls == 0 and [p.stat().st_mtime_ns for p in files] == mtimes

    retrained = Counted(reflect_conv(0))
    with torch.no_grad():
        retrained.inner.weight[0, 0, 1, 1, 1] += 0.5  # "retrained": one weight changed
    with caplog.at_level(logging.WARNING, logger=chunked_module.__name__):
        result = read_h5(ChunkedInference(retrained, output_dir=out, **KW)(vol))
    assert retrained.calls == per_run  # every chunk recomputed
    assert all(p.name in caplog.text for p in files)  # each stale file named in a warning
    fresh = read_h5(ChunkedInference(Counted(retrained.inner), output_dir=tmp_path / "fresh", **KW)(vol))
    np.testing.assert_array_equal(result, fresh)
    with torch.no_grad():
        x = torch.from_numpy(vol.astype(np.float32) / 255)[None, None]
        stale = first.inner(x)[0].numpy()
    assert np.abs(result - stale).max() > 1e-3  # the oracle can fail: the old output would differ

    # other settings (here the overlap) change the fingerprint too
    again = Counted(retrained.inner)
    ChunkedInference(again, output_dir=out, **{**KW, "overlap": 0.25})(vol)
    assert again.calls > 0


def test_one_stale_chunk_is_redone_alone_and_mixed_fingerprints_refuse_to_stitch(vol, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    net_a = Counted(Pointwise())
    ChunkedInference(net_a, output_dir=a, **KW)(vol)
    ChunkedInference(reflect_conv(1), output_dir=b, **KW)(vol)
    stale = paths_of(a, [2])[0]
    shutil.copyfile(paths_of(b, [2])[0], stale)  # chunk 2 from another network

    with pytest.raises(ValueError, match="different networks or settings.*" + stale.name):
        stitch_chunks(a, SHAPE, (1, 2, 2), tmp_path / "mixed.h5")
    assert not (tmp_path / "mixed.h5").exists()

    redo = Counted(Pointwise())
    ChunkedInference(redo, output_dir=a, **KW)(vol)
    assert redo.calls * 4 == net_a.calls  # only the stale chunk (1 of 4 equal chunks)
    stitch_chunks(a, SHAPE, (1, 2, 2), tmp_path / "ok.h5")  # consistent again


def test_missing_chunks_split_between_simulated_ranks(vol, tmp_path):
    chunk_num = (1, 2, 3)
    kw = {**KW, "chunk_num": chunk_num}
    ChunkedInference(Pointwise(), output_dir=tmp_path, **kw)(vol)
    for p in paths_of(tmp_path, [0, 1, 3, 5], chunk_num):  # rank 0's whole static share among them
        p.unlink()
    missing = {0, 1, 3, 5}
    for world in (1, 2, 3, 4, 5):
        shares = [
            ChunkedInference(Pointwise(), output_dir=tmp_path, rank=r, world_size=world, **kw).chunk_ids(
                SHAPE
            )
            for r in range(world)
        ]
        flat = [i for s in shares for i in s]
        assert sorted(flat) == sorted(missing)  # union is the missing set, each once
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1, (world, shares)


def test_distributed_rank_predicts_its_share_of_missing_chunks(vol, tmp_path, monkeypatch):
    """Resuming under torch.distributed: rank 1 of 2 whose static share is finished still gets work."""
    ChunkedInference(Counted(Pointwise()), output_dir=tmp_path, **KW)(vol)
    for p in paths_of(tmp_path, [0, 1]):  # rank 0's static share; rank 1's (2, 3) is finished
        p.unlink()
    events = []
    monkeypatch.setattr(chunked_module, "_distributed", lambda: True)
    monkeypatch.setattr(torch.distributed, "barrier", lambda *a, **k: events.append("barrier"))
    write = chunked_module._write_chunk
    monkeypatch.setattr(
        chunked_module, "_write_chunk", lambda path, *a: (events.append(path), write(path, *a))
    )
    net = Counted(Pointwise())
    written = ChunkedInference(net, output_dir=tmp_path, rank=1, world_size=2, stitch=False, **KW).predict(
        vol
    )
    assert written == paths_of(tmp_path, [1]) and net.calls > 0
    assert events == ["barrier", written[0]]  # every rank lists the missing chunks before anyone writes


def test_chunk_files_are_fsynced_before_rename(vol, tmp_path, monkeypatch):
    events = []
    fsync, replace = chunked_module.os.fsync, chunked_module.os.replace
    monkeypatch.setattr(chunked_module.os, "fsync", lambda fd: (events.append("fsync"), fsync(fd)))
    monkeypatch.setattr(chunked_module.os, "replace", lambda a, b: (events.append("replace"), replace(a, b)))
    ChunkedInference(Pointwise(), output_dir=tmp_path, stitch=False, **{**KW, "chunk_num": (1, 1, 2)})(vol)
    assert events == ["fsync", "replace"] * 2


def test_png_sections_of_float_output_rejected_before_any_chunk(tmp_path):
    net = Counted(Pointwise())
    with pytest.raises(ValueError, match="section_ext 'png' needs output_dtype 'uint8'"):
        ChunkedInference(net, output_dir=tmp_path, section_dir=tmp_path / "s", **KW)
    assert net.calls == 0 and not list(tmp_path.iterdir())


def test_failure_inside_a_chunk_names_the_chunk(vol, tmp_path):
    box = chunk_box(SHAPE, (1, 2, 2), 0, train=False)
    name = chunk_path(tmp_path, box).stem
    with pytest.raises(RuntimeError, match=f"chunk 0 \\({name}\\).*injected failure") as info:
        ChunkedInference(Pointwise(fail_at_call=1), output_dir=tmp_path, **KW)(vol)
    assert isinstance(info.value.__cause__, RuntimeError) and "injected" in str(info.value.__cause__)


def test_2d_network_tta_skips_the_z_flip_of_one_section_windows(vol, tmp_path):
    kw = dict(roi_size=(8, 8), chunk_num=(1, 1, 1), pad_size=0, spatial_dims=2, overlap=0.5, progress=False,
              output_dtype="float32")  # fmt: skip
    plain, tta = Pointwise(dims=2), Pointwise(dims=2)
    ref = read_h5(ChunkedInference(plain, output_dir=tmp_path / "p", **kw)(vol))
    out = read_h5(ChunkedInference(tta, output_dir=tmp_path / "t", tta=TestTimeFlips(), **kw)(vol))
    assert tta.calls == 8 * plain.calls  # y, x flips x transpose; no z flip of a 1-section window
    np.testing.assert_allclose(out, ref, atol=1e-5)  # a pointwise network is flip-invariant
