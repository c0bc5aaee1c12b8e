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
