"""Grayscale, CutBlur and CutNoise against the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_em.transforms.intensity import (
    CutBlurParams,
    GrayscaleParams,
    RandCutBlur,
    RandCutBlurd,
    RandCutNoise,
    RandCutNoised,
    RandGrayscale,
    RandGrayscaled,
)
from tests.utils import ARRAY_TYPE_NAMES, as_type, to_numpy


def pytc_grayscale(x: np.ndarray, r, contrast=0.3, brightness=0.3) -> np.ndarray:
    """The spec's formula for one draw (r0, r1, r2)."""
    x = x * (1 + (r[0] - 0.5) * contrast) + (r[1] - 0.5) * brightness
    return np.clip(x, 0, 1) ** (2.0 ** (2 * r[2] - 1))


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Bounding box (per spatial axis) of the voxels that changed in any channel."""
    idx = np.nonzero((before != after).any(0))
    return tuple((int(i.min()), int(i.max()) + 1) for i in idx)


# ---------------------------------------------------------------- grayscale


def test_grayscale_formula_3d_and_2d():
    x = np.linspace(0, 1, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    r = (0.9, 0.2, 0.7)
    out = to_numpy(RandGrayscale().apply(x, GrayscaleParams("3D", (r,), False, 0.3, 0.3), "bilinear"))
    assert np.allclose(out, pytc_grayscale(x, r))
    rs = ((0.1, 0.9, 0.3), (0.5, 0.5, 0.5), (0.8, 0.0, 1.0))
    out = to_numpy(RandGrayscale().apply(x, GrayscaleParams("2D", rs, False, 0.3, 0.3), "bilinear"))
    for z in range(3):
        assert np.allclose(out[:, z], pytc_grayscale(x[:, z], rs[z]))
    inv = to_numpy(RandGrayscale().apply(x, GrayscaleParams("2D", rs, True, 0.3, 0.3), "bilinear"))
    assert np.allclose(inv, 1 - out)


def test_grayscale_mix_gives_both_2d_and_3d():
    # identical sections: a 3D draw keeps them identical, a 2D draw makes them differ
    x = np.tile(np.linspace(0.05, 0.95, 64).reshape(1, 1, 8, 8), (1, 4, 1, 1)).astype(np.float32)
    kinds = []
    for seed in range(40):
        t = RandGrayscale(mode="mix", prob=1.0).set_random_state(seed)
        out = to_numpy(t(x))
        same = all(np.allclose(out[0, z], out[0, 0]) for z in range(4))
        assert same == (t.params.mode == "3D")
        assert out.min() >= 0 and out.max() <= 1
        kinds.append(same)
    assert 8 < sum(kinds) < 32  # both kinds, roughly half each
    for seed in range(10):
        out = to_numpy(RandGrayscale(mode="3D", prob=1.0).set_random_state(seed)(x))
        assert all(np.allclose(out[0, z], out[0, 0]) for z in range(4))


def test_grayscale_invert_and_uint8(fib25):
    img = fib25[0][None, :3, :32, :32]
    t = RandGrayscaled("image", mode="3D", prob=1.0).set_random_state(0)
    out = to_numpy(t({"image": img})["image"])
    assert out.dtype == np.uint8  # integer images are scaled by the dtype max and come back in their dtype
    expect = np.rint(pytc_grayscale(img / 255.0, t.params.factors[0]) * 255)
    assert np.abs(out.astype(float) - expect).max() <= 1
    inverted = RandGrayscale(mode="3D", invert=True, invert_p=1.0, prob=1.0).set_random_state(0)
    plain = RandGrayscale(mode="3D", invert=True, invert_p=0.0, prob=1.0).set_random_state(0)
    x = img / 255.0
    assert np.allclose(to_numpy(inverted(x)), 1 - to_numpy(plain(x)), atol=1e-6)
    with pytest.raises(ValueError, match="mode must be"):
        RandGrayscale(mode="4D")
    with pytest.raises(TypeError, match="bool"):
        RandGrayscale(prob=1.0)(np.zeros((1, 2, 4, 4), bool))


# ---------------------------------------------------------------- cut blur


def test_cutblur_changes_only_one_cuboid_of_the_spec_size():
    x = np.random.default_rng(0).random((2, 8, 40, 48)).astype(np.float32)
    for seed in range(6):
        t = RandCutBlur(length_ratio=0.5, down_ratio_min=2, down_ratio_max=4, prob=1.0).set_random_state(seed)
        out = to_numpy(t(x))
        box = changed_box(x, out)
        assert [b - a for a, b in box] == [4, 20, 24]
        assert box == t.params.box


def test_cutblur_cuboid_is_block_mean_then_nearest():
    x = np.random.default_rng(1).random((1, 4, 16, 16))
    box = ((0, 4), (4, 12), (0, 16))
    out = to_numpy(RandCutBlur().apply(x, CutBlurParams(box, (1.0, 4.0, 4.0)), "bilinear"))
    cut = x[0, :, 4:12, :]
    blocks = cut.reshape(4, 2, 4, 4, 4).mean(axis=(2, 4))  # 4x4 area mean in y, x; z untouched
    assert np.allclose(out[0, :, 4:12, :], np.repeat(np.repeat(blocks, 4, 1), 4, 2))
    out_z = to_numpy(RandCutBlur().apply(x, CutBlurParams(box, (2.0, 4.0, 4.0)), "bilinear"))
    blocks_z = cut.reshape(2, 2, 2, 4, 4, 4).mean(axis=(1, 3, 5))
    assert np.allclose(out_z[0, :, 4:12, :], np.repeat(np.repeat(np.repeat(blocks_z, 2, 0), 4, 1), 4, 2))


def test_cutblur_single_section_spans_z_and_downsample_z_flag():
    x = np.random.default_rng(2).random((1, 1, 32, 32)).astype(np.float32)
    t = RandCutBlur(length_ratio=0.25, downsample_z=True, prob=1.0).set_random_state(0)
    out = to_numpy(t(x))
    assert t.params.box[0] == (0, 1) and t.params.factors[0] == 1.0
    assert [b - a for a, b in changed_box(x, out)][1:] == [8, 8]
    two_d = to_numpy(RandCutBlur(length_ratio=0.25, prob=1.0).set_random_state(0)(x[:, 0]))
    assert two_d.shape == (1, 32, 32) and np.array_equal(two_d, out[:, 0])
    t3 = RandCutBlur(length_ratio=0.5, downsample_z=True, prob=1.0).set_random_state(0)
    t3(np.zeros((1, 8, 8, 8), np.float32))
    assert t3.params.factors[0] == t3.params.factors[1] > 1


def test_cutblur_uint8_fib25_two_keys_same_cuboid(fib25):
    img = fib25[0][None, :4, :64, :64]
    t = RandCutBlurd(["a", "b"], length_ratio=0.4, down_ratio_min=4, down_ratio_max=8, prob=1.0)
    out = t.set_random_state(1)({"a": img, "b": img.copy()})
    a, b = to_numpy(out["a"]), to_numpy(out["b"])
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    (z0, z1), (y0, y1), (x0, x1) = t.params.box
    outside = np.ones(img.shape, bool)
    outside[:, z0:z1, y0:y1, x0:x1] = False
    assert np.array_equal(a[outside], img[outside]) and not np.array_equal(a, img)


# ---------------------------------------------------------------- cut noise


def test_cutnoise_only_in_cuboid_bounded_and_clipped():
    x = np.full((1, 6, 40, 40), 0.5, np.float32)
    t = RandCutNoise(length_ratio=0.5, scale=0.3, prob=1.0).set_random_state(0)
    out = to_numpy(t(x))
    assert [b - a for a, b in changed_box(x, out)] == [3, 20, 20]
    inside = out[(x != out)]
    assert np.all(np.abs(inside - 0.5) <= 0.3 + 1e-6)
    assert abs(inside.std() - 0.3 / np.sqrt(3)) < 0.02  # U(-s, s) has std s / sqrt(3)
    zeros = to_numpy(
        RandCutNoise(length_ratio=0.5, scale=0.3, prob=1.0).set_random_state(0)(np.zeros_like(x))
    )
    assert zeros.min() == 0 and zeros.max() <= 0.3 + 1e-6  # clipped to [0, 1]
    (z0, z1), (y0, y1), (x0, x1) = t.params.box
    assert 0.4 < np.mean(zeros[:, z0:z1, y0:y1, x0:x1] == 0) < 0.6  # negative half of the noise clipped to 0


def test_cutnoise_same_draw_for_every_key_and_uint8_fib25(fib25):
    img = fib25[0][None, :4, :48, :48]
    t = RandCutNoised(["a", "b"], length_ratio=0.5, scale=0.3, prob=1.0).set_random_state(2)
    out = t({"a": img, "b": img.copy()})
    a, b = to_numpy(out["a"]), to_numpy(out["b"])
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    (z0, z1), (y0, y1), (x0, x1) = t.params.box
    outside = np.ones(img.shape, bool)
    outside[:, z0:z1, y0:y1, x0:x1] = False
    assert np.array_equal(a[outside], img[outside])
    diff = a.astype(int) - img.astype(int)
    assert np.abs(diff).max() <= round(0.3 * 255) and (diff != 0).mean() > 0.05
    with pytest.raises(ValueError, match="length_ratio"):
        RandCutNoise(length_ratio=0.0)


# ---------------------------------------------------------------- every input type gives the same result


@pytest.mark.parametrize("kind", ARRAY_TYPE_NAMES)
@pytest.mark.parametrize(
    "make",
    [
        lambda: RandGrayscale(prob=1.0),
        lambda: RandCutBlur(length_ratio=0.5, prob=1.0),
        lambda: RandCutNoise(length_ratio=0.5, prob=1.0),
    ],
)
def test_same_seed_same_output_for_every_array_type(kind, make):
    img = np.random.default_rng(4).random((1, 4, 16, 16)).astype(np.float32)
    ref = to_numpy(make().set_random_state(7)(img))
    out = make().set_random_state(7)(as_type(img, kind))
    assert isinstance(out, torch.Tensor)
    if kind == "cuda" and isinstance(make(), RandCutNoise):
        return  # the noise field comes from a CUDA generator: same distribution, different numbers
    assert np.allclose(to_numpy(out), ref, atol=1e-5)
