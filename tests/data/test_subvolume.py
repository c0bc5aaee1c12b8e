"""SubVolume: a box of a volume read lazily, mirrored inside itself (held-out sections never leak)."""

from __future__ import annotations

import numpy as np
import pytest

from monai_em.data.subvolume import SubVolume
from monai_em.data.tile_format import write_tiled_volume


def coords_volume(shape=(10, 6, 8)) -> np.ndarray:
    """Each voxel stores its own z, y, x: z * 10000 + y * 100 + x."""
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    return (z * 10000 + y * 100 + x).astype(np.int64)


def test_reads_are_offset_into_the_source():
    vol = SubVolume(coords_volume(), z_range=[2, 7], y_range=[1, None], x_range=[-4, None])
    assert vol.shape == (5, 5, 4) and vol.offset_box == ((2, 7), (1, 6), (4, 8))
    np.testing.assert_array_equal(vol.read_all(), coords_volume()[2:7, 1:, 4:])


def test_padding_mirrors_inside_the_subvolume_only():
    vol = SubVolume(coords_volume(), z_range=[0, -3])  # sections 0..6; 7..9 are held out
    block = vol.read(((5, 9), (0, 6), (0, 8)))  # two sections past the end
    z_read = block[:, 0, 0] // 10000
    np.testing.assert_array_equal(z_read, [5, 6, 5, 4])  # reflected at z = 6, never 7..9


def test_tile_json_source(tmp_path):
    label = (coords_volume((4, 30, 20)) % 997).astype(np.uint16)
    path = write_tiled_volume(label, tmp_path / "label", tile_size=16, json_name="label.json")
    vol = SubVolume(path, z_range=[-2, None], role="label")
    assert vol.dtype == np.uint16
    np.testing.assert_array_equal(vol.read_all(), label[2:])


def test_bad_ranges():
    with pytest.raises(ValueError, match="z range .* is empty"):
        SubVolume(coords_volume(), z_range=[5, 5])
    with pytest.raises(ValueError, match=r"y range must be \[start, stop\]"):
        SubVolume(coords_volume(), y_range=[1])


def test_subvolumes_keep_the_tile_ratio_check(tmp_path):
    import json

    from monai_em.data.synthetic import make_em_volume
    from monai_em.data.tiles import check_compatible

    vol = make_em_volume((4, 32, 32), seed=0)
    image = write_tiled_volume(vol.image, tmp_path / "im", json_name="im.json")
    label = write_tiled_volume(vol.label[:, ::2, ::2], tmp_path / "lab", json_name="lab.json")
    spec = json.loads(label.read_text())  # same (4, 32, 32) volume, stored at half resolution
    spec.update(tile_ratio=2, height=32, width=32, tile_size=32)
    label.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="tile_ratio"):
        check_compatible(
            {
                "image": SubVolume(image, z_range=[0, 2]),
                "label": SubVolume(label, z_range=[0, 2], role="label"),
            }
        )
