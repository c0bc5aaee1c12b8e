import time
import warnings
from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, Lambdad, RandSpatialCropd, RandSpatialCropSamplesd

from monai_em.data.chunks import chunk_box, chunk_name
from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_dataset import TileDataset
from monai_em.data.tile_format import write_tiled_volume
from monai_em.data.volume import ArrayVolume

SHAPE = (8, 24, 20)


def coords_volume(shape=SHAPE):
    """Each voxel holds its own linear index, so any crop tells where it came from."""
    return np.arange(np.prod(shape), dtype=np.int32).reshape(shape)


def crop(size=(2, 4, 4)):
    return RandSpatialCropd(["image"], size, random_size=False)


def collect(ds, num_workers=0, batch_size=1):
    return list(DataLoader(ds, batch_size=batch_size, num_workers=num_workers))


def test_sharding_two_workers_two_ranks_each_chunk_once_per_round():
    vol = coords_volume()
    reads = []
    for rank in range(2):
        ds = TileDataset(
            {"image": vol}, chunk_num=(2, 2, 2), chunk_iter=3, num_rounds=3, rank=rank, world_size=2
        )
        for b in collect(ds, num_workers=2):
            reads.append((int(b["chunk_round"]), int(b["chunk_id"]), int(b["worker"])))
    assert {w for _, _, w in reads} == {0, 1, 2, 3}  # rank x num_workers + worker id
    per_round = Counter((r, c) for r, c, _ in reads)
    assert set(per_round) == {(r, c) for r in range(3) for c in range(8)}
    assert set(per_round.values()) == {3}  # chunk_iter samples of one read
    readers = {}
    for r, c, w in reads:
        readers.setdefault((r, c), set()).add(w)
    assert all(len(ws) == 1 for ws in readers.values())  # exactly one (rank, worker) per chunk per round
    orders = [[c for r, c, w in reads if r == rnd and w == 0] for rnd in range(3)]
    assert orders[0] != orders[1] or orders[1] != orders[2]  # a new random share each round


def test_samples_come_from_their_chunk_and_arrays_are_shared():
    vol = coords_volume()
    ids = []
    ds = TileDataset(
        {"image": vol},
        chunk_num=(1, 2, 2),
        chunk_iter=4,
        num_rounds=1,
        transform=Compose([Lambdad("image", lambda x: ids.append(id(x)) or x), crop()]),
    )
    samples = list(ds)
    assert len(samples) == 16 and Counter(s["chunk_id"] for s in samples) == {0: 4, 1: 4, 2: 4, 3: 4}
    assert len(set(ids)) == 4  # one array object per chunk, shared by its chunk_iter samples
    for s in samples:
        (z0, z1), (y0, y1), (x0, x1) = chunk_box(SHAPE, (1, 2, 2), s["chunk_id"], train=True)
        assert list(s["chunk_box"]) == [z0, z1, y0, y1, x0, x1]
        z, y, x = np.unravel_index(np.asarray(s["image"]).ravel(), SHAPE)
        assert (
            z0 <= z.min()
            and z.max() < z1
            and y0 <= y.min()
            and y.max() < y1
            and x0 <= x.min()
            and x.max() < x1
        )


def first_voxels(ds, num_workers, n):
    """Per global worker, the first voxel (= crop origin) of its first n samples."""
    out = {}
    for b in DataLoader(ds, batch_size=1, num_workers=num_workers):
        out.setdefault(int(b["worker"]), []).append(int(b["image"].flatten()[0]))
    return {w: v[:n] for w, v in out.items()}


def test_worker_and_rank_streams_differ_and_are_reproducible_from_seed():
    vol = coords_volume()
    make = lambda rank, seed=0: TileDataset(  # noqa: E731
        {"image": vol}, chunk_iter=6, num_rounds=1, transform=crop(), seed=seed, rank=rank, world_size=2
    )
    torch.manual_seed(1)
    runs = [first_voxels(make(r), 2, 6) for r in (0, 1)]
    draws = {**runs[0], **runs[1]}
    assert sorted(draws) == [0, 1, 2, 3]  # more workers than chunks: all read the one chunk
    seqs = [tuple(v) for v in draws.values()]
    assert len(set(seqs)) == 4  # no two (rank, worker) share augmentation draws
    torch.manual_seed(2)  # the DataLoader's own seeding does not change the streams
    assert first_voxels(make(0), 2, 6) == runs[0]
    assert first_voxels(make(0, seed=1), 2, 6) != runs[0]


def test_epochs_draw_new_orders_and_augmentations():
    ds = TileDataset(
        {"image": coords_volume()}, chunk_num=(2, 2, 1), chunk_iter=2, num_rounds=1, transform=crop()
    )
    first = [(s["chunk_id"], int(s["image"].flatten()[0])) for s in ds]
    second = [(s["chunk_id"], int(s["image"].flatten()[0])) for s in ds]
    ds.set_epoch(0)
    again = [(s["chunk_id"], int(s["image"].flatten()[0])) for s in ds]
    assert first != second and again == first


def test_list_transform_is_flattened():
    ds = TileDataset(
        {"image": coords_volume()},
        chunk_iter=2,
        num_rounds=2,
        transform=RandSpatialCropSamplesd(["image"], (2, 4, 4), num_samples=3, random_size=False),
    )
    batches = collect(ds, batch_size=4)
    assert [tuple(b["image"].shape) for b in batches] == [(4, 1, 2, 4, 4)] * 3


def test_inference_chunks_cover_volume_once_with_padding(tmp_path):
    v = make_em_volume((8, 40, 36), seed=2)
    paths = {
        "image": write_tiled_volume(v.image, tmp_path / "im", tile_size=16),
        "label": write_tiled_volume(v.label, tmp_path / "lb", tile_size=(16, 12)),
    }
    pad = (1, 3, 2)
    padded = np.pad(v.image, [(p, p) for p in pad], mode="reflect")
    out = np.zeros_like(v.image)
    count = np.zeros(v.image.shape, np.int32)
    seen = []
    for rank in range(2):
        ds = TileDataset(paths, chunk_num=(2, 2, 3), mode="inference", pad_size=pad, rank=rank, world_size=2)
        for s in collect(ds, num_workers=2):
            seen.append((rank, int(s["chunk_id"])))
            z0, z1, y0, y1, x0, x1 = s["chunk_box"][0].tolist()
            img = s["image"][0, 0].numpy()
            np.testing.assert_array_equal(img, padded[z0 + 1 : z1 + 1, y0 + 3 : y1 + 3, x0 + 2 : x1 + 2])
            inner = img[pad[0] : -pad[0], pad[1] : -pad[1], pad[2] : -pad[2]]
            box = tuple(int(t) for t in s["chunk_name"][0].split("-"))
            assert (box[0], box[2], box[4]) == (z0 + pad[0], y0 + pad[1], x0 + pad[2])
            out[box[0] : box[1], box[2] : box[3], box[4] : box[5]] = inner
            count[box[0] : box[1], box[2] : box[3], box[4] : box[5]] += 1
            assert s["label"].dtype == torch.int32
    assert (count == 1).all() and np.array_equal(out, v.image)
    assert sorted(c for r, c in seen if r == 0) == list(range(6))  # rank-world split: contiguous halves
    assert sorted(c for r, c in seen if r == 1) == list(range(6, 12))


def test_inference_skips_chunks_whose_output_exists(tmp_path):
    ds = TileDataset(
        {"image": coords_volume()},
        chunk_num=(2, 1, 1),
        mode="inference",
        skip_if_exists=str(tmp_path / "{name}.h5"),
    )
    (tmp_path / f"{chunk_name(ds.chunk_box(0, padded=False))}.h5").write_bytes(b"")
    assert [s["chunk_id"] for s in ds] == [1]


class SlowVolume(ArrayVolume):
    def read(self, box):
        time.sleep(0.15)
        return super().read(box)


def test_prefetch_hides_chunk_loads():
    ds = TileDataset({"image": SlowVolume(coords_volume())}, chunk_num=(2, 2, 1), chunk_iter=2, num_rounds=1)
    for _ in ds:
        time.sleep(0.15)  # the training step: 0.3 s per chunk > 0.15 s read
    assert len(ds.load_wait_s) == 4 and ds.load_wait_s[0] > 0.1
    assert max(ds.load_wait_s[1:]) < 0.1
    slow = TileDataset(
        {"image": SlowVolume(coords_volume())},
        chunk_num=(2, 1, 1),
        chunk_iter=1,
        num_rounds=1,
        prefetch=False,
    )
    list(slow)
    assert min(slow.load_wait_s) > 0.1


def test_whole_volume_files_give_the_same_samples(tmp_path):
    v = make_em_volume((6, 32, 32), seed=4)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["raw"], f["seg"] = v.image, v.label
    kw = dict(
        chunk_num=(1, 2, 1),
        chunk_iter=3,
        num_rounds=1,
        transform=RandSpatialCropd(["image", "label"], (2, 8, 8)),
    )
    a = list(
        TileDataset(
            {
                "image": {"path": tmp_path / "v.h5", "dataset": "raw"},
                "label": {"path": tmp_path / "v.h5", "dataset": "seg"},
            },
            **kw,
        )
    )
    b = list(TileDataset({"image": v.image, "label": v.label}, **kw))
    assert len(a) == 6
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x["image"]), np.asarray(y["image"]))
        np.testing.assert_array_equal(np.asarray(x["label"]), np.asarray(y["label"]))


def test_supervised_trainer_with_epoch_length():
    ignite = pytest.importorskip("ignite")  # noqa: F841
    from monai.engines import SupervisedTrainer

    v = make_em_volume((8, 32, 32), seed=0)
    ds = TileDataset(
        {"image": v.image.astype(np.float32), "label": (v.label > 0).astype(np.float32)},
        chunk_num=(1, 2, 2),
        chunk_iter=2,
        transform=RandSpatialCropd(["image", "label"], (4, 8, 8)),
    )
    net = torch.nn.Conv3d(1, 1, 3, padding=1)
    chunks = []
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=DataLoader(ds, batch_size=2, num_workers=0),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), 1e-3),
        loss_function=torch.nn.MSELoss(),
        epoch_length=3,
        iteration_update=lambda engine, batch: chunks.extend(batch["chunk_id"].tolist()) or {},
    )
    trainer.run()
    assert trainer.state.iteration == 6 and len(chunks) == 12
    # the endless stream continued across epochs: 12 samples = 6 chunks x chunk_iter, rounds of all 4 chunks
    assert Counter(chunks[:8]) == {0: 2, 1: 2, 2: 2, 3: 2}


def test_bad_arguments():
    vol = coords_volume()
    with pytest.raises(ValueError, match="mode"):
        TileDataset({"image": vol}, mode="eval")
    with pytest.raises(ValueError, match="too short"):
        TileDataset({"image": vol}, chunk_num=(20, 1, 1))
    with pytest.raises(ValueError, match=r"'label'.*shape \(8, 24, 19\)"):
        TileDataset({"image": vol, "label": vol[..., 1:]})
    with pytest.raises(ValueError, match="rank 2"):
        next(iter(TileDataset({"image": vol}, rank=2, world_size=2)))


def test_an_unnamed_role_warns_and_explicit_roles_do_not(tmp_path):
    vol = make_em_volume((4, 32, 32), seed=0)
    with pytest.warns(UserWarning, match=r"'gt'.*roles=\{'gt': 'label'\}"):
        TileDataset({"image": vol.image, "gt": vol.label}, mode="inference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TileDataset({"image": vol.image, "gt": vol.label}, stage="inference", roles={"gt": "label"})
