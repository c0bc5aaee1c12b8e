"""One training-transform assembly: the README, the PyTC builder and the bundle all get train_transform's steps."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import CastToTyped, ScaleIntensityRanged, SqueezeDimd

import monai_em.config.pytc_build as pytc_build
from monai_em.config import (
    augmentor_kwargs,
    build_augmentations,
    build_augmentor,
    build_train_dataset,
    build_train_transform,
    load_pytc_config,
)
from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.transforms import EMAugmentor, RandRejectionCropd, TrainTransform, train_transform
from monai_em.transforms.pipeline import intensity_scaling
from tests.golden import pipelines as golden

ROOT = Path(__file__).resolve().parents[2]


def _outputs(transform, data, seed):
    transform.set_random_state(seed)
    out = transform(
        {
            k: torch.as_tensor(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            for k, v in data.items()
        }
    )
    out = out[0] if isinstance(out, list) else out
    return {k: np.asarray(v) for k, v in out.items() if isinstance(v, torch.Tensor)}


def _assert_same(a, b, data, seeds=range(3)):
    for seed in seeds:
        x, y = _outputs(a, data, seed), _outputs(b, data, seed)
        assert sorted(x) == sorted(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"seed {seed} {key}")


def test_readme_example_runs_and_its_comment_holds(tmp_path):
    block = re.search(
        r"```python\n(from monai.data import DataLoader.*?)```", (ROOT / "README.md").read_text(), re.S
    )
    code = block.group(1)
    vol = make_em_volume((8, 64, 64), seed=0)
    paths = {
        "data/image.json": write_tiled_volume(vol.image, tmp_path / "im", tile_size=32),
        "data/label.json": write_tiled_volume(vol.label, tmp_path / "lb", tile_size=32),
    }
    for name, path in paths.items():
        code = code.replace(f'"{name}"', repr(str(path)))
    code = code.replace("chunk_num=(2, 4, 4)", "chunk_num=(1, 1, 1)")  # a small volume: one chunk
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  the README's own code
    transform = namespace["transform"]
    assert isinstance(transform, TrainTransform) and transform.crop.spatial_size == (10, 370, 370)
    assert transform.augmentor.input_size == (8, 256, 256)
    assert namespace["dataset"].transform is transform


def test_train_transform_equals_the_hand_assembled_crop_and_augmentor():
    """The README's settings: the same draws as RandRejectionCropd + EMAugmentor composed by hand."""
    hand, data = golden._readme()
    size = golden.INPUT_SIZE
    built = train_transform(size, ["image", "label"], crop={"size_thres": 200, "reject_p": 0.95})
    _assert_same(built, hand, data)
    assert [type(t) for t in built.transforms] == [RandRejectionCropd, EMAugmentor]


def test_pytc_builder_is_train_transform_with_the_config_settings(monkeypatch):
    """PyTC's build_train_transform: train_transform with the config's values, no intensity scaling,
    the config parsed once."""
    cfg = load_pytc_config(golden.PYTC)
    calls = []
    real = pytc_build.pytc_presets
    monkeypatch.setattr(pytc_build, "pytc_presets", lambda c: calls.append(c) or real(c))
    built = build_train_transform(cfg)
    assert len(calls) == 1
    hand = train_transform(
        golden.INPUT_SIZE,
        {"image": "img", "label": "mask", "valid_mask": "mask"},
        crop={"size_thres": 200, "reject_p": 0.9},
    )
    _assert_same(built, hand, golden._volume())
    assert not any(isinstance(t, ScaleIntensityRanged) for t in built.transforms)
    assert built.crop.valid_key == "valid_mask" and built.crop.label_key == "label"


def test_bundle_preprocessing_is_train_transform_with_scaling_and_targets():
    parser = ConfigParser()
    parser.read_config(str(ROOT / "bundles" / "em_segmentation" / "configs" / "train.yaml"))
    parser.update({"input_size": list(golden.INPUT_SIZE), "reject_size_thres": 200})
    bundle = parser.get_parsed_content("train#preprocessing")
    assert isinstance(bundle, TrainTransform)
    assert parser.get_parsed_content("train#crop") is bundle.crop
    assert parser.get_parsed_content("train#augmentor") is bundle.augmentor
    tail = parser.get_parsed_content("target_transforms") + parser.get_parsed_content("train#loss_inputs")
    hand = train_transform(
        golden.INPUT_SIZE,
        ["image", "label"],
        crop={
            "size_thres": 200,
            "reject_p": 0.95,
            "max_trials": 50,
            "valid_ratio": 0.5,
            "pad_mode": "reflect",
        },
        intensity_max=255,
        target_transforms=tail,
    )
    data = {k: v for k, v in golden._volume().items() if k != "valid_mask"}
    _assert_same(bundle, hand, {**data, "chunk_id": 0, "chunk_round": 0})
    types = [type(t) for t in bundle.transforms[:4]]
    assert types == [RandRejectionCropd, CastToTyped, ScaleIntensityRanged, EMAugmentor]


def test_switches_augment_transforms_do_2d_and_intensity_max():
    vol = make_em_volume((4, 40, 40), seed=1)
    data = {"image": vol.image[None], "label": vol.label[None]}
    none = train_transform((1, 24, 24), ["image", "label"], augment=False, do_2d=True, intensity_max=255)
    assert none.augmentor.augmentations == [] and none.crop.spatial_size == (1, 24, 24)
    out = _outputs(none, data, 0)
    assert out["image"].shape == (1, 24, 24) and out["label"].shape == (1, 24, 24)  # squeezed to (C, Y, X)
    assert out["image"].dtype == np.float32 and 0.0 <= out["image"].min() and out["image"].max() <= 1.0
    assert isinstance(none.transforms[-1], SqueezeDimd)
    with pytest.warns(UserWarning, match="presets=.*disabled.*are ignored"):
        own = train_transform(
            (4, 24, 24), ["image", "label"], transforms=[], presets={"disabled": ["rotate"]}
        )
    assert own.augmentor.augmentations == []
    presets = train_transform(
        (4, 24, 24), ["image", "label"], presets={"disabled": ["rotate"]}, disabled=["flip"]
    )
    names = {type(t).__name__ for t in presets.augmentor.augmentations}
    assert not names & {"RandRotateXYd", "RandFlipTransposed"} and "RandSectionElasticd" in names
    pasted = train_transform(
        (4, 24, 24), {"raw": "image", "seg": "label"}, presets={"copy_paste": {"prob": 0.3}}
    )
    paste = pasted.augmentor.augmentations[-1]
    assert type(paste).__name__ == "RandCopyPasted" and paste.keys == ("raw",) and paste.label_key == "seg"
    assert pasted.crop.label_key == "seg" and pasted.crop.valid_key is None


def test_intensity_scaling_maps_the_range_and_clips():
    data = {"image": np.array([[[[0, 51, 255, 300]]]], np.uint16)}
    for t in intensity_scaling("image", 255):
        data = t(data)
    np.testing.assert_allclose(np.asarray(data["image"]).ravel(), [0.0, 0.2, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("pad_mode", ["reflect", "symmetric", "edge", "constant"])
def test_pytc_whole_volumes_are_padded_as_numpy_pads_them(tmp_path, pad_mode):
    vol = make_em_volume((4, 20, 20), seed=2)
    for name, array in (("im.h5", vol.image), ("lab.h5", vol.label)):
        with h5py.File(tmp_path / name, "w") as f:
            f["main"] = array
    cfg = load_pytc_config(
        {
            "MODEL": {"INPUT_SIZE": [2, 8, 8]},
            "AUGMENTOR": {"ENABLED": False},  # small samples: the crop alone
            "DATASET": {
                "INPUT_PATH": str(tmp_path),
                "IMAGE_NAME": "im.h5",
                "LABEL_NAME": "lab.h5",
                "PAD_SIZE": [1, 3, 25],  # x past the volume's width
                "PAD_MODE": pad_mode,
            },
        }
    )
    ds = build_train_dataset(cfg, samples_per_epoch=1)
    loaded = ds.volumes[0]
    pads = [(1, 1), (3, 3), (25, 25)]
    np.testing.assert_array_equal(loaded["image"][0], np.pad(vol.image, pads, mode=pad_mode))
    np.testing.assert_array_equal(loaded["label"][0], np.pad(vol.label, pads, mode=pad_mode))
    with pytest.raises(ValueError, match="DATASET.PAD_MODE: expected one of .*'wrap'"):
        pytc_build._load_volumes({"image": str(tmp_path / "im.h5")}, (1, 1, 1), "wrap")


def test_old_pytc_entry_points_give_the_same_augmentations():
    """build_augmentations and from_targets(**augmentor_kwargs) (the old bundle and Python paths) still
    give what build_augmentor builds, copy-paste included."""
    cfg = load_pytc_config(
        {"AUGMENTOR": {"COPYPASTE": {"ENABLED": True, "P": 0.6}, "ELASTIC": {"ENABLED": False}}}
    )
    built = build_augmentor(cfg).augmentations
    names = [type(t).__name__ for t in built]
    assert names[-1] == "RandCopyPasted" and "RandSectionElasticd" not in names
    assert [type(t).__name__ for t in build_augmentations(cfg)] == names
    again = EMAugmentor.from_targets(**augmentor_kwargs(cfg)).augmentations
    assert [type(t).__name__ for t in again] == names and again[-1].prob == 0.6
    assert build_augmentations(load_pytc_config({"AUGMENTOR": {"ENABLED": False}})) == []
