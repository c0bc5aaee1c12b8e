import json

import numpy as np
import pytest
from PIL import Image

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import decode_label_rgb, encode_label_rgb, tile_file, write_tiled_volume


def read_back(json_path):
    """Independent reader for the round trip: stitch every tile named in the JSON with PIL."""
    spec = json.loads(json_path.read_text())
    ty, tx = np.broadcast_to(spec["tile_size"], 2)
    out = np.zeros((spec["depth"], spec["height"], spec["width"]), dtype=spec["dtype"])
    for z, entry in enumerate(spec["image"]):
        for r in range(spec["n_rows"]):
            for c in range(spec["n_columns"]):
                a = np.asarray(Image.open(json_path.parent / tile_file(entry, r, c, spec["tile_st"])))
                if a.ndim == 3:
                    a = decode_label_rgb(a, spec["dtype"])
                out[z, r * ty : r * ty + a.shape[0], c * tx : c * tx + a.shape[1]] = a
    return out


@pytest.mark.parametrize("tile_size", [None, 32, (40, 24)])
def test_image_and_label_tiles_round_trip(tmp_path, tile_size):
    v = make_em_volume((3, 70, 90), seed=2)
    for name, vol in (("image", v.image), ("label", v.label)):
        path = write_tiled_volume(vol, tmp_path / name, tile_size=tile_size, json_name=f"{name}.json")
        spec = json.loads(path.read_text())
        assert spec["depth"] == 3 and spec["height"] == 70 and spec["width"] == 90
        assert spec["dtype"] == str(vol.dtype) and len(spec["image"]) == 3
        np.testing.assert_array_equal(read_back(path), vol)


def test_uint16_tif_and_tile_offset(tmp_path):
    vol = (np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30) * 53).astype(np.uint16)
    path = write_tiled_volume(vol, tmp_path, tile_size=16, ext="tif", tile_st=(1, 2))
    assert (tmp_path / "0000" / "1_2.tif").exists() and (tmp_path / "0001" / "2_3.tif").exists()
    np.testing.assert_array_equal(read_back(path), vol)


def test_rgb_label_encoding_limits():
    ids = np.array([[0, 1, 255], [256, 65536, 2**24 - 1]])
    np.testing.assert_array_equal(decode_label_rgb(encode_label_rgb(ids)), ids)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        encode_label_rgb(np.array([[2**24]]))


def test_bad_volume_rejected(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_tiled_volume(np.zeros((4, 4), np.uint8), tmp_path)
    with pytest.raises(TypeError, match="float32"):
        write_tiled_volume(np.zeros((1, 4, 4), np.float32), tmp_path)
