"""Chunked stores (zarr v2/v3/sharded, OME-Zarr 0.4/0.5, N5, precomputed), local and over HTTP."""

from __future__ import annotations

import numpy as np
import pytest

from monai_em.data.sources import open_volume
from monai_em.data.stores import TensorStoreVolume, ZarrVolume, store_kind

from .stores_fixtures import FORMATS, OFFSET, VOXEL_SIZE, sample_volume, serve_folder, write_format

BOXES = [
    ((0, 9), (0, 21), (0, 26)),  # whole
    ((2, 7), (3, 15), (5, 22)),  # inside, unaligned to chunks
    ((-3, 4), (-6, 10), (20, 33)),  # before the start and past the end
    ((5, 14), (15, 30), (-8, 2)),
]


def reflect_oracle(data: np.ndarray, box) -> np.ndarray:
    """numpy's own reflect padding, then plain slicing."""
    pads = [(max(0, -a), max(0, b - n)) for (a, b), n in zip(box, data.shape, strict=True)]
    padded = np.pad(data, pads, mode="reflect")
    return padded[tuple(slice(a + p, b + p) for (a, b), (p, _) in zip(box, pads, strict=True))]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    data = sample_volume()
    return root, data, {kind: write_format(kind, root, data) for kind in FORMATS}


@pytest.mark.parametrize("kind", FORMATS)
def test_region_reads_equal_numpy_reflect(stores, kind):
    root, data, names = stores
    vol = open_volume(str(root / names[kind]))
    expected_type = TensorStoreVolume if kind in ("n5", "precomputed") else ZarrVolume
    assert isinstance(vol, expected_type)
    assert vol.shape == data.shape and vol.dtype == data.dtype
    for box in BOXES:
        np.testing.assert_array_equal(vol.read(box), reflect_oracle(data, box), err_msg=f"{kind} {box}")


@pytest.mark.parametrize("kind", FORMATS)
def test_voxel_size_offset_unit(stores, kind):
    root, _, names = stores
    vol = open_volume(root / names[kind])
    assert vol.voxel_size == VOXEL_SIZE
    assert vol.offset == OFFSET
    assert vol.unit in ("nanometer", "nm")


@pytest.mark.parametrize("kind", ["ome_zarr_04", "ome_zarr_05"])
def test_ome_zarr_level(stores, kind):
    root, data, names = stores
    vol = open_volume({"path": str(root / names[kind]), "level": 1})
    assert vol.shape == (9, 11, 13)
    assert vol.voxel_size == (VOXEL_SIZE[0], VOXEL_SIZE[1] * 2, VOXEL_SIZE[2] * 2)
    np.testing.assert_array_equal(vol.read(((0, 9), (0, 11), (0, 13))), data[:, ::2, ::2])
    with pytest.raises(ValueError, match=r"levels 0..1"):
        open_volume(root / names[kind], level=2)


def test_remote_reads_equal_local(stores):
    root, data, names = stores
    with serve_folder(root) as base:
        for kind in FORMATS:
            url = f"{base}/{names[kind]}"
            vol = open_volume(url)
            assert vol.shape == data.shape, kind
            assert (vol.voxel_size, vol.offset) == (VOXEL_SIZE, OFFSET), kind
            for box in BOXES[1:3]:
                np.testing.assert_array_equal(
                    vol.read(box), reflect_oracle(data, box), err_msg=f"{kind} {box}"
                )


def test_file_url_and_prefix(stores):
    root, data, names = stores
    vol = open_volume((root / names["zarr3"]).as_uri())
    np.testing.assert_array_equal(vol.read(BOXES[1]), reflect_oracle(data, BOXES[1]))
    assert store_kind("precomputed://" + str(root / names["precomputed"]))[0] == "precomputed"
    vol = open_volume("precomputed://" + (root / names["precomputed"]).as_uri())
    np.testing.assert_array_equal(vol.read(BOXES[2]), reflect_oracle(data, BOXES[2]))


def test_zarr_group_needs_a_dataset(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("volumes/raw", data=np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"not an OME-Zarr image.*volumes/raw"):
        open_volume(tmp_path / "g.zarr")
    assert open_volume(tmp_path / "g.zarr", dataset="volumes/raw").shape == (3, 4, 5)
    with pytest.raises(ValueError, match="no array or group 'nope'"):
        open_volume(tmp_path / "g.zarr", dataset="nope")
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        open_volume(tmp_path / "missing.zarr")


def test_n5_multiscale_group_and_bad_level(tmp_path):
    data = sample_volume((4, 8, 8), np.uint8)
    root = tmp_path / "ms.n5"
    root.mkdir()
    (root / "attributes.json").write_text('{"n5": "2.0.0"}')
    write_format("n5", root, data)  # -> ms.n5/vol_n5.n5
    (root / "vol_n5.n5").rename(root / "s0")
    vol = open_volume(root)
    np.testing.assert_array_equal(vol.read(((0, 4), (0, 8), (0, 8))), data)
    with pytest.raises(ValueError, match="without dataset 's3'"):
        open_volume(root, level=3)


def test_tensorstore_error_names_the_store(stores):
    root, _, names = stores
    vol = open_volume(root / names["n5"])
    vol._spec = {**vol._spec, "kvstore": vol._spec["kvstore"] + "gone/"}
    with pytest.raises(ValueError, match="vol_n5.n5"):
        vol.read(BOXES[1])
