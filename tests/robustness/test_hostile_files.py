"""Hostile files for the readers, the tiled volumes and the datasets.

Truncated, zero-byte and wrong-size PNG tiles, tile JSONs with wrong types, negative sizes or missing
fields, HDF5 files without the named dataset, truncated or not HDF5 at all, all under a folder whose
path has spaces and non-ASCII characters. Each must give ONE clear error (``ValueError``, or
``FileNotFoundError`` for a missing file) whose message names the file at fault, and a failed read
must leave every file as it was (nothing written, nothing overwritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from monai.transforms import LoadImaged
from PIL import Image

from monai_em.data import (
    HDF5Reader,
    TileDataset,
    TileVolume,
    load_tile_json,
    read_hdf5,
    write_tile_json,
    write_tiled_volume,
)
from monai_em.data.sources import open_volume
from monai_em.inference.streaming import load_image_2d

FOLDER = "dir with spaces ünïcødé 数据"
VOLUME = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: size and content hash (a failed read must change none of them)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.stat().st_size, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def expect_file_error(fn, culprit: Path, root: Path, types=(ValueError,)) -> str:
    """``fn()`` raises one of ``types`` naming ``culprit``, and leaves every file under ``root`` untouched."""
    before = snapshot(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            fn()
    err = info.value
    assert isinstance(err, types), f"{type(err).__name__}: {err}"
    assert str(culprit) in str(err) or culprit.name in str(err), f"the message does not name {culprit}: {err}"
    assert snapshot(root) == before, "a failed read wrote or changed files"
    return str(err)


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / FOLDER
    folder.mkdir()
    return folder


@pytest.fixture
def tiled(root) -> Path:
    """A 3x8x8 uint8 volume in 4x4 tiles; returns its JSON path."""
    return write_tiled_volume(VOLUME, root / "tiles ü", tile_size=4)


def tile_readers(json_path: Path):
    """Every way a tiled volume gets read: the volume, the dataset (both modes), and open_volume."""
    box = ((0, 3), (0, 8), (0, 8))
    return {
        "TileVolume": lambda: TileVolume(json_path, threads=2).read(box),
        "open_volume": lambda: open_volume(str(json_path)).read(box),
        "TileDataset.inference": lambda: list(
            TileDataset({"image": str(json_path)}, mode="inference", prefetch=False)
        ),
        "TileDataset.train": lambda: next(
            iter(TileDataset({"image": str(json_path)}, chunk_iter=1, prefetch=True))
        ),
    }


def test_good_files_read_under_a_unicode_path(tiled, root):
    """The baseline: the same files, intact, read fine through every entry point."""
    for name, read in tile_readers(tiled).items():
        out = read()
        arr = (
            out[0]["image"][0] if isinstance(out, list) else out["image"][0] if isinstance(out, dict) else out
        )
        np.testing.assert_array_equal(np.asarray(arr), VOLUME, err_msg=name)


# ------------------------------------------------------------------------------------ broken tiles


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _zero(p: Path) -> None:
    p.write_bytes(b"")


def _wrong_size(p: Path) -> None:
    Image.fromarray(np.zeros((5, 3), np.uint8)).save(p, format="PNG")


def _not_an_image(p: Path) -> None:
    p.write_text("this is not a PNG")


def _too_deep(p: Path) -> None:
    Image.fromarray(np.full((4, 4), 60000, np.uint16)).save(
        p, format="PNG"
    )  # 16-bit values in a uint8 volume


@pytest.mark.parametrize("damage", [_truncate, _zero, _wrong_size, _not_an_image, _too_deep])
def test_a_broken_tile_names_itself(tiled, root, damage):
    tile = tiled.parent / "0001" / "1_0.png"
    damage(tile)
    for name, read in tile_readers(tiled).items():
        msg = expect_file_error(read, tile, root)
        assert "tile" in msg, name


@pytest.mark.parametrize("damage", [_truncate, _zero, _not_an_image])
def test_write_tile_json_over_a_broken_image_writes_nothing(root, damage):
    """write_tile_json reads the sizes from the files: a broken one is named and no JSON appears."""
    folder = root / "sections ü"
    folder.mkdir()
    for z in range(3):
        Image.fromarray(VOLUME[z]).save(folder / f"{z}.png")
    damage(folder / "0.png")
    expect_file_error(lambda: write_tile_json(folder), folder / "0.png", root)
    tiles = root / "tiles ü"
    write_tiled_volume(VOLUME, tiles, tile_size=4)
    (tiles / "volume.json").unlink()
    damage(tiles / "0000" / "0_0.png")
    expect_file_error(lambda: write_tile_json(tiles), tiles / "0000" / "0_0.png", root)


# ------------------------------------------------------------------------------------ broken JSON

JSON_MUTATIONS = {
    "depth negative": {"depth": -1},
    "height zero": {"height": 0},
    "width string": {"width": "8"},
    "width float": {"width": 8.5},
    "height NaN": {"height": float("nan")},
    "depth bool": {"depth": True},
    "depth mismatch": {"depth": 4},
    "image string": {"image": "0000.png"},
    "image ints": {"image": [1, 2, 3]},
    "tile_size negative": {"tile_size": -4},
    "tile_size zero": {"tile_size": [0, 4]},
    "tile_size three": {"tile_size": [4, 4, 4]},
    "tile_size null": {"tile_size": None},
    "tile_st negative": {"tile_st": [-1, 0]},
    "tile_st string": {"tile_st": "00"},
    "tile_ratio zero": {"tile_ratio": 0},
    "tile_ratio inf": {"tile_ratio": float("inf")},
    "tile_ratio string": {"tile_ratio": "1"},
    "dtype unknown": {"dtype": "uint9"},
    "dtype int": {"dtype": 5},
    "dtype null": {"dtype": None},
    "dtype object": {"dtype": "object"},
    "dtype complex": {"dtype": "complex64"},
    "dtype text": {"dtype": "<U4"},
    "ndim string": {"ndim": "1"},
    "n_rows wrong": {"n_rows": 5},
}
MISSING = ["image", "depth", "height", "width", "tile_size"]
RAW_TEXT = {"empty": b"", "open brace": b"{", "list": b"[]", "number": b"5", "not utf8": b"\xff\xfe\x00{"}


def _json_cases():
    for name, change in JSON_MUTATIONS.items():
        yield pytest.param(("mutate", change), id=name)
    for field in MISSING:
        yield pytest.param(("drop", field), id=f"missing {field}")
    for name, raw in RAW_TEXT.items():
        yield pytest.param(("raw", raw), id=f"text {name}")


@pytest.mark.parametrize("case", _json_cases())
def test_a_broken_tile_json_names_itself(tiled, root, case):
    kind, what = case
    spec = json.loads(tiled.read_text())
    bad = tiled.parent / "bad ü.json"
    if kind == "raw":
        bad.write_bytes(what)
    else:
        if kind == "mutate":
            spec.update(what)
        else:
            spec.pop(what)
        bad.write_text(
            json.dumps(spec)
        )  # NaN / Infinity are written as JSON extensions, as Python reads them
    for name, read in {
        "load_tile_json": lambda: load_tile_json(bad),
        **tile_readers(bad),
    }.items():
        msg = expect_file_error(read, bad, root)
        assert "tile JSON" in msg, (name, msg)


def test_a_missing_tile_json_or_tile_is_a_file_not_found_error(tiled, root):
    missing = root / "nope ü.json"
    for read in (lambda: load_tile_json(missing), lambda: TileDataset({"image": str(missing)})):
        expect_file_error(read, missing, root, types=(FileNotFoundError,))
    tile = tiled.parent / "0002" / "0_1.png"
    tile.unlink()
    expect_file_error(
        lambda: TileVolume(tiled, strict=True).read(((0, 3), (0, 8), (0, 8))),
        tile,
        root,
        (FileNotFoundError,),
    )


# ------------------------------------------------------------------------------------ HDF5


@pytest.fixture
def h5(root) -> Path:
    path = root / "vol ü 1.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = VOLUME
        f.create_group("group")
    return path


def h5_readers(path: Path, dataset: str | None):
    return {
        "read_hdf5": lambda: read_hdf5(path, dataset),
        "HDF5Reader": lambda: LoadImaged("image", reader=HDF5Reader(dataset=dataset))({"image": str(path)}),
        "open_volume": lambda: open_volume({"path": str(path), "dataset": dataset}),
        "TileDataset": lambda: TileDataset({"image": {"path": str(path), "dataset": dataset}}),
        "open_volume(dataset=)": lambda: open_volume(str(path), dataset=dataset),
    }


@pytest.mark.parametrize("dataset", ["missing", "group", "raw/deeper"])
def test_hdf5_without_the_named_dataset(h5, root, dataset):
    for name, read in h5_readers(h5, dataset).items():
        msg = expect_file_error(read, h5, root)
        assert repr(dataset) in msg, (name, msg)


def test_hdf5_good_file_reads_everywhere(h5):
    for name, read in h5_readers(h5, "raw").items():
        out = read()
        arr = (
            out["image"][0]
            if isinstance(out, dict)
            else out.read(((0, 3), (0, 8), (0, 8)))
            if hasattr(out, "read")
            else out
        )
        if isinstance(out, TileDataset):
            arr = out.load_chunk(0)["image"][0]
        np.testing.assert_array_equal(np.asarray(arr), VOLUME, err_msg=name)


def _h5_zero(p: Path) -> None:
    p.write_bytes(b"")


def _h5_truncated(p: Path) -> None:
    _truncate(p)


def _h5_text(p: Path) -> None:
    p.write_text("not HDF5")


def _h5_no_dataset(p: Path) -> None:
    p.unlink()
    with h5py.File(p, "w") as f:
        f.create_group("only_a_group")


def _h5_one_d(p: Path) -> None:
    p.unlink()
    with h5py.File(p, "w") as f:
        f["x"] = np.zeros(5)


@pytest.mark.parametrize("damage", [_h5_zero, _h5_truncated, _h5_text, _h5_no_dataset, _h5_one_d])
def test_a_broken_hdf5_file_names_itself(h5, root, damage):
    damage(h5)
    readers = h5_readers(h5, None)
    if damage is _h5_one_d:
        readers.pop("read_hdf5")  # reading a 1D dataset is fine; the volume readers must refuse it
    for read in readers.values():
        expect_file_error(read, h5, root)


# ------------------------------------------------------------------------------------ single images


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("damage", [_truncate, _zero, _not_an_image])
def test_a_broken_image_file_names_itself(root, suffix, damage):
    path = root / f"section ü 0{suffix}"
    Image.fromarray(VOLUME[0]).save(path)
    damage(path)
    for read in (
        lambda: open_volume(str(path)),
        lambda: load_image_2d(str(path)),
    ):
        expect_file_error(read, path, root)


def test_a_broken_npy_file_names_itself(root):
    path = root / "vol ü.npy"
    path.write_bytes(b"")
    expect_file_error(lambda: open_volume(str(path)), path, root)
    np.save(path, VOLUME)
    _truncate(path)
    expect_file_error(lambda: open_volume(str(path)), path, root)
