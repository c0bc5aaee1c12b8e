"""One test per bug the robustness sweep found (each failed before its fix; see docs/reliability.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_em.transforms import (
    RandCopyPasted,
    RandFlipTranspose,
    RandFlipTransposed,
    RandMixup,
    RandRejectionCropd,
)

UNSIGNED = [(np.uint16, torch.uint16), (np.uint32, torch.uint32), (np.uint64, torch.uint64)]


@pytest.mark.parametrize("np_dtype, torch_dtype", UNSIGNED)
def test_a_skipped_transform_keeps_unsigned_dtypes(np_dtype, torch_dtype):
    """prob=0 went through MONAI's convert_to_tensor: numpy uint16 came back int32 and uint64 int64
    (ids >= 2**63 wrapped negative), while prob=1 kept the dtype: one pipeline, two dtypes per batch."""
    big = np.iinfo(np_dtype).max
    img = np.full((1, 2, 4, 4), big, dtype=np_dtype)
    outs = [
        RandFlipTranspose(prob=0.0)(img),
        RandFlipTransposed("image", prob=0.0)({"image": img})["image"],
        RandMixup(prob=0.0)(img[None]),
        RandCopyPasted("image", prob=0.0)({"image": img, "label": img})["label"],
    ]
    for out in outs:
        assert out.dtype == torch_dtype
        assert int(out.reshape(-1)[0].item()) % 2**64 == int(big)


@pytest.mark.parametrize("np_dtype, torch_dtype", UNSIGNED)
def test_an_in_bounds_rejection_crop_keeps_unsigned_dtypes(np_dtype, torch_dtype):
    label = np.zeros((1, 2, 6, 6), dtype=np_dtype)
    label[0, :, 2:4, 2:4] = np.iinfo(np_dtype).max
    out = RandRejectionCropd(["label"], "label", spatial_size=(2, 4, 4)).set_random_state(0)({"label": label})
    assert out[0]["label"].dtype == torch_dtype


def test_rejection_crop_one_voxel_larger_than_the_volume():
    """A crop one voxel larger than the volume has (short // 2) == 0 padding before: the integral
    table was not padded at all and the foreground test raised IndexError."""
    label = np.zeros((1, 1, 1, 1), np.uint8)
    t = RandRejectionCropd(
        ["label"], "label", spatial_size=(1, 1, 2), size_thres=1, pad_mode="reflect", max_trials=2
    )
    with pytest.warns(RuntimeWarning, match="no acceptable crop"):
        out = t.set_random_state(0)({"label": label})
    assert tuple(out[0]["label"].shape) == (1, 1, 1, 2)
    label[...] = 5
    out = t.set_random_state(0)({"label": label})  # now every crop has foreground: accepted at once
    assert out[0]["rejection_trials"] == 1 and out[0]["label"].tolist() == [[[[5, 5]]]]


@pytest.mark.parametrize("np_dtype", [np.uint16, np.uint32, np.uint64])
def test_unsigned_images_and_labels_through_moves_and_blurs(np_dtype):
    """torch has no index_put / rot90 / where kernels for uint16/32/64: mis-alignment, motion blur and
    quarter turns raised NotImplementedError from inside torch. Moves are now exact bit moves and
    blurs run in a wider signed type; uint64 blurs are refused with a TypeError."""
    from monai_em.transforms import RandMisAlignment, RandMotionBlur, RandRotateXY

    top = int(np.iinfo(np_dtype).max)
    x = np.zeros((1, 4, 8, 8), dtype=np_dtype)
    x[0, :, :, 4:] = top
    x[0, :, 0, 0] = top - 1
    torch_dtype = torch.as_tensor(x).dtype
    for t in (
        RandMisAlignment(displacement=2, prob=1.0),
        RandMisAlignment(displacement=2, rotate_ratio=1.0, prob=1.0),
    ):
        for seed in range(4):
            out = t.set_random_state(seed)(x, mode="nearest")
            assert out.dtype == torch_dtype
            assert set(out.numpy().ravel().tolist()) <= {0, top, top - 1}
    rot = RandRotateXY(prob=1.0)
    for seed in range(6):
        out = rot.set_random_state(seed)(x)
        assert out.dtype == torch_dtype
        np.testing.assert_array_equal(out.numpy(), np.rot90(x, rot.params.k, axes=(-2, -1)))
    blur = RandMotionBlur(sections=4, kernel_size=3, prob=1.0)
    if np_dtype == np.uint64:
        with pytest.raises(TypeError, match="uint64 images cannot be interpolated"):
            blur.set_random_state(0)(x)
        return
    for seed in range(4):
        out = blur.set_random_state(seed)(x)
        assert out.dtype == torch_dtype
        expected = blur.set_random_state(seed)(x.astype(np.float64)).numpy()  # same draw, float path
        # integer images are blurred in float32: exact for uint16, within float32 rounding for uint32
        np.testing.assert_allclose(out.numpy().astype(np.float64), np.round(expected), rtol=1e-7, atol=0.5)


def test_augmentor_returns_tensors_for_numpy_input():
    """EMAugmentor's final centre crop sliced numpy arrays as numpy: keys no transform touched (or
    every key, for an empty list) left the pipeline as numpy while the others were tensors."""
    from monai.data import MetaTensor

    from monai_em.transforms import EMAugmentor, RandGrayscaled

    image = np.arange(4 * 6 * 6, dtype=np.uint16).reshape(1, 4, 6, 6)
    label = image.astype(np.uint64) + 2**63
    for transforms in ([], [RandGrayscaled("image", prob=1.0)]):
        out = EMAugmentor(transforms, (2, 4, 4))({"image": image, "label": label})
        for key, given in (("image", image), ("label", label)):
            assert isinstance(out[key], MetaTensor) and out[key].dtype == torch.as_tensor(given).dtype
        np.testing.assert_array_equal(out["label"].numpy(), label[:, 1:3, 1:5, 1:5])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint16, np.uint32, np.int64, np.uint64])
def test_copy_paste_relabel_offsets_ids_without_wrapping(dtype):
    """relabel=True computed ``label.max()`` and ``moved + max``: NotImplementedError from torch for
    uint16/32/64, and silent wrap-around onto other ids when the sum left the dtype (uint8: 200 + 200)."""
    label = np.zeros((1, 2, 12, 12), dtype=dtype)
    label[0, :, 1:4, 1:4] = 2
    label[0, :, 1:4, 4:6] = 3
    image = label.astype(np.float32)
    out = RandCopyPasted("image", relabel=True, dilation=1, prob=1.0)({"image": image, "label": label})[
        "label"
    ]
    assert out.dtype == torch.as_tensor(label).dtype
    assert set(np.unique(out.numpy()).tolist()) == {0, 2, 3, 5, 6}  # the copy holds 2 + 3 and 3 + 3
    label[label == 3] = np.iinfo(dtype).max // 2 + 1  # the copy's ids would pass the dtype's maximum
    with pytest.raises(ValueError, match="relabel: pasted ids up to .* do not fit"):
        RandCopyPasted("image", relabel=True, prob=1.0)({"image": image, "label": label})


def test_negative_strides_on_a_length_one_axis():
    """numpy calls ``a[..., ::-1]`` of a length-1 axis contiguous and ``np.ascontiguousarray`` returns it
    as is, but torch refuses its negative stride: every transform raised a torch ValueError."""
    from monai_em.transforms.base import as_torch as base_as_torch

    img = np.full((1, 3, 1), 7, np.uint8)[..., ::-1]
    assert img.strides[-1] < 0 and img.flags.c_contiguous
    assert base_as_torch(img).tolist() == [[[7], [7], [7]]]
    out = RandFlipTransposed(["image", "label"], prob=0.0)({"image": img, "label": img})
    assert out["label"].tolist() == [[[7], [7], [7]]]
    label = np.zeros((1, 1, 1), np.uint8)[..., ::-1]
    crop = RandRejectionCropd(["label"], "label", spatial_size=(1, 1), diversity=1, max_trials=1)
    assert crop.set_random_state(0)({"label": label})[0]["label"].shape == (1, 1, 1)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_copy_paste_flips_unsigned_labels(dtype):
    """torch's flip has no unsigned kernel for some shapes (here Y = X = 1): copy-paste choosing a
    z-flipped copy raised NotImplementedError for uint16/32/64 labels."""
    label = np.zeros((1, 2, 1, 1), dtype=dtype)
    label[0, 0] = np.iinfo(dtype).max
    image = np.array([0.25, 0.75], np.float32).reshape(1, 2, 1, 1)
    t = RandCopyPasted("image", dilation=0, aug_thres=1.0, prob=1.0)
    out = t({"image": image, "label": label})
    assert t.params.flip_z and out["label"].dtype == torch.as_tensor(label).dtype
    assert out["label"].numpy().ravel().tolist() == [np.iinfo(dtype).max] * 2  # the copy fills section 1
    assert out["image"].numpy().ravel().tolist() == [0.25, 0.25]
