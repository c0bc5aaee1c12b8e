"""Section defects against the spec: mis-alignment, missing sections, missing parts, motion blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter1d

from monai_em.transforms.sections import (
    MissingPartsParams,
    MotionBlurParams,
    RandMisAlignment,
    RandMisAlignmentd,
    RandMissingParts,
    RandMissingPartsd,
    RandMissingSection,
    RandMissingSectiond,
    RandMotionBlur,
    RandMotionBlurd,
)
from tests.utils import ARRAY_TYPE_NAMES, as_type, to_numpy

BIG = 2**40  # label ids beyond float32 and int32


def coord_volume(z: int, y: int, x: int) -> np.ndarray:
    """``(1, Z, Y, X)`` int64 whose value encodes its own coordinates: z*10**6 + y*10**3 + x."""
    zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    return (zz * 10**6 + yy * 10**3 + xx)[None].astype(np.int64)


def decode(v: int) -> tuple[int, int, int]:
    return v // 10**6, (v // 10**3) % 10**3, v % 10**3


# ---------------------------------------------------------------- mis-alignment


def test_misalignment_translation_by_content():
    d, shape = 6, (7, 30, 34)
    vol = coord_volume(*shape)
    seen_modes, seen_sections = set(), set()
    for seed in range(40):
        t = RandMisAlignmentd(["image", "label"], displacement=d, prob=1.0, mode=("bilinear", "nearest"))
        t.set_random_state(seed)
        out = t({"image": vol.astype(np.float64), "label": vol + BIG})
        img, lab = to_numpy(out["image"]), to_numpy(out["label"])
        assert img.shape == (1, shape[0], shape[1] - d, shape[2] - d)
        assert lab.dtype == np.int64 and np.array_equal(
            lab - BIG, img.astype(np.int64)
        )  # same cuts for every key
        shifts = []
        for z in range(shape[0]):
            z0, y0, x0 = decode(int(lab[0, z, 0, 0] - BIG))
            assert z0 == z and 0 <= y0 < d and 0 <= x0 < d
            # the whole section is one rigid crop of the same input section
            assert np.array_equal(lab[0, z] - BIG, vol[0, z, y0 : y0 + shape[1] - d, x0 : x0 + shape[2] - d])
            shifts.append((y0, x0))
        p = t.params
        if p.start0 == p.start1:
            continue
        moved = {z for z, s in enumerate(shifts) if s != shifts[0]}
        assert all(shifts[z] == p.start1 for z in moved)
        if p.slip:
            assert moved == {p.section}
        else:
            assert moved == set(range(p.section, shape[0]))
        assert 1 <= min(moved) <= shape[0] - 2
        seen_modes.add(p.slip)
        seen_sections.add(p.section)
    assert seen_modes == {True, False}
    assert seen_sections == set(range(1, shape[0] - 1))


def test_misalignment_rotation_moves_only_chosen_sections_and_keeps_alignment():
    shape, d = (5, 40, 40), 8
    lab = np.zeros((1, *shape), np.int64)
    lab[:, :, 8:20, 10:30] = BIG + 1
    lab[:, :, 22:34, 6:36] = BIG + 2
    img = np.where(lab == BIG + 1, 0.25, np.where(lab == BIG + 2, 0.75, 0.0)).astype(np.float32)
    bound = 2 * math.degrees(math.asin((d / 2) / (1.42 * (shape[1] - d) / 2)))
    for seed in range(12):
        t = RandMisAlignmentd(["image", "label"], d, rotate_ratio=1.0, prob=1.0, mode=("bilinear", "nearest"))
        t.set_random_state(seed)
        out = t({"image": img, "label": lab})
        p = t.params
        assert p.rotate and abs(p.angle) <= bound
        o_img, o_lab = to_numpy(out["image"]), to_numpy(out["label"])
        assert o_img.shape == img.shape and o_lab.dtype == np.int64
        assert set(np.unique(o_lab)) <= {0, BIG + 1, BIG + 2}
        changed = {z for z in range(shape[0]) if not np.allclose(o_img[0, z], img[0, z])}
        assert changed == ({p.section} if p.slip else set(range(p.section, shape[0])))
        assert all(np.array_equal(o_lab[0, z], lab[0, z]) for z in set(range(shape[0])) - changed)
        # image still explained by the label away from object borders
        expect = np.where(o_lab == BIG + 1, 0.25, np.where(o_lab == BIG + 2, 0.75, 0.0))
        assert np.mean(np.abs(o_img - expect) < 1e-3) > 0.9


def test_misalignment_margin_and_errors():
    assert RandMisAlignment(16).margin().add == (0, 8, 8)
    assert RandMisAlignment(5).margin().add == (0, 3, 3)
    with pytest.raises(ValueError, match="Z >= 3"):
        RandMisAlignment(4, prob=1.0)(np.zeros((1, 2, 16, 16)))
    with pytest.raises(ValueError, match="displacement 16"):
        RandMisAlignment(16, prob=1.0)(np.zeros((1, 4, 16, 40)))
    with pytest.raises(ValueError, match="rotate_ratio"):
        RandMisAlignment(4, rotate_ratio=2.0)


def test_misalignment_on_fib25_image_and_label_get_the_same_cut(fib25):
    image, label = fib25
    image, label = image[None, :6, :48, :48], label[None, :6, :48, :48]
    d = 8
    t = RandMisAlignmentd(["image", "label"], d, prob=1.0, mode=("bilinear", "nearest")).set_random_state(3)
    out = t({"image": image, "label": label})
    o_img, o_lab = to_numpy(out["image"]), to_numpy(out["label"])
    assert o_img.dtype == np.uint8 and o_lab.dtype == label.dtype
    size = 48 - d
    for z in range(6):  # find the shift by content in the image; the label must have the same one
        hits = [
            (y, x)
            for y in range(d)
            for x in range(d)
            if np.array_equal(o_img[0, z], image[0, z, y : y + size, x : x + size])
        ]
        assert hits and any(
            np.array_equal(o_lab[0, z], label[0, z, y : y + size, x : x + size]) for y, x in hits
        )


# ---------------------------------------------------------------- missing sections


def test_missing_section_removes_n_interior_sections_from_every_key():
    depth = 9
    vol = coord_volume(depth, 3, 3)
    deleted_any = set()
    for seed in range(30):
        t = RandMissingSectiond(["image", "label"], num_sections=3, prob=1.0).set_random_state(seed)
        out = t({"image": vol.astype(np.float32), "label": vol + BIG})
        img, lab = to_numpy(out["image"]), to_numpy(out["label"])
        assert img.shape == (1, depth - 3, 3, 3) and lab.shape == img.shape
        kept = [decode(int(v))[0] for v in lab[0, :, 0, 0] - BIG]
        assert kept == sorted(kept) and np.array_equal(img.astype(np.int64), lab - BIG)
        deleted = set(range(depth)) - set(kept)
        assert len(deleted) == 3 and 0 not in deleted and depth - 1 not in deleted
        assert deleted == set(t.params.sections)
        deleted_any |= deleted
    assert deleted_any == set(range(1, depth - 1))


def test_missing_section_edge_cases():
    one = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    assert np.array_equal(to_numpy(RandMissingSection(2, prob=1.0)(one)), one)
    with pytest.raises(ValueError, match="num_sections=2 .* Z=3"):
        RandMissingSection(2, prob=1.0)(np.zeros((1, 3, 4, 4)))
    assert RandMissingSection(2).margin().add == (1, 0, 0)
    assert RandMissingSection(3).margin().add == (2, 0, 0)


# ---------------------------------------------------------------- missing parts


def test_missing_parts_hit_skips_next_and_fills_band_with_section_mean():
    rng = np.random.default_rng(0)
    img = rng.random((1, 6, 40, 40)).astype(np.float32)
    t = RandMissingParts(iterations=3, section_prob=1.0, prob=1.0).set_random_state(1)
    out = to_numpy(t(img))
    for z in range(6):
        changed = out[0, z] != img[0, z]
        if z % 2:  # every section is hit, so every next one is skipped
            assert not changed.any()
            continue
        assert changed.any() and not changed.all()
        assert np.allclose(out[0, z][changed], img[0, z].mean(), atol=1e-6)
        # a border-to-border band: every row or every column holds one contiguous run
        rows = [np.flatnonzero(r) for r in changed]
        cols = [np.flatnonzero(c) for c in changed.T]
        runs = rows if all(len(r) for r in rows) else cols
        assert all(len(r) and r[-1] - r[0] + 1 == len(r) for r in runs)


def test_missing_parts_band_is_the_cross_dilated_line():
    img = np.ones((1, 1, 24, 20), np.float32)
    img[0, 0, 0, 0] = 25.0  # mean = 1 + 24/480 = 1.05
    params = MissingPartsParams(((0, True, 10, 10),), 3)  # vertical line at x = 10, dilated by 3
    out = to_numpy(RandMissingParts(prob=1.0).apply(img, params, "bilinear"))[0, 0]
    band = np.isclose(out, 1.05)
    expect = np.zeros_like(band)
    expect[:, 7:14] = True
    assert np.array_equal(band, expect)
    thin = to_numpy(RandMissingParts(prob=1.0).apply(img, MissingPartsParams(((0, False, 2, 20),), 0), "x"))[
        0, 0
    ]
    assert np.array_equal(np.isclose(thin, 1.05).sum(0), np.ones(20))  # one voxel per column


def test_missing_parts_section_prob_zero_and_uint8_fib25(fib25):
    img = fib25[0][None, :4, :64, :64]
    t = RandMissingPartsd("image", iterations=8, section_prob=0.0, prob=1.0).set_random_state(0)
    assert np.array_equal(to_numpy(t({"image": img})["image"]), img)
    t = RandMissingPartsd("image", iterations=8, section_prob=1.0, prob=1.0).set_random_state(0)
    out = to_numpy(t({"image": img})["image"])
    assert out.dtype == np.uint8
    changed = out[0, 0] != img[0, 0]
    assert changed.any() and np.all(out[0, 0][changed] == np.rint(img[0, 0].mean()))
    with pytest.raises(ValueError, match="section_prob"):
        RandMissingParts(section_prob=1.5)


# ---------------------------------------------------------------- motion blur


@pytest.mark.parametrize("horizontal", [True, False])
def test_motion_blur_is_a_reflected_line_average(horizontal):
    rng = np.random.default_rng(2)
    img = rng.random((1, 3, 12, 9))
    params = MotionBlurParams((1,), horizontal, 5)
    out = to_numpy(RandMotionBlur(prob=1.0).apply(img, params, "bilinear"))
    expect = uniform_filter1d(img[0, 1], 5, axis=-1 if horizontal else -2, mode="mirror")
    assert np.allclose(out[0, 1], expect) and np.array_equal(out[0, [0, 2]], img[0, [0, 2]])


def test_motion_blur_changes_only_the_chosen_sections():
    rng = np.random.default_rng(3)
    img = rng.random((2, 6, 16, 16)).astype(np.float32)
    picked = set()
    for seed in range(10):
        t = RandMotionBlurd("image", sections=2, kernel_size=3, prob=1.0).set_random_state(seed)
        out = to_numpy(t({"image": img})["image"])
        changed = {z for z in range(6) if not np.array_equal(out[:, z], img[:, z])}
        assert changed == set(t.params.sections) and len(changed) == 2
        picked |= changed
        # blurring is an average: intensity range shrinks, the mean barely moves
        for z in changed:
            assert out[:, z].std() < img[:, z].std() and abs(out[:, z].mean() - img[:, z].mean()) < 0.02
    assert len(picked) > 2
    everything = RandMotionBlur(sections=10, prob=1.0).set_random_state(0)(img)
    assert all(not np.array_equal(to_numpy(everything)[:, z], img[:, z]) for z in range(6))


def test_motion_blur_uint8_fib25(fib25):
    img = fib25[0][None, :5, :40, :40]
    t = RandMotionBlur(sections=1, kernel_size=11, prob=1.0).set_random_state(5)
    out = to_numpy(t(img))
    assert out.dtype == np.uint8
    z = t.params.sections[0]
    ref = uniform_filter1d(
        img[0, z].astype(np.float64), 11, axis=-1 if t.params.horizontal else -2, mode="mirror"
    )
    assert np.abs(out[0, z].astype(np.float64) - ref).max() <= 0.5 + 1e-6


# ---------------------------------------------------------------- every input type gives the same result


@pytest.mark.parametrize("kind", ARRAY_TYPE_NAMES)
@pytest.mark.parametrize(
    "make",
    [
        lambda: RandMisAlignment(4, rotate_ratio=0.5, prob=1.0),
        lambda: RandMissingSection(2, prob=1.0),
        lambda: RandMissingParts(4, section_prob=0.7, prob=1.0),
        lambda: RandMotionBlur(2, 5, prob=1.0),
    ],
)
def test_same_seed_same_output_for_every_array_type(kind, make):
    img = np.random.default_rng(4).random((1, 6, 20, 20)).astype(np.float32)
    ref = to_numpy(make().set_random_state(7)(img))
    out = make().set_random_state(7)(as_type(img, kind))
    assert isinstance(out, torch.Tensor) and out.device == (
        as_type(img, kind).device if kind == "cuda" else out.device
    )
    assert np.allclose(to_numpy(out), ref, atol=1e-5)
