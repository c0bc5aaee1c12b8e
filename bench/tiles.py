"""Tiled volumes: chunk-load throughput vs raw PNG decode, and training-loop waits with and without prefetch.

    .venv/bin/python -m bench.tiles [--depth 32] [--tile 500] [--repeats 3]

1. Throughput: ``TileVolume.read`` of whole chunks (2 decode threads) in MB/s, against the raw decode
   rate of the same PNG files in the same run (PIL open + ``np.asarray``, 1 thread and 2 threads).
2. Waits: a training loop (a small Conv3d step per sample, ``torch.set_num_threads(1)``) over a
   ``TileDataset``; the time the loop blocks on chunk loads after the first chunk, with and without prefetch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from monai_em.data.chunks import chunk_boxes
from monai_em.data.tile_dataset import TileDataset
from monai_em.data.tile_format import write_tiled_volume
from monai_em.data.tiles import TileVolume

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "medulla250" / "grayscale_maps"


def make_volume(depth: int) -> tuple[np.ndarray, str]:
    """``(depth, 1000, 1000)`` uint8 of real EM: each section a 4 x 4 mosaic of medulla250 sections."""
    files = sorted(SHARED.glob("*.png")) if SHARED.is_dir() else []
    if len(files) >= 16:
        secs = np.stack([np.asarray(Image.open(p)) for p in files])
        vol = np.empty((depth, 1000, 1000), np.uint8)
        for z in range(depth):
            for k in range(16):
                vol[z, (k // 4) * 250 : (k // 4 + 1) * 250, (k % 4) * 250 : (k % 4 + 1) * 250] = secs[
                    (z + 16 * k) % len(secs)
                ]
        return vol, "medulla250 mosaics"
    from monai_em.data.synthetic import make_em_volume

    small = make_em_volume((depth, 500, 500), seed=0).image
    return np.pad(small, ((0, 0), (0, 500), (0, 500)), mode="reflect"), "synthetic (medulla250 not found)"


def decode(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def raw_decode_mbs(files: list[str], nbytes: int, threads: int) -> float:
    t0 = time.perf_counter()
    if threads == 1:
        for f in files:
            decode(f)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(decode, files))
    return nbytes / 1e6 / (time.perf_counter() - t0)


def chunk_load_mbs(vol: TileVolume, boxes) -> float:
    t0 = time.perf_counter()
    nbytes = sum(vol.read(box).nbytes for box in boxes)
    return nbytes / 1e6 / (time.perf_counter() - t0)


def training_waits(json_path: Path, prefetch: bool, chunk_iter: int) -> tuple[float, float, float]:
    """(first chunk wait, mean wait per later chunk, loop wall time) in seconds."""
    from monai.transforms import RandSpatialCropd

    ds = TileDataset(
        {"image": str(json_path)},
        chunk_num=(2, 2, 2),
        chunk_iter=chunk_iter,
        num_rounds=1,
        transform=RandSpatialCropd(["image"], (8, 96, 96), random_size=False),
        prefetch=prefetch,
        threads=2,
    )
    net = torch.nn.Conv3d(1, 4, 3, padding=1)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for sample in ds:
        x = torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32)[None] / 255
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall = time.perf_counter() - t0
    return ds.load_wait_s[0], statistics.mean(ds.load_wait_s[1:]), wall


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--tile", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-iter", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    volume, source = make_volume(args.depth)
    with tempfile.TemporaryDirectory() as tmp:
        json_path = write_tiled_volume(volume, tmp, tile_size=args.tile)
        tv = TileVolume(json_path, threads=2)
        files = [p for *_, p in tv.tiles_in(tuple((0, n) for n in tv.shape))]
        disk = sum(Path(f).stat().st_size for f in files) / 1e6
        print(
            f"volume {volume.shape} uint8 from {source}: {len(files)} PNG tiles of {args.tile} px, {disk:.1f} MB on disk"
        )
        boxes = chunk_boxes(tv.shape, (2, 2, 2), train=False)
        decode_mbs, decode2_mbs, load_mbs = [], [], []
        for _ in range(args.repeats):  # the first pass also warms the page cache for every reader alike
            decode_mbs.append(raw_decode_mbs(files, volume.nbytes, 1))
            decode2_mbs.append(raw_decode_mbs(files, volume.nbytes, 2))
            load_mbs.append(chunk_load_mbs(tv, boxes))
        d1, d2, ld = (statistics.median(v) for v in (decode_mbs, decode2_mbs, load_mbs))
        print(f"raw PNG decode, 1 thread : {d1:7.1f} MB/s")
        print(f"raw PNG decode, 2 threads: {d2:7.1f} MB/s")
        print(
            f"TileVolume chunk loads (2 threads, 8 chunks): {ld:7.1f} MB/s = {ld / d2:.0%} of raw 2-thread decode, {ld / d1:.0%} of 1-thread"
        )
        for prefetch in (False, True):
            first, later, wall = training_waits(json_path, prefetch, args.chunk_iter)
            print(
                f"training loop, prefetch={prefetch!s:5}: first chunk wait {first:.3f} s, "
                f"mean wait per later chunk {later:.3f} s, loop {wall:.2f} s"
            )


if __name__ == "__main__":
    main()
