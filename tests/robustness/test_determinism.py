"""Determinism with real DataLoader workers: same seed -> bit-identical batches; seeds, workers and ranks differ.

(a) a map-style MONAI ``Dataset`` with PyTC's default ``EMAugmentor`` pipeline, seeded through the
DataLoader's ``generator`` (MONAI's ``worker_init_fn`` reseeds every transform in each worker);
(b) a ``TileDataset`` in train mode (tiled volume on disk, rejection crop + augmentor), seeded by its
``seed``. Every item of (a) is the SAME volume, so two workers drawing the same stream would
produce equal batches. Stream collisions are checked on raw draws: a probe transform records one
62-bit draw from its RNG per sample, and over every simulated rank x worker x draw no value repeats.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Randomizable, Transform

from monai_em.data import TileDataset, make_em_volume, write_tiled_volume
from monai_em.transforms import EMAugmentor, RandRejectionCropd

INPUT = (4, 16, 16)
KEYS = ("image", "label", "valid_mask")


class DrawProbe(Randomizable, Transform):
    """Writes one raw 62-bit draw of its own RNG into every sample (``"draw"``)."""

    def randomize(self, data=None) -> None:
        self.value = int(self.R.randint(0, 2**62, dtype=np.int64))

    def __call__(self, data):
        self.randomize()
        return {**data, "draw": self.value}


def augmentor() -> EMAugmentor:
    return EMAugmentor.from_targets(
        INPUT, {"image": "img", "label": "mask", "valid_mask": "mask"}, misalignment={"displacement": 4}
    )


def batches(loader, n: int) -> list[dict]:
    return [
        {k: (v.as_tensor() if hasattr(v, "as_tensor") else v) for k, v in b.items()}
        for b in itertools.islice(iter(loader), n)
    ]


def same(a: list[dict], b: list[dict], keys=KEYS) -> bool:
    return all(
        torch.equal(x[k], y[k]) and x[k].dtype == y[k].dtype for x, y in zip(a, b, strict=True) for k in keys
    )


# ----------------------------------------------------------------------------------- map-style


@pytest.fixture(scope="module")
def map_dataset():
    aug = augmentor()
    em = make_em_volume(aug.sample_size, seed=0)
    item = {
        "image": em.image[None],
        "label": (em.label[None].astype(np.int64) + 2**40) * (em.label[None] > 0),
        "valid_mask": (em.label[None] % 5 > 0).astype(np.uint8),
    }
    return Dataset([item] * 8, transform=Compose([aug, DrawProbe()]))


def _map_run(ds, seed: int, epochs: int = 2) -> list[dict]:
    loader = DataLoader(ds, batch_size=2, num_workers=2, generator=torch.Generator().manual_seed(seed))
    return [b for _ in range(epochs) for b in batches(loader, len(loader))]


def test_map_dataset_same_seed_is_bit_identical_and_seeds_differ(map_dataset):
    first, again, other = _map_run(map_dataset, 7), _map_run(map_dataset, 7), _map_run(map_dataset, 8)
    assert len(first) == 8 and first[0]["image"].shape == (2, 1, *INPUT)
    assert first[0]["label"].dtype == torch.int64 and first[0]["image"].dtype == torch.uint8
    assert same(first, again), "two runs with the same seed gave different batches"
    assert not any(torch.equal(a["image"], b["image"]) for a, b in zip(first, other, strict=True))
    # one input volume for every item: batches 0 and 1 come from workers 0 and 1, epoch 2 reseeds them
    images = {b["image"].numpy().tobytes() for b in first}
    assert len(images) == len(first), "two workers (or two epochs) drew the same augmentation stream"
    draws = [int(v) for b in first for v in b["draw"]]
    assert len(set(draws)) == len(draws)


# ----------------------------------------------------------------------------------- tiled


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiled")
    em = make_em_volume((10, 96, 96), seed=1)
    label = em.label.astype(np.uint32)
    return {
        "image": str(write_tiled_volume(em.image, folder / "image", tile_size=32)),
        "label": str(write_tiled_volume(label, folder / "label", tile_size=32)),
    }


def tile_dataset(paths, seed: int, rank: int = 0, world: int = 1, probe_only: bool = False) -> TileDataset:
    if probe_only:
        transform = Compose([DrawProbe()])
    else:
        aug = EMAugmentor.from_targets(
            INPUT, {"image": "img", "label": "mask"}, misalignment={"displacement": 4}
        )
        crop = RandRejectionCropd(
            ["image", "label"], "label", augment=aug, size_thres=20, reject_p=0.9, pad_mode="reflect"
        )
        transform = Compose([crop, DrawProbe()])
    return TileDataset(
        paths, chunk_num=(1, 2, 2), chunk_iter=3, pad_size=(0, 4, 4), transform=transform, seed=seed, rank=rank,
        world_size=world, threads=0,
    )  # fmt: skip


def _tile_run(paths, seed: int, n: int = 6) -> list[dict]:
    loader = DataLoader(tile_dataset(paths, seed), batch_size=2, num_workers=2)
    return batches(loader, n)


def test_tile_dataset_same_seed_is_bit_identical_and_seeds_differ(tiled):
    first, again, other = _tile_run(tiled, 0), _tile_run(tiled, 0), _tile_run(tiled, 1)
    keys = ("image", "label", "crop_start", "chunk_id", "worker")
    assert first[0]["image"].shape == (2, 1, *INPUT) and first[0]["label"].dtype == torch.uint32
    assert same(first, again, keys), "two runs with the same seed gave different batches"
    assert not same(first, other, ("image",)), "seeds 0 and 1 gave the same batches"
    workers = {int(w) for b in first for w in b["worker"]}
    assert workers == {0, 1}, "both DataLoader workers must contribute"
    draws = [int(v) for b in first + other for v in b["draw"]]
    assert len(set(draws)) == len(draws)


def test_rank_and_worker_streams_never_collide(tiled):
    """4 simulated ranks x 2 DataLoader workers x 30 samples: every raw draw is unique, and every
    global worker reads its own chunks in each round."""
    world, per_worker = 4, 30
    draws: dict[int, list[int]] = {}
    chunks: dict[int, list[int]] = {}
    for rank in range(world):
        ds = tile_dataset(tiled, seed=3, rank=rank, world=world, probe_only=True)
        loader = DataLoader(ds, batch_size=1, num_workers=2)
        for b in batches(loader, 2 * per_worker):
            g = int(b["worker"][0])
            draws.setdefault(g, []).append(int(b["draw"][0]))
            chunks.setdefault(g, []).append(int(b["chunk_id"][0]))
    assert sorted(draws) == list(range(2 * world)), "each rank x worker is its own global worker"
    every = [v for vs in draws.values() for v in vs]
    assert len(every) == 2 * world * per_worker and len(set(every)) == len(every), "two streams overlap"
    # 4 chunks, 8 global workers: each round hands every chunk to one worker; the extra workers re-read
    firsts = [chunks[g][0] for g in range(2 * world)]
    assert set(firsts) == {0, 1, 2, 3}


def test_same_rank_same_seed_repeats_across_processes(tiled):
    """The stream of a (rank, worker) depends on (seed, epoch, rank, worker) only, not on the process."""
    runs = []
    for _ in range(2):
        loader = DataLoader(
            tile_dataset(tiled, seed=5, rank=1, world=2, probe_only=True), batch_size=3, num_workers=2
        )
        runs.append(
            [
                (int(d), int(c))
                for b in batches(loader, 4)
                for d, c in zip(b["draw"], b["chunk_id"], strict=True)
            ]
        )
    assert runs[0] == runs[1]
