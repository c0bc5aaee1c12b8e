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
    t = RandRejectionCropd(["label"], "label", spatial_size=(1, 1, 2), size_thres=1, pad_mode="reflect", max_trials=2)
    with pytest.warns(RuntimeWarning, match="no acceptable crop"):
        out = t.set_random_state(0)({"label": label})
    assert tuple(out[0]["label"].shape) == (1, 1, 1, 2)
    label[...] = 5
    out = t.set_random_state(0)({"label": label})  # now every crop has foreground: accepted at once
    assert out[0]["rejection_trials"] == 1 and out[0]["label"].tolist() == [[[[5, 5]]]]
