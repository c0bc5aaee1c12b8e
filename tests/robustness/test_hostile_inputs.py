"""Hostile inputs of issue 12 and their kind: each raises (or warns) naming the culprit, and writes nothing."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_dataset import TileDataset
from monai_em.inference import ChunkedInference, ImageListInference, read_path_list
from monai_em.transforms import (
    RandCopyPasted,
    RandCutBlurd,
    RandCutNoised,
    RandFlipTransposed,
    RandGrayscaled,
    RandMisAlignmentd,
    RandMissingPartsd,
    RandMissingSectiond,
    RandMixupd,
    RandMotionBlurd,
    RandRejectionCropd,
    RandRescaled,
    RandRotateXYd,
    RandSectionElasticd,
)
from monai_em.transforms.compose import EMAugmentor

# ---------------------------------------------------------------- integer parameters given a range or text

INT_PARAMS = [
    (RandMotionBlurd, "sections"), (RandMotionBlurd, "kernel_size"), (RandMisAlignmentd, "displacement"),
    (RandMissingSectiond, "num_sections"), (RandMissingPartsd, "iterations"), (RandMixupd, "num_aug"),
    (RandCopyPasted, "dilation"),
]  # fmt: skip


@pytest.mark.parametrize("cls, name", INT_PARAMS)
@pytest.mark.parametrize("value", [(1, 3), [1, 3], "2", 2.5])
def test_integer_parameter_refuses_ranges_and_text_naming_it(cls, name, value):
    # PyTC takes one int for each of these: no range semantics to honour
    with pytest.raises(TypeError, match=rf"^{name} must be"):
        cls(keys="image", **{name: value})


@pytest.mark.parametrize("cls, name", INT_PARAMS)
def test_integer_parameter_still_takes_an_int_and_an_integral_float(cls, name):
    for value in (3, 3.0, np.int64(3)):
        t = cls(keys="image", **{name: value})
        assert getattr(getattr(t, "transform", t), name) == 3


# ---------------------------------------------------------------- numbers given as text


@pytest.mark.parametrize(
    "make, name",
    [(lambda v: RandRejectionCropd(["label"], "label", spatial_size=(2, 4, 4), reject_p=v), "reject_p"),
     (lambda v: RandRejectionCropd(["label"], "label", spatial_size=(2, 4, 4), valid_ratio=v), "valid_ratio"),
     (lambda v: RandRejectionCropd(["label"], "label", spatial_size=(2, 4, 4), size_thres=v), "size_thres"),
     (lambda v: RandRejectionCropd(["label"], "label", spatial_size=v), "spatial_size"),
     (lambda v: RandRescaled("image", low=v), "low"),
     (lambda v: RandSectionElasticd("image", alpha=v), "alpha"),
     (lambda v: RandGrayscaled("image", contrast=v), "contrast"),
     (lambda v: RandCutBlurd("image", length_ratio=v), "length_ratio"),
     (lambda v: RandCutNoised("image", scale=v), "scale"),
     (lambda v: RandMisAlignmentd("image", rotate_ratio=v), "rotate_ratio"),
     (lambda v: RandFlipTransposed("image", prob=v), "prob"),
     (lambda v: RandCopyPasted("image", aug_thres=v), "aug_thres"),
     (lambda v: RandMixupd("image", min_ratio=v), "min_ratio"),
     (lambda v: EMAugmentor([], (v, 8, 8)), r"input_size\[0\]"),
     (lambda v: ChunkedInference(torch.nn.Identity(), (4, 8, 8), "unused", pad_size=v), "pad_size"),
     (lambda v: ChunkedInference(torch.nn.Identity(), (4, 8, 8), "unused", overlap=v), "overlap")],
)  # fmt: skip
def test_string_typed_numbers_raise_naming_the_parameter(make, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=rf"^{name} must be"):
        make("0.9" if name not in ("spatial_size", "size_thres", r"input_size\[0\]", "pad_size") else "8")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- zero-size axes


@pytest.mark.parametrize(
    "transform",
    [RandFlipTransposed("image"), RandRotateXYd("image"), RandSectionElasticd("image", prob=1.0),
     RandGrayscaled("image", prob=1.0), RandMotionBlurd("image", prob=1.0), RandCutBlurd("image", prob=1.0),
     RandMissingPartsd("image", prob=1.0), RandCutNoised("image", prob=1.0)],
    ids=lambda t: type(t).__name__,
)  # fmt: skip
@pytest.mark.parametrize("shape", [(1, 0, 16, 16), (1, 4, 0, 16), (1, 4, 16, 0)])
def test_zero_size_axis_raises_naming_the_key(transform, shape):
    with pytest.raises(ValueError, match=r"\['image'\] have a spatial axis of size 0"):
        transform({"image": np.zeros(shape, np.float32)})


def test_zero_size_axis_in_rejection_crop_and_inference(tmp_path):
    crop = RandRejectionCropd(["label"], "label", spatial_size=(2, 4, 4), pad_mode="reflect")
    with pytest.raises(
        ValueError, match=r"RandRejectionCropd: keys \['label'\] have a spatial axis of size 0"
    ):
        crop({"label": np.zeros((1, 0, 4, 4), np.int32)})
    with pytest.raises(ValueError, match="axis of 0 voxels"):
        ChunkedInference(torch.nn.Identity(), (2, 8, 8), tmp_path / "out", progress=False)(
            np.zeros((0, 16, 16), np.uint8)
        )
    assert not list(tmp_path.rglob("*.h5"))


# ---------------------------------------------------------------- negative pad sizes: refused by every class


def test_negative_pad_size_is_refused_alike(tmp_path):
    with pytest.raises(ValueError, match=r"pad_size must be >= 0"):
        TileDataset({"image": np.zeros((8, 16, 16), np.uint8)}, chunk_num=(1, 1, 1), pad_size=(0, -2, 0))
    with pytest.raises(ValueError, match=r"pad_size must be >= 0"):
        ChunkedInference(torch.nn.Identity(), (4, 8, 8), tmp_path / "out", pad_size=(0, -2, 0))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a sample between input_size and sample_size


def test_sample_smaller_than_sample_size_raises_on_every_seed():
    aug = EMAugmentor.from_targets((4, 32, 32), {"image": "img", "label": "mask"})
    need = aug.sample_size
    shape = (need[0], need[1] - 10, need[2] - 10)  # bigger than input_size, smaller than sample_size
    vol = make_em_volume(shape, seed=0)
    for seed in range(6):
        with pytest.raises(
            ValueError, match=rf"key 'image' has spatial shape \({shape[0]}, {shape[1]}, {shape[2]}\)"
        ):
            aug.set_random_state(seed)(
                {"image": vol.image[None].astype(np.float32), "label": vol.label[None]}
            )


# ---------------------------------------------------------------- labels moved without an explicit mode


def _ids_volume():
    lab = np.zeros((1, 4, 32, 32), np.int32)
    lab[:, :, 8:20, 6:18] = 10
    lab[:, :, 14:28, 16:30] = 20
    return lab


@pytest.mark.parametrize(
    "make",
    [lambda: RandRotateXYd(["image", "label"], rot90=False), lambda: RandRescaled(["image", "label"], prob=1.0),
     lambda: RandSectionElasticd(["image", "label"], prob=1.0),
     lambda: RandMisAlignmentd(["image", "label"], prob=1.0, displacement=3, rotate_ratio=1.0)],
)  # fmt: skip
def test_integer_label_without_mode_is_moved_with_nearest(make):
    lab = _ids_volume()
    image = lab.astype(np.float32)
    for seed in range(4):
        t = make().set_random_state(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = t({"image": image, "label": lab})
        assert set(np.unique(np.asarray(out["label"])).tolist()) <= {0, 10, 20}
        assert out["label"].dtype == torch.int32


def test_integer_label_without_mode_through_the_fused_augmentor():
    lab = _ids_volume()
    aug = EMAugmentor(
        [RandRotateXYd(["image", "label"], rot90=False), RandRescaled(["image", "label"], prob=1.0)],
        (4, 16, 16),
    )
    out = aug.set_random_state(1)({"image": lab.astype(np.float32), "label": lab})
    assert set(np.unique(np.asarray(out["label"])).tolist()) <= {0, 10, 20}
    image = np.asarray(out["image"])
    assert not set(np.unique(image).tolist()) <= {0, 10, 20}, "the float image is still interpolated"


def test_explicit_bilinear_on_integer_labels_warns_naming_the_key():
    lab = _ids_volume()
    t = RandRotateXYd(["image", "label"], rot90=False, mode=("bilinear", "bilinear")).set_random_state(0)
    with pytest.warns(UserWarning, match=r"RandRotateXYd: key 'label' holds int32 data but mode 'bilinear'"):
        t({"image": lab.astype(np.float32), "label": lab})


# ---------------------------------------------------------------- inference inputs


def test_nan_voxels_in_inference_input_raise_and_write_nothing(tmp_path):
    vol = np.random.default_rng(0).random((6, 20, 20)).astype(np.float32)
    vol[3, 7, 9] = np.nan
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["main"] = vol
    runner = ChunkedInference(torch.nn.Conv3d(1, 1, 1), (4, 8, 8), tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match=r"in\.h5.*1 NaN or infinite voxels \(first at index \(0, 3, 7, 9\)"):
        runner(tmp_path / "in.h5")
    assert not list((tmp_path / "out").rglob("*.h5")) and not (tmp_path / "out" / "prediction.h5").exists()


def _pngs(folder, n=2):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(folder / f"s{i}.png")
    return folder


def test_2d_output_folder_equal_to_input_folder_raises_and_writes_nothing(tmp_path):
    folder = _pngs(tmp_path / "sections")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    runner = ImageListInference(torch.nn.Conv2d(1, 1, 1), (8, 8), folder, progress=False)
    with pytest.raises(ValueError, match=r"s0\.png would overwrite the input image .*set a suffix"):
        runner(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    out = ImageListInference(torch.nn.Conv2d(1, 1, 1), (8, 8), folder, suffix="_pred", progress=False)(folder)
    assert sorted(p.name for p in out) == ["s0_pred.png", "s1_pred.png"]


def test_empty_image_list_raises(tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing listed\n\n")
    runner = ImageListInference(torch.nn.Conv2d(1, 1, 1), (8, 8), tmp_path / "out", progress=False)
    for empty in ([], str(tmp_path / "empty.txt")):
        with pytest.raises(ValueError, match="no image listed for inference"):
            runner(empty)
        with pytest.raises(ValueError, match="no image listed for inference"):
            read_path_list(empty)
    assert not (tmp_path / "out").exists()


def test_window_batch_and_overlap_are_checked_up_front(tmp_path):
    with pytest.raises(ValueError, match="sw_batch_size must be an int >= 1"):
        ChunkedInference(torch.nn.Identity(), (4, 8, 8), tmp_path / "a", sw_batch_size=0)
    with pytest.raises(ValueError, match="sw_batch_size must be an int >= 1"):
        ImageListInference(torch.nn.Identity(), (8, 8), tmp_path / "b", sw_batch_size=0)
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\)"):
        ImageListInference(torch.nn.Identity(), (8, 8), tmp_path / "b", overlap=1.5)
    assert list(tmp_path.iterdir()) == []
