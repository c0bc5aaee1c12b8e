"""OME-Zarr writing: what zarr-python and ome-zarr-py (the field's readers) read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from monai_em.data.ome_zarr import (
    create_ome_labels,
    create_ome_zarr,
    multiscale_paths,
    open_ome_zarr,
    read_ngff_transform,
    write_pyramid,
)


def _ome_node(path):
    """The first node ome-zarr-py's reader finds at ``path``: its metadata and level arrays."""
    return next(iter(Reader(parse_url(str(path)))()))


@pytest.mark.parametrize("version,zarr_format", [("0.5", 3), ("0.4", 2)])
def test_create_round_trips_through_ome_zarr_py(tmp_path, version, zarr_format):
    path = tmp_path / "pred.ome.zarr"
    data = np.random.default_rng(0).integers(0, 255, (2, 6, 20, 30), dtype=np.uint8)
    arr = create_ome_zarr(
        path,
        data.shape,
        "uint8",
        (4, 16, 16),
        voxel_size=(30, 8, 4),
        offset=(90, 16, 0),
        channel_names=["membrane", "mito"],
        attrs={"fingerprint": "abc123", "settings": {"tta": 4}},
        ngff_version=version,
    )
    arr[...] = data
    assert arr.chunks == (2, 4, 16, 16)

    node = _ome_node(path)
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("unit") for a in node.metadata["axes"]] == [None, "nanometer", "nanometer", "nanometer"]
    scale, translation = node.metadata["coordinateTransformations"][0]
    assert scale == {"type": "scale", "scale": [1.0, 30.0, 8.0, 4.0]}
    assert translation == {"type": "translation", "translation": [0.0, 90.0, 16.0, 0.0]}
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)

    group = zarr.open_group(str(path), mode="r")
    assert group.info._zarr_format == zarr_format
    assert group.attrs["fingerprint"] == "abc123" and group.attrs["settings"] == {"tta": 4}
    meta = json.loads((path / "0" / ("zarr.json" if zarr_format == 3 else ".zarray")).read_text())
    codecs = json.dumps(meta.get("codecs", meta.get("compressor")))
    assert "zstd" in codecs
    assert read_ngff_transform(path) == ((30.0, 8.0, 4.0), (90.0, 16.0, 0.0), "nanometer")
    np.testing.assert_array_equal(open_ome_zarr(path)[...], data)


def test_three_axes_sharded_v3(tmp_path):
    path = tmp_path / "sharded.ome.zarr"
    arr = create_ome_zarr(path, (8, 32, 32), "uint16", (4, 8, 8), shards=(8, 16, 16), unit="micrometer")
    data = np.arange(8 * 32 * 32, dtype=np.uint16).reshape(8, 32, 32)
    arr[...] = data
    assert arr.shards == (8, 16, 16) and arr.chunks == (4, 8, 8)
    # 1 x 2 x 2 shard files hold all 2 x 4 x 4 chunks
    assert len([f for f in (path / "0" / "c").rglob("*") if f.is_file()]) == 4
    node = _ome_node(path)
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)
    assert read_ngff_transform(path)[2] == "micrometer"


def test_existing_image_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "a.ome.zarr"
    create_ome_zarr(path, (2, 4, 4), "uint8", (2, 4, 4))[...] = 5
    with pytest.raises(FileExistsError, match="a.ome.zarr exists"):
        create_ome_zarr(path, (2, 4, 4), "uint8", (2, 4, 4))
    arr = create_ome_zarr(path, (3, 4, 4), "float32", (2, 4, 4), overwrite=True)
    assert arr.shape == (3, 4, 4) and float(arr[0, 0, 0]) == 0.0
    # reopening for writing (resume) keeps the data
    arr[...] = 2.5
    again = open_ome_zarr(path, mode="r+")
    assert float(again[2, 3, 3]) == 2.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"chunks": (4, 4)}, "chunks"),
        ({"voxel_size": (1, 0, 1)}, "voxel_size must be positive"),
        ({"offset": (1, 2)}, "offset must have 3 entries"),
        ({"shards": (3, 4, 4)}, "shards"),
        ({"ngff_version": "0.3"}, "ngff_version"),
        ({"attrs": {"multiscales": []}}, "reserved|may not set"),
        ({"shape": (2, 3)}, "shape must be"),
        ({"channel_names": ["a"]}, "channel_names"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    args = {"shape": (4, 8, 8), "dtype": "uint8", "chunks": (2, 4, 4), **kwargs}
    with pytest.raises(ValueError, match=match):
        create_ome_zarr(tmp_path / "bad.ome.zarr", **args)


def test_shards_need_v3(tmp_path):
    with pytest.raises(ValueError, match="shards need zarr v3"):
        create_ome_zarr(tmp_path / "v4", (4, 8, 8), "uint8", (2, 4, 4), shards=(4, 8, 8), ngff_version="0.4")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_labels_group(tmp_path, version):
    image = tmp_path / "em.ome.zarr"
    create_ome_zarr(
        image, (4, 8, 8), "uint8", (2, 8, 8), voxel_size=(40, 4, 4), offset=(80, 0, 0), ngff_version=version
    )
    labels = create_ome_labels(image, "neurons", (4, 8, 8), "uint32", (2, 8, 8))
    labels[...] = 7
    lab_path = image / "labels" / "neurons"
    assert read_ngff_transform(lab_path) == ((40.0, 4.0, 4.0), (80.0, 0.0, 0.0), "nanometer")
    group = zarr.open_group(str(image / "labels"), mode="r")
    attrs = group.attrs.asdict()
    assert (attrs.get("ome", attrs))["labels"] == ["neurons"]
    lab_attrs = zarr.open_group(str(lab_path), mode="r").attrs.asdict()
    assert (lab_attrs.get("ome", lab_attrs))["image-label"]["source"] == {"image": "../../"}
    # a second label and an overwrite keep one entry per name
    create_ome_labels(image, "mito", (4, 8, 8), "uint8", (2, 8, 8))
    create_ome_labels(image, "neurons", (4, 8, 8), "uint32", (2, 8, 8), overwrite=True)
    attrs = zarr.open_group(str(image / "labels"), mode="r").attrs.asdict()
    assert sorted(attrs.get("ome", attrs)["labels"]) == ["mito", "neurons"]


def test_pyramid_image_means_and_half_voxel_translation(tmp_path):
    path = tmp_path / "img.ome.zarr"
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 60, (3, 5, 7)).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)  # every 2x2 block constant
    fine += np.tile(np.array([[0, 2], [4, 6]], np.float32), (1, 5, 7))  # block mean = coarse + 3
    arr = create_ome_zarr(path, fine.shape, "float32", (2, 4, 4), voxel_size=(30, 5, 5), offset=(0, 10, 20))
    arr[...] = fine
    (lvl1,) = write_pyramid(path, 1, block=(1, 2, 3))
    np.testing.assert_allclose(lvl1[...], coarse + 3)
    assert multiscale_paths(path) == ["0", "1"]
    # level-1 voxel (0, 0, 0) is the centre of level-0 voxels 0 and 1: half a fine voxel further
    assert read_ngff_transform(path, 1) == ((30.0, 10.0, 10.0), (0.0, 12.5, 22.5), "nanometer")
    node = _ome_node(path)
    assert [d.shape for d in node.data] == [(3, 10, 14), (3, 5, 7)]


def test_pyramid_labels_are_never_mixed(tmp_path):
    image = tmp_path / "em.ome.zarr"
    create_ome_zarr(image, (2, 9, 9), "uint8", (2, 4, 4))
    lab = create_ome_labels(image, "ids", (2, 9, 9), "uint32", (2, 4, 4))
    ids = np.random.default_rng(2).integers(1, 1000, (2, 9, 9)).astype(np.uint32)
    lab[...] = ids
    lvl1, lvl2 = write_pyramid(image / "labels" / "ids", 2)
    np.testing.assert_array_equal(lvl1[...], ids[:, 0:8:2, 0:8:2])
    np.testing.assert_array_equal(lvl2[...], ids[:, 0:8:4, 0:8:4])
    assert read_ngff_transform(image / "labels" / "ids", 2)[1] == (0.0, 0.0, 0.0)


def test_open_missing_and_not_ome(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.zarr"):
        open_ome_zarr(tmp_path / "nothing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(ValueError, match="not an OME-Zarr image"):
        read_ngff_transform(tmp_path / "plain.zarr")
    create_ome_zarr(tmp_path / "one.ome.zarr", (2, 4, 4), "uint8", (2, 4, 4))
    with pytest.raises(ValueError, match=r"levels 0..0"):
        open_ome_zarr(tmp_path / "one.ome.zarr", level=3)
