"""The key-role table is the one rule: every layer that treats a key by its role reads it from there."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from monai_em.data.tile_format import write_tile_json, write_tiled_volume
from monai_em.data.tiles import MissingTileWarning, TileVolume
from monai_em.roles import ROLES, Role, resolve_roles, role_of_key
from monai_em.transforms.base import keys_and_modes
from monai_em.transforms.compose import EMAugmentor
from monai_em.transforms.pipeline import train_transform
from monai_em.transforms.presets import default_em_transforms

GEOMETRIC = (
    "RandRotateXYd",
    "RandRescaled",
    "RandFlipTransposed",
    "RandSectionElasticd",
    "RandMissingSectiond",
)
IMAGE_ONLY = ("RandGrayscaled", "RandMissingPartsd", "RandMotionBlurd", "RandCutBlurd", "RandCutNoised")


def test_roles_from_names_target_types_and_role_names():
    assert resolve_roles(["image", "seg", "valid"]) == {"image": "image", "seg": "label", "valid": "mask"}
    assert resolve_roles({"raw": "img", "gt": "mask", "seg": "mask", "valid_mask": "mask", "w": "label"}) == {
        "raw": "image",
        "gt": "mask",  # a mask target whose name says nothing is a mask (the role and the PyTC type agree)
        "seg": "label",
        "valid_mask": "mask",
        "w": "label",
    }
    resolved = resolve_roles({"a": "image", "b": "label", "c": "mask", "label_x": "mask"})
    assert (
        resolve_roles(resolved) == resolved == {"a": "image", "b": "label", "c": "mask", "label_x": "label"}
    )
    with pytest.raises(ValueError, match=r"target types must be 'img' or 'mask'.*'image': 'picture'"):
        resolve_roles({"image": "picture"})
    with pytest.warns(UserWarning, match="key 'foo' is read as an image"):
        assert role_of_key("foo") == "image"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert role_of_key("foo", "mask") == "mask"  # the target type names it: no warning


def test_old_import_paths_still_work():
    from monai_em.data import sources
    from monai_em.transforms import compose, presets

    assert sources.role_of_key is role_of_key
    assert compose.default_em_transforms is presets.default_em_transforms
    assert keys_and_modes({"image": "img", "label": "mask"}) == (("image", "label"), ("bilinear", "nearest"))


def _tiles_with_a_missing_tile(tmp_path, volume):
    path = write_tiled_volume(volume, tmp_path, tile_size=16)
    (tmp_path / "0001" / "1_0.png").unlink()
    return path


def _modes(transforms) -> dict[str, dict]:
    """name -> {key: interpolation} (geometric transforms) or {key: None} (image-only ones)."""
    out = {}
    for t in transforms:
        name = type(t).__name__
        modes = t.mode if name in GEOMETRIC else (None,) * len(t.keys)
        out[name] = dict(zip(t.keys, modes, strict=True))
    return out


def test_a_new_role_reaches_tile_fill_zoom_and_the_augmentation_list(tmp_path, monkeypatch):
    """A role added to the table alone: the tile reader fills and zooms with it, the default list
    interpolates it as the table says and keeps image-only transforms off it."""
    weight = Role(
        "weight", interpolation="nearest", target_type="mask", fill_value=7, intensities=False, key="w"
    )
    monkeypatch.setitem(ROLES, "weight", weight)
    image = (np.arange(2 * 32 * 32).reshape(2, 32, 32) % 200 + 20).astype(np.uint8)
    path = _tiles_with_a_missing_tile(tmp_path / "w", image)
    with pytest.warns(MissingTileWarning):
        out = TileVolume(path, role="weight", threads=0).read(((0, 2), (0, 32), (0, 32)))
    assert (out[1, 16:, :16] == 7).all() and (out[0] == image[0]).all()
    # the zoom of a half-resolution tile follows the role's interpolation: nearest repeats voxels
    write_tiled_volume(image[:, ::2, ::2], tmp_path / "half", tile_size=8)
    half = write_tile_json(tmp_path / "half", tmp_path / "half" / "r2.json", tile_ratio=2)
    up = TileVolume(half, role="weight", threads=0).read(((0, 2), (0, 32), (0, 32)))
    np.testing.assert_array_equal(up, image[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2))
    monkeypatch.setitem(ROLES, "weight", dataclasses.replace(weight, interpolation="bilinear"))
    linear = TileVolume(half, role="weight", threads=0).read(((0, 2), (0, 32), (0, 32)))
    assert not np.array_equal(linear, up)

    modes = _modes(default_em_transforms({"image": "image", "w": "weight"}))
    for name in GEOMETRIC:
        assert modes[name] == {"image": "bilinear", "w": "bilinear"}, name
    for name in IMAGE_ONLY:
        assert list(modes[name]) == ["image"], name
    monkeypatch.setitem(ROLES, "weight", dataclasses.replace(weight, intensities=True))
    modes = _modes(default_em_transforms({"image": "image", "w": "weight"}))
    for name in IMAGE_ONLY:
        assert list(modes[name]) == ["image", "w"], name


def test_changing_a_role_changes_every_user(tmp_path, monkeypatch):
    """Masks made bilinear, filled with 1 and given intensities: the default list, keys_and_modes and
    the tile reader all follow."""
    monkeypatch.setitem(
        ROLES,
        "mask",
        dataclasses.replace(ROLES["mask"], interpolation="bilinear", fill_value=1, intensities=True),
    )
    targets = {"image": "img", "label": "mask", "valid_mask": "mask"}
    assert keys_and_modes(targets)[1] == ("bilinear", "nearest", "bilinear")
    modes = _modes(default_em_transforms(targets))
    assert modes["RandRotateXYd"] == {"image": "bilinear", "label": "nearest", "valid_mask": "bilinear"}
    assert list(modes["RandGrayscaled"]) == ["image", "valid_mask"]
    mask = np.ones((2, 32, 32), np.uint8) * 5
    with pytest.warns(MissingTileWarning):
        out = TileVolume(_tiles_with_a_missing_tile(tmp_path, mask), role="mask", threads=0).read(
            ((0, 2), (0, 32), (0, 32))
        )
    assert (out[1, 16:, :16] == 1).all()


def test_label_role_decides_what_the_augmentor_smooths():
    aug = EMAugmentor.from_targets(
        (4, 16, 16), {"image": "img", "seg": "mask", "valid": "mask"}, smooth_labels=True
    )
    assert aug.label_keys == ("seg",)
    t = train_transform((4, 16, 16), {"raw": "image", "gt": "label", "ok": "mask"}, smooth_labels=True)
    assert (t.crop.label_key, t.crop.valid_key, t.augmentor.label_keys) == ("gt", "ok", ("gt",))


def test_image_keys_of_any_name_get_image_only_transforms_and_labels_never_do():
    ts = default_em_transforms({"raw": "img", "raw2": "image", "gt": "mask"})
    modes = _modes(ts)
    for name in IMAGE_ONLY:
        assert list(modes[name]) == ["raw", "raw2"]
    assert modes["RandRotateXYd"] == {"raw": "bilinear", "raw2": "bilinear", "gt": "nearest"}


def test_default_keys_and_the_fallback_label_key_come_from_the_table(monkeypatch):
    """A role's default key renamed in the table alone: the keys augmented when none are named, the
    keys the augmentor smooths, and the label key of a crop or copy-paste without a label all follow."""
    monkeypatch.setitem(ROLES, "label", dataclasses.replace(ROLES["label"], key="gt"))
    rotate = default_em_transforms()[-1]
    assert (rotate.keys, rotate.mode) == (("image", "gt", "valid_mask"), ("bilinear", "nearest", "nearest"))
    assert EMAugmentor.from_targets((4, 16, 16), smooth_labels=True).label_keys == ("gt",)
    t = train_transform((4, 16, 16), {"raw": "image", "ok": "mask"}, presets={"copy_paste": {"prob": 1.0}})
    assert (t.crop.label_key, t.crop.valid_key) == ("gt", "ok")
    paste = t.augmentor.augmentations[-1]
    assert (type(paste).__name__, paste.label_key, tuple(paste.keys)) == ("RandCopyPasted", "gt", ("raw",))
