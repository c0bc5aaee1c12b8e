import json
import logging

import h5py
import numpy as np
import pytest
from PIL import Image

from monai_em.data.sources import open_volume
from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import load_tile_json, tile_file, write_tile_json, write_tiled_volume
from monai_em.data.tiles import MissingTileWarning, TileVolume, check_compatible, zoom_tile

PAD = 40


def random_boxes(shape, rng, n=40):
    """Boxes inside, straddling tile borders and partly outside (up to PAD voxels) the volume."""
    boxes = []
    for _ in range(n):
        start = [int(rng.integers(-min(PAD, s - 1), s)) for s in shape]
        stop = [
            min(a + int(rng.integers(1, max(2, s // 2 + 2))), s + PAD)
            for a, s in zip(start, shape, strict=True)
        ]
        boxes.append(tuple(zip(start, stop, strict=True)))
    boxes.append(tuple((0, s) for s in shape))
    return boxes


def assert_reads_equal_slices(vol, full, rng, n=40):
    padded = np.pad(full, [(min(PAD, s - 1), PAD) for s in full.shape], mode="reflect")
    offs = [min(PAD, s - 1) for s in full.shape]
    for box in random_boxes(full.shape, rng, n):
        ref = padded[tuple(slice(a + o, b + o) for (a, b), o in zip(box, offs, strict=True))]
        np.testing.assert_array_equal(vol.read(box), ref, err_msg=str(box))


@pytest.mark.parametrize("tile_size", [None, 16, (20, 12)])
def test_synthetic_reads_equal_slicing(tmp_path, rng, tile_size):
    v = make_em_volume((6, 64, 48), seed=3)
    im = TileVolume(write_tiled_volume(v.image, tmp_path / "im", tile_size=tile_size))
    lb = TileVolume(
        write_tiled_volume(v.label, tmp_path / "lb", tile_size=tile_size), role="label", threads=0
    )
    assert im.shape == (6, 64, 48) and im.dtype == np.uint8 and lb.dtype == v.label.dtype
    assert_reads_equal_slices(im, v.image, rng)
    assert_reads_equal_slices(lb, v.label, rng)


def test_region_read_opens_only_the_tiles_it_touches(tmp_path):
    v = make_em_volume((4, 64, 64), seed=0)
    vol = TileVolume(write_tiled_volume(v.image, tmp_path, tile_size=16))
    opened = []
    decode = vol._decode
    vol._decode = lambda p: opened.append(p) or decode(p)
    vol.read(((1, 3), (15, 17), (30, 34)))  # rows 0-1, columns 1-2, two sections
    assert sorted(opened) == sorted(
        str(tmp_path / tile_file(f"{z:04d}/{{row}}_{{column}}.png", r, c))
        for z in (1, 2)
        for r in (0, 1)
        for c in (1, 2)
    )


@pytest.fixture(scope="module")
def medulla_crop(medulla_sections, medulla_label):
    """First 10 medulla250 sections (10, 250, 250) uint8 and the matching uint32 labels."""
    image = np.stack([np.asarray(Image.open(p)) for p in medulla_sections[:10]])
    return image, np.asarray(medulla_label[:10])


def test_medulla_single_file_sections_and_4x4_tiles(tmp_path, rng, medulla_sections, medulla_crop):
    image, label = medulla_crop
    # one file per section: a JSON written next to (not inside) the shared folder, with relative paths
    folder = medulla_sections[0].parent
    spec_path = write_tile_json(folder, tmp_path / "sections" / "image.json")
    spec = json.loads(spec_path.read_text())
    assert (
        spec["depth"] == 250
        and spec["height"] == spec["width"] == 250
        and not spec["image"][0].startswith("/")
    )
    sections = TileVolume(spec_path)
    assert_reads_equal_slices(
        sections, np.stack([np.asarray(Image.open(p)) for p in medulla_sections]), rng, n=8
    )
    # the same sections split into 4 x 4 tiles (63 px, last row/column 61 px); labels in 4 x 4 tiles too
    tiles = TileVolume(write_tiled_volume(image, tmp_path / "tiles", tile_size=63))
    assert tiles.spec.n_rows == tiles.spec.n_columns == 4
    assert_reads_equal_slices(tiles, image, rng)
    lab = TileVolume(write_tiled_volume(label, tmp_path / "labels", tile_size=63), role="label")
    assert_reads_equal_slices(lab, label, rng, n=15)
    check_compatible({"image": tiles, "label": lab})


def test_write_tile_json_from_tile_folders(tmp_path):
    v = make_em_volume((3, 50, 70), seed=1)
    write_tiled_volume(v.image, tmp_path, tile_size=(16, 32), tile_st=(2, 5), json_name="orig.json")
    spec = load_tile_json(write_tile_json(tmp_path, tmp_path / "meta" / "again.json"))
    assert spec.shape == (3, 50, 70) and spec.tile_size == (16, 32) and spec.tile_st == (2, 5)
    np.testing.assert_array_equal(TileVolume(spec.path).read(((0, 3), (0, 50), (0, 70))), v.image)


def test_16bit_png_and_tiff_tiles(tmp_path, rng):
    vol = rng.integers(0, 65535, (3, 40, 30)).astype(np.uint16)
    for ext in ("png", "tif"):
        tv = TileVolume(write_tiled_volume(vol, tmp_path / ext, tile_size=16, ext=ext))
        assert tv.dtype == np.uint16
        assert_reads_equal_slices(tv, vol, rng, n=10)


def test_tile_ratio_nearest_labels_and_linear_images(tmp_path):
    v = make_em_volume((3, 40, 48), seed=5)
    # labels stored at half resolution, read with tile_ratio 2: nearest upsampling = repeat
    small = v.label[:, ::2, ::2]
    write_tiled_volume(small, tmp_path / "lb", tile_size=8)
    lb = TileVolume(
        write_tile_json(tmp_path / "lb", tmp_path / "lb" / "r2.json", tile_ratio=2, dtype="int32"),
        role="label",
    )
    assert lb.shape == (3, 40, 48) and lb.spec.tile_size == (16, 16)
    expected = small.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(lb.read(((0, 3), (0, 40), (0, 48))), expected)
    np.testing.assert_array_equal(
        lb.read(((1, 2), (5, 39), (-3, 20))),
        np.pad(expected, ((0, 0), (0, 0), (3, 0)), mode="reflect")[1:2, 5:39, :23],
    )
    # an image of 2x2 blocks stored at full resolution, read with tile_ratio 0.5: linear gives the block values
    blocks = v.image[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2)
    write_tiled_volume(blocks, tmp_path / "im", tile_size=16)
    im = TileVolume(write_tile_json(tmp_path / "im", tmp_path / "im" / "r05.json", tile_ratio=0.5))
    assert im.shape == (3, 20, 24)
    np.testing.assert_array_equal(im.read(((0, 3), (0, 20), (0, 24))), v.image[:, ::2, ::2])
    # linear really interpolates (and never blends labels): a ramp zoomed by 2 stays a ramp
    ramp = np.tile(np.arange(0, 200, 20, dtype=np.uint8), (4, 1))
    np.testing.assert_array_equal(
        zoom_tile(ramp, 2, linear=True)[0, 1:-1], np.arange(5, 185, 10, dtype=np.uint8)
    )
    assert set(np.unique(zoom_tile(ramp, 2, linear=False))) <= set(np.unique(ramp))


def test_rgb_labels_decode_to_ids(tmp_path):
    label = np.zeros((2, 20, 20), np.uint32)
    label[:, 5:15, 5:15] = 70000  # > 2**16: stored as VAST RGB
    label[1, :3] = 2**24 - 1
    vol = TileVolume(write_tiled_volume(label, tmp_path, tile_size=8), role="label")
    assert Image.open(tmp_path / "0000" / "0_0.png").mode == "RGB"
    np.testing.assert_array_equal(vol.read(((0, 2), (0, 20), (0, 20))), label)


def test_missing_tiles_fill_warn_and_strict(tmp_path, caplog):
    v = make_em_volume((2, 32, 32), seed=0)
    im_json = write_tiled_volume(v.image, tmp_path / "im", tile_size=16)
    lb_json = write_tiled_volume(v.label, tmp_path / "lb", tile_size=16)
    for folder in ("im", "lb"):
        (tmp_path / folder / "0001" / "1_0.png").unlink()
    box = ((0, 2), (0, 32), (0, 32))
    im = TileVolume(im_json, fill_value=77)
    with pytest.warns(MissingTileWarning, match="0001/1_0.png"), caplog.at_level(logging.WARNING):
        out = im.read(box)
    assert (
        (out[1, 16:, :16] == 77).all()
        and (out[1, :16] == v.image[1, :16]).all()
        and (out[0] == v.image[0]).all()
    )
    assert "1 missing tile(s)" in caplog.text and im.missing_count == 1
    assert im.missing_files() == [str(tmp_path / "im" / "0001" / "1_0.png")]
    with pytest.warns(MissingTileWarning, match="lb/0001/1_0.png"):
        lab = TileVolume(lb_json, role="label", fill_value=77).read(box)
    assert (lab[1, 16:, :16] == 0).all() and (lab[1, 16:, 16:] == v.label[1, 16:, 16:]).all()
    with pytest.warns(MissingTileWarning):
        assert (TileVolume(im_json, role="mask").read(box)[1, 16:, :16] == 0).all()
    with pytest.raises(FileNotFoundError, match="0001/1_0.png"):
        TileVolume(im_json, strict=True).read(box)


def edit_json(path, **changes):
    spec = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"depth": None}, "missing field.*depth"),
        ({"image": None, "height": None}, "missing field.*'image', 'height'"),
        ({"tile_size": None}, "missing field 'tile_size'"),
        ({"depth": 5}, "'depth' is 5 but 'image' lists 3"),
        ({"n_rows": 3}, "'n_rows' is 3"),
        ({"tile_ratio": 0}, "'tile_ratio'"),
        ({"tile_size": [16, 0]}, "'tile_size'"),
        ({"dtype": "notatype"}, "'dtype'"),
    ],
)
def test_bad_json_fields_are_named(tmp_path, changes, match):
    path = write_tiled_volume(np.zeros((3, 32, 32), np.uint8), tmp_path, tile_size=16)
    with pytest.raises(ValueError, match=match):
        TileVolume(edit_json(path, **changes))


def test_bad_tiles_are_named(tmp_path):
    vol = np.full((2, 32, 32), 9, np.uint8)
    path = write_tiled_volume(vol, tmp_path, tile_size=16)
    Image.fromarray(np.zeros((16, 10), np.uint8)).save(tmp_path / "0001" / "0_1.png")
    with pytest.raises(ValueError, match=r"0001/0_1.png is 16x10 voxels but .* implies 16x16"):
        TileVolume(path).read(((1, 2), (0, 16), (10, 20)))
    (tmp_path / "0000" / "1_1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read tile .*0000/1_1.png"):
        TileVolume(path).read(((0, 1), (16, 32), (16, 32)))
    Image.fromarray(np.full((16, 16), 1000, np.uint16)).save(tmp_path / "0000" / "0_0.png")
    with pytest.raises(ValueError, match="0000/0_0.png holds uint16 values .* uint8"):
        TileVolume(path).read(((0, 1), (0, 4), (0, 4)))
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        TileVolume(tmp_path / "nothere.json")
    with pytest.raises(ValueError, match="role"):
        TileVolume(path, role="weights")


def test_check_compatible_names_the_disagreement(tmp_path):
    v = make_em_volume((2, 32, 32), seed=0)
    im = TileVolume(write_tiled_volume(v.image, tmp_path / "im", tile_size=16))
    lb_path = write_tiled_volume(v.label, tmp_path / "lb", tile_size=16)
    short = TileVolume(write_tiled_volume(v.label[:1], tmp_path / "short", tile_size=16), role="label")
    with pytest.raises(ValueError, match=r"'label'.*shape \(1, 32, 32\).*'image'.*\(2, 32, 32\)"):
        check_compatible({"image": im, "label": short})
    lb = TileVolume(edit_json(lb_path, tile_ratio=2, height=64, width=64, tile_size=32), role="label")
    with pytest.raises(ValueError, match="shape"):
        check_compatible({"image": im, "label": lb})
    im2 = TileVolume(
        edit_json(
            write_tiled_volume(v.image, tmp_path / "im2", tile_size=16),
            tile_ratio=2,
            height=64,
            width=64,
            tile_size=32,
        )
    )
    im3 = TileVolume(
        edit_json(
            write_tiled_volume(v.image, tmp_path / "im3", tile_size=32),
            tile_ratio=1,
            height=64,
            width=64,
            tile_size=32,
            n_rows=2,
            n_columns=2,
        )
    )
    with pytest.raises(
        ValueError, match=r"tile_ratio of 'label' \(.*im3.*\) is 1.0 but 'image' \(.*im2.*\) has 2.0"
    ):
        check_compatible({"image": im2, "label": im3})


def test_open_volume_whole_files(tmp_path, rng):
    vol = rng.integers(0, 255, (4, 6, 5)).astype(np.uint8)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["a"] = np.zeros((1, 1, 1))
        f["raw"] = vol
    np.testing.assert_array_equal(
        open_volume({"path": tmp_path / "v.h5", "dataset": "raw"}).read(((0, 4), (0, 6), (0, 5))), vol
    )
    import nibabel as nib

    nib.save(
        nib.Nifti1Image(vol.transpose(2, 1, 0), np.eye(4)), tmp_path / "v.nii.gz"
    )  # NIfTI axes are (x, y, z)
    np.testing.assert_array_equal(
        open_volume(str(tmp_path / "v.nii.gz")).read(((-1, 3), (0, 6), (0, 5))),
        np.pad(vol, ((1, 0), (0, 0), (0, 0)), mode="reflect")[:4],
    )
    with pytest.raises(TypeError, match="list"):
        open_volume([1, 2])


@pytest.mark.slow  # the first TIFF read imports ITK (~5 s)
def test_open_volume_tiff_stack(tmp_path, rng):
    vol = rng.integers(0, 255, (4, 6, 5)).astype(np.uint8)
    Image.fromarray(vol[0]).save(
        tmp_path / "v.tif", save_all=True, append_images=[Image.fromarray(s) for s in vol[1:]]
    )
    np.testing.assert_array_equal(open_volume(tmp_path / "v.tif").read(((0, 4), (0, 6), (0, 5))), vol)
