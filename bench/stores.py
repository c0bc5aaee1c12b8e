"""Chunked stores: random-crop reads of each format vs a numpy slice, and chunk reads vs raw decode.

    .venv/bin/python -m bench.stores [--crops 40] [--repeats 3]

1. Random crops (33 x 161 x 161, the same seeded boxes for every format, some reaching past the
   border so mirroring is paid too) through ``open_volume`` of zarr v2, zarr v3, sharded zarr v3,
   OME-Zarr 0.5 (all zstd, written by zarr-python / monai_em), N5 (gzip) and precomputed (raw) via
   tensorstore (in this process, and through the helper process that forked workers use), and
   chunked gzip HDF5 (and the zarr v3 array read by tensorstore, for the choice of reader), each as a time ratio to ``np.ascontiguousarray`` of the same box of the
   in-memory array (mirrored with ``np.pad``), measured in the same run.
2. Whole-chunk reads through ``ZarrVolume.read`` vs the raw decode of the same chunk files (file
   read + zstd decode + ``np.frombuffer``) in the same run: the overhead of zarr-python's pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import zarr
from PIL import Image

from monai_em.data import ts_worker
from monai_em.data.ome_zarr import create_ome_zarr
from monai_em.data.sources import open_volume
from monai_em.data.stores import open_store
from monai_em.data.volume import read_reflected

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "medulla250" / "grayscale_maps"
CROP = (33, 161, 161)
CHUNKS = (32, 128, 128)


def load_volume() -> tuple[np.ndarray, str]:
    files = sorted(SHARED.glob("*.png")) if SHARED.is_dir() else []
    if files:
        return np.stack([np.asarray(Image.open(p)) for p in files]), "medulla250 (250 PNG sections)"
    from monai_em.data.synthetic import make_em_volume

    return make_em_volume((250, 250, 250), seed=0).image, "synthetic (medulla250 not found)"


def write_all(vol: np.ndarray, root: Path) -> dict[str, dict]:
    """``{name: open_volume arguments}`` of the volume written in every format."""
    import tensorstore as ts

    out = {}
    zarr.create_array(str(root / "v2.zarr"), data=vol, chunks=CHUNKS, zarr_format=2,
                      compressors=__import__("numcodecs").Zstd(level=3))  # fmt: skip
    out["zarr v2 (zstd)"] = {"source": root / "v2.zarr"}
    zarr.create_array(
        str(root / "v3.zarr"), data=vol, chunks=CHUNKS, compressors=zarr.codecs.ZstdCodec(level=3)
    )
    out["zarr v3 (zstd)"] = {"source": root / "v3.zarr"}
    zarr.create_array(str(root / "sh.zarr"), data=vol, chunks=CHUNKS, shards=(64, 256, 256),
                      compressors=zarr.codecs.ZstdCodec(level=3))  # fmt: skip
    out["zarr v3 sharded (zstd)"] = {"source": root / "sh.zarr"}
    create_ome_zarr(root / "img.ome.zarr", vol.shape, vol.dtype, CHUNKS)[...] = vol
    out["OME-Zarr 0.5 (zstd)"] = {"source": root / "img.ome.zarr"}
    n5 = ts.open({"driver": "n5", "kvstore": {"driver": "file", "path": str(root / "v.n5")},
                  "metadata": {"dimensions": list(vol.shape[::-1]), "blockSize": list(CHUNKS[::-1]),
                               "dataType": "uint8", "compression": {"type": "gzip"}}}, create=True).result()  # fmt: skip
    n5[...] = vol.T
    out["N5 (gzip, tensorstore)"] = {"source": root / "v.n5"}
    out["N5 via helper process"] = {"source": root / "v.n5", "isolate": True}
    pc = ts.open({"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(root / "pc")},
                  "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
                  "scale_metadata": {"size": list(vol.shape[::-1]), "resolution": [8, 8, 8],
                                     "chunk_size": list(CHUNKS[::-1]), "encoding": "raw"}}, create=True).result()  # fmt: skip
    pc[...] = vol.T[..., None]
    out["precomputed (raw, tensorstore)"] = {"source": root / "pc"}
    with h5py.File(root / "v.h5", "w") as f:
        f.create_dataset("raw", data=vol, chunks=CHUNKS, compression="gzip")
    out["HDF5 (gzip, h5py)"] = {"source": root / "v.h5"}
    return out


class _Reader:
    """``read(box)`` with monai_em's mirroring over a reader of in-bounds boxes."""

    def __init__(self, read_inside, shape):
        self.read_inside, self.shape = read_inside, shape

    def read(self, box):
        return read_reflected(self.read_inside, box, self.shape)


def random_boxes(shape, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    starts = [rng.integers(-c // 4, s - 3 * c // 4, n) for s, c in zip(shape, CROP, strict=True)]
    return [tuple((int(st[i]), int(st[i]) + c) for st, c in zip(starts, CROP, strict=True)) for i in range(n)]


def numpy_crop(vol: np.ndarray, box) -> np.ndarray:
    pads = [(max(0, -a), max(0, b - n)) for (a, b), n in zip(box, vol.shape, strict=True)]
    inner = tuple(slice(max(a, 0), min(b, n)) for (a, b), n in zip(box, vol.shape, strict=True))
    part = vol[inner]
    return (
        np.pad(part, pads, mode="reflect") if any(p != (0, 0) for p in pads) else np.ascontiguousarray(part)
    )


def per_crop_ms(read, boxes) -> float:
    t0 = time.perf_counter()
    for box in boxes:
        read(box)
    return (time.perf_counter() - t0) / len(boxes) * 1e3


def raw_zstd_chunks_ms(root: Path, fmt: int) -> float:
    """Read and decode every chunk file of the v2/v3 array by hand (file read + zstd + frombuffer)."""
    from numcodecs import Zstd

    codec = Zstd()
    folder = root / ("v3.zarr/c" if fmt == 3 else "v2.zarr")
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    t0 = time.perf_counter()
    for p in files:
        np.frombuffer(codec.decode(p.read_bytes()), np.uint8)
    return (time.perf_counter() - t0) * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    vol, source = load_volume()
    boxes = random_boxes(vol.shape, args.crops)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        formats = write_all(vol, root)
        print(f"volume {vol.shape} uint8 from {source}; chunks {CHUNKS}; {args.crops} crops of {CROP}")
        vols = {}
        for name, kw in formats.items():
            kw = dict(kw)
            src, isolate = kw.pop("source"), kw.pop("isolate", None)
            vols[name] = open_store(src, isolate=True) if isolate else open_volume(src)
            np.testing.assert_array_equal(
                vols[name].read(boxes[0]), numpy_crop(vol, boxes[0])
            )  # warm + check
        # the same zarr v3 array through tensorstore: would tensorstore be worth it for zarr too?
        spec = {"driver": "zarr3", "kvstore": (root / "v3.zarr").resolve().as_uri() + "/"}
        vols["zarr v3 (zstd) via tensorstore"] = _Reader(
            lambda box: ts_worker.read_ranges(spec, list(box)), vol.shape
        )
        times = {name: [] for name in ["numpy slice (in memory)", *vols]}
        for _ in range(args.repeats):
            times["numpy slice (in memory)"].append(per_crop_ms(lambda b: numpy_crop(vol, b), boxes))
            for name, v in vols.items():
                times[name].append(per_crop_ms(v.read, boxes))
        base = statistics.median(times["numpy slice (in memory)"])
        print(f"{'format':32} {'ms/crop':>8} {'x numpy':>8}")
        for name, ts_ in times.items():
            ms = statistics.median(ts_)
            print(f"{name:32} {ms:8.2f} {ms / base:8.1f}")

        print("\nwhole chunks (every chunk once) vs raw decode of the same chunk files")
        grid = [range(0, n, c) for n, c in zip(vol.shape, CHUNKS, strict=True)]
        chunk_boxes = [((z, min(z + CHUNKS[0], vol.shape[0])), (y, min(y + CHUNKS[1], vol.shape[1])),
                        (x, min(x + CHUNKS[2], vol.shape[2]))) for z in grid[0] for y in grid[1] for x in grid[2]]  # fmt: skip
        for fmt, name in ((2, "zarr v2 (zstd)"), (3, "zarr v3 (zstd)")):
            read_ms, raw_ms = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for box in chunk_boxes:
                    vols[name].read(box)
                read_ms.append((time.perf_counter() - t0) * 1e3)
                raw_ms.append(raw_zstd_chunks_ms(root, fmt))
            r, d = statistics.median(read_ms), statistics.median(raw_ms)
            print(
                f"{name:16} {len(chunk_boxes)} chunks: read {r:7.1f} ms, raw decode {d:7.1f} ms, ratio {r / d:.2f}"
            )


if __name__ == "__main__":
    main()
