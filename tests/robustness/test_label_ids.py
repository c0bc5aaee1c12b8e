"""EM label ids above 2**24, 2**32 and 2**63 survive every geometric transform exactly.

Oracle: a label with one id per voxel, ``small`` (ids < 2**12, exact in any dtype, float32 included),
and the same label shifted by a huge ``offset`` on its foreground, ``big``. Run the transform with the
same seed on both: ``out(big)`` must equal ``out(small) + offset`` on the foreground, bit for bit. A
float32 round trip anywhere would break it (float32 cannot tell ``2**32 + 1`` from ``2**32``), and
so would a wrong gather, a clamp or a signed/unsigned mix-up. Ids are kept, not relabelled.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_em.transforms import (
    EMAugmentor,
    RandCopyPasted,
    RandFlipTranspose,
    RandFlipTransposed,
    RandMisAlignment,
    RandMisAlignmentd,
    RandMissingSection,
    RandMissingSectiond,
    RandRejectionCropd,
    RandRescale,
    RandRescaled,
    RandRotateXY,
    RandRotateXYd,
    RandSectionElastic,
    RandSectionElasticd,
)

# (label dtype, offset): above float32's exact range, above 32 bits, near the top of int64 / uint64
OFFSETS = [
    (np.int32, 2**24),
    (np.int64, 2**32),
    (np.int64, 2**62),
    (np.uint64, 2**63 + 2**40),
]
SEEDS = range(4)
ALL3 = {"keys": ["image", "label", "valid_mask"], "mode": ["bilinear", "nearest", "nearest"]}
SHAPE = (1, 5, 12, 14)  # odd Z, non-square sections

DICT_CASES = {
    "rescale": lambda: RandRescaled(**ALL3, low=0.6, high=1.6, prob=1.0),
    "flip": lambda: RandFlipTransposed(**ALL3, prob=1.0),
    "rot90": lambda: RandRotateXYd(**ALL3, prob=1.0),
    "rotate": lambda: RandRotateXYd(**ALL3, rot90=False, prob=1.0),
    "elastic": lambda: RandSectionElasticd(**ALL3, alpha=6.0, sigma=2.0, prob=1.0),
    "misalign_shift": lambda: RandMisAlignmentd(**ALL3, displacement=3, prob=1.0),
    "misalign_rotate": lambda: RandMisAlignmentd(**ALL3, displacement=3, rotate_ratio=1.0, prob=1.0),
    "missing_section": lambda: RandMissingSectiond(**ALL3, num_sections=2, prob=1.0),
}
ARRAY_CASES = {
    "rescale": lambda: RandRescale(low=0.6, high=1.6, prob=1.0),
    "flip_ztrans": lambda: RandFlipTranspose(do_ztrans=True, prob=1.0),
    "rot90": lambda: RandRotateXY(prob=1.0),
    "rotate": lambda: RandRotateXY(rot90=False, prob=1.0),
    "elastic": lambda: RandSectionElastic(alpha=6.0, sigma=2.0, prob=1.0),
    "misalign_rotate": lambda: RandMisAlignment(displacement=3, rotate_ratio=1.0, prob=1.0),
    "missing_section": lambda: RandMissingSection(num_sections=1, prob=1.0),
}


def pair(dtype, offset: int, shape=SHAPE, fg: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(small, big): one id per voxel (1..N) with some background, and the same shifted by ``offset``."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    small = (rng.permutation(n) + 1).reshape(shape).astype(np.int64)
    small[rng.random(shape) > fg] = 0
    big = np.where(small != 0, small.astype(np.uint64) + np.uint64(offset), 0).astype(dtype)
    return small.astype(dtype), big


def as_kind(a: np.ndarray, kind: str):
    if kind == "numpy":
        return a
    t = torch.as_tensor(a)
    return MetaTensor(t) if kind == "metatensor" else t


def shifted(out_small: np.ndarray, offset: int, dtype) -> np.ndarray:
    return np.where(out_small != 0, out_small.astype(np.uint64) + np.uint64(offset), 0).astype(dtype)


def check(out_small, out_big, offset: int, dtype, given_big) -> None:
    assert out_big.dtype == torch.as_tensor(np.zeros(1, dtype)).dtype
    if isinstance(given_big, MetaTensor):
        assert isinstance(out_big, MetaTensor)
    small = out_small.cpu().numpy()
    big = out_big.cpu().numpy()
    assert (small != 0).any(), "the oracle needs some foreground left"
    np.testing.assert_array_equal(big, shifted(small, offset, dtype))
    ids = set(np.unique(big).tolist()) - {0}
    assert ids <= set(
        np.unique(given_big if isinstance(given_big, np.ndarray) else given_big.numpy()).tolist()
    )


@pytest.mark.parametrize(
    "dtype, offset", OFFSETS, ids=lambda v: getattr(v, "__name__", hex(v) if isinstance(v, int) else v)
)
@pytest.mark.parametrize("case", DICT_CASES)
def test_dict_transforms_keep_huge_ids(case, dtype, offset):
    small, big = pair(dtype, offset)
    image = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    for seed, kind in zip(SEEDS, ["numpy", "torch", "metatensor", "numpy"], strict=True):
        t = DICT_CASES[case]()
        outs = []
        for label in (small, big):
            data = {
                "image": as_kind(image, kind),
                "label": as_kind(label, kind),
                "valid_mask": as_kind(label != 0, kind),
            }
            outs.append(t.set_random_state(seed)(data))
        check(outs[0]["label"], outs[1]["label"], offset, dtype, as_kind(big, kind))
        # the valid mask moved with the label: it is exactly the moved foreground
        np.testing.assert_array_equal(
            outs[1]["valid_mask"].cpu().numpy(), outs[1]["label"].cpu().numpy() != 0
        )


@pytest.mark.parametrize("dtype, offset", OFFSETS[1:], ids=["int64_2^32", "int64_2^62", "uint64_2^63"])
@pytest.mark.parametrize("case", ARRAY_CASES)
def test_array_transforms_keep_huge_ids(case, dtype, offset):
    shape = (2, 9, 9, 9) if case == "flip_ztrans" else SHAPE  # a z<->x transpose needs Z == X
    small, big = pair(dtype, offset, shape)
    for seed in SEEDS:
        t = ARRAY_CASES[case]()
        out_small = t.set_random_state(seed)(small, mode="nearest")
        out_big = t.set_random_state(seed)(torch.as_tensor(big), mode="nearest")
        check(out_small, out_big, offset, dtype, torch.as_tensor(big))


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("dtype, offset", [(np.int64, 2**40 + 3), (np.uint64, 2**64 - 2**20)])
def test_augmentor_keeps_huge_ids(fuse, dtype, offset):
    """The whole geometric chain (fused into one resampling, or one by one) and the centre crop."""
    aug = EMAugmentor.from_targets(
        (4, 16, 16),
        {"image": "img", "label": "mask", "valid_mask": "mask"},
        fuse=fuse,
        disabled=["grayscale", "missingparts", "motionblur", "cutblur", "cutnoise"],  # image-only
        rotate={"rot90": False, "prob": 1.0},
        rescale={"prob": 1.0},
        elastic={"alpha": 4.0, "prob": 1.0},
        misalignment={"displacement": 4, "prob": 1.0},
        missingsection={"num_sections": 1, "prob": 1.0},
    )
    shape = (1, *aug.sample_size)
    small, big = pair(dtype, offset, shape)
    image = np.random.default_rng(2).integers(0, 255, shape, dtype=np.uint8)
    for seed in SEEDS:
        outs = [
            aug.set_random_state(seed)(
                {"image": image, "label": lab, "valid_mask": (lab != 0).astype(np.uint8)}
            )
            for lab in (small, big)
        ]
        check(outs[0]["label"], outs[1]["label"], offset, dtype, big)
        assert outs[1]["image"].dtype == torch.uint8


def test_copy_paste_and_rejection_crop_keep_huge_ids():
    offset, dtype = 2**63 + 12345, np.uint64
    small = np.zeros((1, 4, 16, 16), np.int64)
    small[:, 1:3, 3:7, 4:9] = np.arange(1, 2 * 4 * 5 + 1).reshape(1, 2, 4, 5)  # one compact object
    big = shifted(small, offset, dtype)
    image = np.random.default_rng(0).random(small.shape).astype(np.float32)
    cp = RandCopyPasted("image", prob=1.0)
    outs = [cp.set_random_state(0)({"image": image, "label": lab})["label"] for lab in (small, big)]
    assert cp.params is not None and cp.params.pasted > 0
    check(outs[0], outs[1], offset, dtype, big)
    crop = RandRejectionCropd(["label"], "label", spatial_size=(4, 20, 12), size_thres=10, pad_mode="reflect")
    for seed in SEEDS:
        outs = [crop.set_random_state(seed)({"label": lab})[0]["label"] for lab in (small, big)]
        check(outs[0], outs[1], offset, dtype, big)
