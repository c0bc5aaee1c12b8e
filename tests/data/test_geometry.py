"""Voxel size, offset and unit of every volume kind, and pairs that disagree are refused."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_em.data.multi_volume import MultiVolumeDataset
from monai_em.data.sources import open_volume
from monai_em.data.subvolume import SubVolume
from monai_em.data.tile_dataset import TileDataset
from monai_em.data.tile_format import write_tiled_volume
from monai_em.data.volume import ArrayVolume, check_same_geometry


def _h5(path, attrs, shape=(4, 6, 8), name="volumes/raw"):
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(name, data=np.zeros(shape, np.uint8))
        ds.attrs.update(attrs)
    return path


def test_hdf5_cremi_resolution_and_offset(tmp_path):
    path = _h5(tmp_path / "cremi.h5", {"resolution": [40.0, 4.0, 4.0], "offset": [1520.0, 3644.0, 3644.0]})
    vol = open_volume(path)
    assert (vol.voxel_size, vol.offset, vol.unit) == ((40.0, 4.0, 4.0), (1520.0, 3644.0, 3644.0), None)
    um = open_volume(_h5(tmp_path / "fiji.h5", {"element_size_um": [0.03, 0.004, 0.004]}))
    assert um.voxel_size == (0.03, 0.004, 0.004) and um.unit == "micrometer"
    plain = open_volume(_h5(tmp_path / "plain.h5", {}))
    assert (plain.voxel_size, plain.offset, plain.unit) == ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), None)


def test_bad_resolution_attribute_names_the_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"bad.h5:volumes/raw: resolution must be 3 finite numbers"):
        open_volume(_h5(tmp_path / "bad.h5", {"resolution": [4.0, 4.0]}))
    with pytest.raises(ValueError, match=r"zero.h5:volumes/raw: resolution must be positive"):
        open_volume(_h5(tmp_path / "zero.h5", {"resolution": [40.0, 0.0, 4.0]}))


def test_tile_json_geometry(tmp_path):
    json_path = write_tiled_volume(np.zeros((3, 16, 16), np.uint8), tmp_path / "tiles", tile_size=8)
    spec = json.loads(json_path.read_text())
    spec.update(resolution=[30, 6, 6], offset=[60, 0, 12], unit="nanometer")
    json_path.write_text(json.dumps(spec))
    vol = open_volume(json_path)
    assert (vol.voxel_size, vol.offset, vol.unit) == ((30.0, 6.0, 6.0), (60.0, 0.0, 12.0), "nanometer")


def test_imagej_tiff_geometry(tmp_path):
    import tifffile

    data = np.arange(4 * 5 * 7, dtype=np.uint8).reshape(4, 5, 7)
    tifffile.imwrite(tmp_path / "stack.tif", data, imagej=True, resolution=(1 / 4.0, 1 / 5.0),
                     metadata={"spacing": 40, "unit": "nm", "axes": "ZYX"})  # fmt: skip
    vol = open_volume(tmp_path / "stack.tif")
    assert vol.shape == (4, 5, 7)
    np.testing.assert_array_equal(vol.read(((0, 4), (0, 5), (0, 7))), data)
    assert vol.voxel_size == pytest.approx((40.0, 5.0, 4.0)) and vol.unit == "nanometer"
    tifffile.imwrite(tmp_path / "plain.tif", data, photometric="minisblack")
    assert open_volume(tmp_path / "plain.tif").voxel_size == (1.0, 1.0, 1.0)


def test_subvolume_keeps_its_physical_place():
    vol = ArrayVolume(np.zeros((10, 8, 8)), voxel_size=(40, 4, 4), offset=(100, 0, 0), unit="nanometer")
    sub = SubVolume(vol, z_range=[3, 7], x_range=[2, None])
    assert sub.voxel_size == (40.0, 4.0, 4.0) and sub.offset == (220.0, 0.0, 8.0) and sub.unit == "nanometer"


def test_tile_dataset_refuses_a_pair_that_disagrees(tmp_path):
    image = _h5(tmp_path / "im.h5", {"resolution": [40, 4, 4]})
    for attrs, what in (
        ({"resolution": [30, 4, 4]}, "voxel size"),
        ({"resolution": [40, 4, 4], "offset": [40, 0, 0]}, "offset"),
    ):
        label = _h5(tmp_path / "lab.h5", attrs)
        with pytest.raises(ValueError, match=rf"'label' .*lab.h5.* has {what} .* but 'image' .*im.h5"):
            TileDataset({"image": image, "label": label})
    label = _h5(tmp_path / "lab.h5", {"resolution": [40, 4, 4]})
    TileDataset({"image": image, "label": label})  # same geometry: accepted
    with pytest.raises(ValueError, match=r"'label' .* has shape \(4, 6, 7\) but 'image'"):
        TileDataset({"image": image, "label": _h5(tmp_path / "lab.h5", {}, shape=(4, 6, 7))})


def test_units_differ_only_when_both_known():
    a = ArrayVolume(np.zeros((2, 2, 2)), unit="nanometer")
    check_same_geometry({"image": a, "label": ArrayVolume(np.zeros((2, 2, 2)))})
    with pytest.raises(
        ValueError, match=r"has voxel size \(1.0, 1.0, 1.0\) micrometer but 'image' .* nanometer"
    ):
        check_same_geometry({"image": a, "label": ArrayVolume(np.zeros((2, 2, 2)), unit="micrometer")})


def test_multi_volume_refuses_misaligned_pairs():
    image = MetaTensor(torch.zeros(1, 4, 8, 8), affine=torch.diag(torch.tensor([40.0, 4.0, 4.0, 1.0])))
    label = MetaTensor(torch.zeros(1, 4, 8, 8), affine=torch.diag(torch.tensor([30.0, 4.0, 4.0, 1.0])))
    with pytest.raises(ValueError, match=r"volume 0: 'label' has affine .* but 'image'"):
        MultiVolumeDataset([{"image": image, "label": label}], None, (2, 4, 4))
    with pytest.raises(
        ValueError, match=r"volume 1: 'label' has spatial shape \(4, 8, 6\) but 'image' has \(4, 8, 8\)"
    ):
        MultiVolumeDataset(
            [{"image": np.zeros((1, 4, 8, 8)), "label": np.zeros((1, 4, 8, 8))}] * 1
            + [{"image": np.zeros((1, 4, 8, 8)), "label": np.zeros((1, 4, 8, 6))}],
            None,
            (2, 4, 4),
        )


def test_units_compare_as_lengths():
    nm = ArrayVolume(np.zeros((2, 2, 2)), voxel_size=(40, 4, 4), offset=(80, 0, 0), unit="nm")
    um = ArrayVolume(np.zeros((2, 2, 2)), voxel_size=(0.04, 0.004, 0.004), offset=(0.08, 0, 0), unit="micron")
    assert (nm.unit, um.unit) == ("nanometer", "micrometer")
    check_same_geometry({"image": nm, "label": um})
    shifted = ArrayVolume(
        np.zeros((2, 2, 2)), voxel_size=(0.04, 0.004, 0.004), offset=(0.12, 0, 0), unit="um"
    )
    with pytest.raises(
        ValueError, match=r"'label' .* has offset \(0.12, 0.0, 0.0\) micrometer but 'image' .* has \(80.0"
    ):
        check_same_geometry({"image": nm, "label": shifted})
    with pytest.raises(ValueError, match="has unit second but 'image'"):
        check_same_geometry({"image": nm, "label": ArrayVolume(np.zeros((2, 2, 2)), unit="second")})


def test_hdf5_reader_affine_carries_resolution_and_offset(tmp_path):
    from monai.transforms import LoadImage

    from monai_em.data.readers import HDF5Reader

    path = _h5(tmp_path / "cremi.h5", {"resolution": [40.0, 4.0, 4.0], "offset": [80.0, 8.0, 0.0]})
    img = LoadImage(reader=HDF5Reader(), image_only=True)(str(path))
    np.testing.assert_array_equal(np.asarray(img.affine)[:3, :3], np.diag([40.0, 4.0, 4.0]))
    np.testing.assert_array_equal(np.asarray(img.affine)[:3, 3], [80.0, 8.0, 0.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"offset": (1, 2)}, r"offset must be 3 finite numbers: offset must have 3 entries"),
        ({"voxel_size": (1.0, float("nan"), 1.0)}, r"voxel_size must be 3 finite numbers \(z, y, x\)"),
        ({"voxel_size": (1, 0, 1)}, r"voxel_size must be positive, got \(1.0, 0.0, 1.0\)"),
    ],
)
def test_volumes_and_new_ome_zarr_images_refuse_the_same_geometry(tmp_path, kwargs, match):
    """One rule: an in-memory volume and a new OME-Zarr image (an output) refuse the same voxel size or
    offset with the same message, each naming itself."""
    from monai_em.data.ome_zarr import create_ome_zarr

    with pytest.raises(ValueError, match=rf"^arr: {match}"):
        ArrayVolume(np.zeros((2, 3, 4)), "arr", **kwargs)
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(ValueError, match=rf"out.ome.zarr: {match}"):
        create_ome_zarr(out, (2, 3, 4), "uint8", (2, 3, 4), **kwargs)
    assert not out.exists()
