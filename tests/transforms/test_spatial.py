"""Geometric EM transforms: coordinate oracles (labels are their own source positions), margins, draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from monai_em.transforms.resample import identity_points, resample
from monai_em.transforms.spatial import (
    FlipParams,
    RandFlipTranspose,
    RandFlipTransposed,
    RandRescale,
    RandRescaled,
    RandRotateXY,
    RandRotateXYd,
    RandSectionElastic,
    RandSectionElasticd,
    RescaleParams,
    RotateParams,
)
from tests.utils import to_numpy

OFFSET = 2**40  # ids above 2**32 must survive every transform


def coordinate_data(shape=(5, 36, 44)):
    """image = the (z, y, x) position of every voxel (3 channels, linear in space); label = a unique
    id per voxel encoding the same position (int64, above 2**40). Any misalignment shows."""
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    image = np.stack([z, y, x]).astype(np.float32)
    label = (OFFSET + 1 + np.ravel_multi_index((z, y, x), shape))[None].astype(np.int64)
    return {"image": image, "label": label}


def decode(label: np.ndarray, shape) -> np.ndarray:
    """(3, ...) positions encoded in ``label`` (1, ...)."""
    return np.stack(np.unravel_index(label[0] - OFFSET - 1, shape)).astype(np.float32)


def assert_aligned(out: dict, shape, tol: float = 0.5 + 1e-3, radius: int = 2, min_fraction: float = 0.4):
    """Where the label is non-zero in a (2 radius + 1)^2 window of the section (away from zero fill),
    the linearly moved coordinates and the nearest-moved ids agree to within ``tol`` pixels."""
    label, image = to_numpy(out["label"]), to_numpy(out["image"])
    assert label.dtype == np.int64
    ids = np.unique(label)
    assert ids[0] == 0 or ids[0] > OFFSET, "labels may only hold prior ids or 0"
    assert ids[-1] <= OFFSET + np.prod(shape)
    size = (1, 1, 2 * radius + 1, 2 * radius + 1)
    core = ndimage.minimum_filter((label != 0).astype(np.uint8), size=size, mode="constant")[0].astype(bool)
    assert core.mean() >= min_fraction, f"only {core.mean():.2f} of the voxels could be checked"
    pos = decode(np.where(label == 0, OFFSET + 1, label), shape)
    err = np.abs(image - pos)[:, core]
    assert err[0].max() < 1e-3, "sections must move as a whole (z is never interpolated)"
    assert err[1:].max() <= tol, f"image and label disagree by up to {err[1:].max():.3f} px"


GEOMETRIC = {
    "rescale": lambda: RandRescaled(("image", "label"), prob=1.0, mode=("bilinear", "nearest")),
    "rescale_fixed": lambda: RandRescaled(
        ("image", "label"), fix_aspect=True, prob=1.0, mode=("bilinear", "nearest")
    ),
    "flip": lambda: RandFlipTransposed(("image", "label"), mode=("bilinear", "nearest")),
    "rot90": lambda: RandRotateXYd(("image", "label"), mode=("bilinear", "nearest")),
    "rotate": lambda: RandRotateXYd(("image", "label"), rot90=False, mode=("bilinear", "nearest")),
    "elastic": lambda: RandSectionElasticd(("image", "label"), prob=1.0, mode=("bilinear", "nearest")),
    "elastic_strong": lambda: RandSectionElasticd(
        ("image", "label"), alpha=200.0, sigma=6.0, prob=1.0, mode=("bilinear", "nearest")
    ),
}


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("shape", [(5, 36, 36), (4, 30, 46)])
def test_image_and_label_stay_aligned(name, shape):
    t = GEOMETRIC[name]()
    data = coordinate_data(shape)
    for seed in range(4):
        t.set_random_state(seed)
        out = t(data)
        assert tuple(out["image"].shape[1:]) == shape and out["label"].dtype == torch.int64
        min_fraction = 0.2 if name in ("rotate", "elastic_strong") else 0.4
        assert_aligned(out, shape, min_fraction=min_fraction)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_point_map_is_what_apply_does(name):
    """``source_points`` (the geometry kept for fusion) reproduces ``apply`` voxel for voxel on labels."""
    t = GEOMETRIC[name]().transform
    data = coordinate_data((4, 30, 30))
    for seed in range(3):
        t.set_random_state(seed)
        params = t.draw((4, 30, 30))
        z, yx = t.source_points(params, (4, 30, 30), *identity_points((4, 30, 30)))
        direct = to_numpy(t.apply(data["label"], params, "nearest"))
        np.testing.assert_array_equal(direct, to_numpy(resample(data["label"], z, yx, "nearest")))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint32, np.int64, np.uint64])
@pytest.mark.parametrize("name", ["rescale", "rotate", "elastic_strong", "flip"])
def test_label_ids_survive_in_their_dtype(name, dtype):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    ids = np.array([top, top - 1, top // 2 + 3, 1], dtype=dtype)  # 2**64-1 is not a float64 value
    label = ids[rng.integers(0, 4, (1, 3, 24, 24))]
    t = GEOMETRIC[name]().transform
    for seed in range(3):
        t.set_random_state(seed)
        out = t.apply(label, t.draw((3, 24, 24)), "nearest")
        assert out.dtype == torch.from_numpy(label).dtype
        values = set(np.unique(to_numpy(out)).tolist())
        assert values <= set(ids.tolist()) | {0}
        assert len(values - {0}) >= 3


def test_flip_covers_all_16_outcomes_exactly():
    t = RandFlipTranspose()
    t.set_random_state(0)
    img = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    seen = set()
    for _ in range(200):
        out = to_numpy(t(img))
        p = t.params
        ref = img
        for axis, on in ((1, p.flip_z), (2, p.flip_y), (3, p.flip_x)):
            ref = np.flip(ref, axis) if on else ref
        ref = np.swapaxes(ref, 2, 3) if p.transpose else ref
        np.testing.assert_array_equal(out, ref)
        seen.add((p.flip_z, p.flip_y, p.flip_x, p.transpose))
    assert len(seen) == 16


def test_flip_ztrans_and_shape_rules():
    t = RandFlipTranspose(do_ztrans=True)
    t.set_random_state(1)
    cube = np.arange(4 * 4 * 4, dtype=np.int32).reshape(1, 4, 4, 4)
    outcomes = {tuple(vars(t.draw((4, 4, 4))).values()) for _ in range(400)}
    assert len(outcomes) == 32
    np.testing.assert_array_equal(
        to_numpy(t.apply(cube, FlipParams(False, False, False, False, True), "nearest")),
        np.swapaxes(cube, 1, 3),
    )
    draws = [t.draw((3, 8, 10)) for _ in range(50)]  # non-square sections, Z != X: no transposes
    assert not any(p.transpose or p.ztrans for p in draws) and any(p.flip_y for p in draws)
    assert not any(t.draw((8, 8)).flip_z for _ in range(20))  # 2D: no z coin


def test_rot90_quarter_turns_and_angle_direction():
    t = RandRotateXY()
    t.set_random_state(0)
    img = np.random.default_rng(1).random((1, 2, 9, 9)).astype(np.float32)
    ks = set()
    for _ in range(40):
        out = to_numpy(t(img))
        ks.add(t.params.k)
        np.testing.assert_array_equal(out, np.rot90(img, t.params.k, axes=(2, 3)))
    assert ks == {0, 1, 2, 3}
    # an arbitrary angle of 90 / 270 degrees lands exactly where three / one quarter turns do
    for angle, k in ((90.0, 3), (270.0, 1)):
        np.testing.assert_allclose(
            to_numpy(t.apply(img, RotateParams(angle=angle), "bilinear")),
            np.rot90(img, k, axes=(2, 3)),
            atol=1e-5,
        )
    assert {t.draw((2, 8, 12)).k for _ in range(40)} == {0, 2}  # non-square keeps its shape


def test_arbitrary_rotation_on_non_square_sections():
    t = RandRotateXY(rot90=False)
    t.set_random_state(3)
    img = np.ones((1, 2, 20, 50), np.float32)
    out = to_numpy(t(img))
    assert out.shape == img.shape and 0.0 <= t.params.angle < 360.0
    assert out[0, :, 10, 25].min() > 0.99  # the centre stays inside; corners are zero filled
    assert np.isclose(to_numpy(t.apply(img, RotateParams(angle=45.0), "bilinear"))[0, 0, 0, 0], 0.0)


def test_rescale_windows():
    t = RandRescale()
    img = np.arange(40, dtype=np.int32)[None, None, None, :].repeat(40, 2)  # x coordinate per voxel
    same = t.apply(img, RescaleParams(start=(0, 0), length=(40, 40)), "nearest")
    np.testing.assert_array_equal(to_numpy(same), img)
    zoom_in = to_numpy(t.apply(img, RescaleParams(start=(0, 10), length=(40, 20)), "nearest"))
    np.testing.assert_array_equal(zoom_in[0, 0, 0], 10 + np.arange(40) // 2)  # each pixel twice
    zoom_out = to_numpy(t.apply(img + 1, RescaleParams(start=(0, -5), length=(40, 50)), "nearest"))
    row = zoom_out[0, 0, 0]
    assert (row[:4] == 0).all() and (row[-4:] == 0).all() and row[5] > 0 and (np.diff(row[5:-5]) >= 0).all()
    t.set_random_state(0)
    for _ in range(50):
        p = t.draw((3, 40, 40))
        for start, n in zip(p.start, p.length, strict=True):
            assert int(40 / 1.25) <= n <= int(40 / 0.8)
            assert (0 <= start <= 40 - n) if n <= 40 else start == -((n - 40) // 2)
    t = RandRescale(fix_aspect=True)
    t.set_random_state(0)
    assert all(len(set(t.draw((3, 40, 40)).length)) == 1 for _ in range(20))


def test_elastic_field_statistics():
    t = RandSectionElastic()
    t.set_random_state(0)
    field = t.draw((4, 160, 160)).field
    assert field.shape == (2, 160, 160)
    std = float(field.std())
    assert 0.4 < std < 1.1, std  # PyTC's formula: small displacements at alpha 16, sigma 4
    assert not torch.equal(field[0], field[1])
    t.set_random_state(0)
    assert torch.equal(t.draw((4, 160, 160)).field, field)
    none = RandSectionElastic(alpha=0.0)
    none.set_random_state(0)
    img = np.random.default_rng(0).random((1, 2, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(none.apply(img, none.draw((2, 16, 16)), "bilinear")), img, atol=1e-5)


def test_margins_follow_the_spec_table():
    assert RandRescale(low=0.8).margin().ratio == (1.0, 1.25, 1.25)
    assert RandRescale(low=1.0).margin().ratio == (1.0, 1.0, 1.0)
    assert RandRotateXY(rot90=False).margin().ratio == (1.0, 1.42, 1.42)
    assert RandRotateXY().margin().ratio == (1.0, 1.0, 1.0)
    assert RandSectionElastic(alpha=16).margin().add == (0, 17, 17)
    assert RandFlipTranspose().margin().add == (0, 0, 0)
    assert RandRotateXYd("image", rot90=False).margin().grow((8, 256, 256)) == (8, 364, 364)


def test_two_dimensional_inputs():
    img = coordinate_data((1, 30, 30))
    data = {"image": img["image"][1:, 0], "label": img["label"][:, 0]}
    for name in ("rescale", "rotate", "elastic", "flip", "rot90"):
        t = GEOMETRIC[name]()
        t.set_random_state(0)
        out = t(data)
        assert tuple(out["image"].shape) == (2, 30, 30) and tuple(out["label"].shape) == (1, 30, 30)


def test_bad_arguments_and_data():
    with pytest.raises(ValueError, match="mode must be one of"):
        RandRescale(mode="bicubic")
    with pytest.raises(ValueError, match="low <= high"):
        RandRescale(low=1.5, high=1.2)
    with pytest.raises(ValueError, match="alpha >= 0 and sigma > 0"):
        RandSectionElastic(sigma=0)
    with pytest.raises(ValueError, match="prob must be in"):
        RandRotateXY(prob=2.0)
    with pytest.raises(ValueError, match=r"channel-first .* got spatial shape \(5,\)"):
        RandRotateXY(prob=1.0)(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="mode has 1 entries for 2 keys"):
        RandRotateXYd(("image", "label"), mode=("bilinear",))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rescale_points_are_the_per_axis_formula_to_the_bit(dtype):
    """Positions feed label rounding: the rescale map is exactly ``start + (p + 0.5) * (length / size) - 0.5``
    per axis, in the points' dtype (a float64 map builds the tracked affine)."""
    g = torch.Generator().manual_seed(7)
    yx = (torch.rand((2, 9, 13), generator=g, dtype=dtype) * 40 - 5).permute(1, 2, 0)  # not contiguous
    z = torch.arange(3, dtype=dtype)
    params = RescaleParams((-4, 7), (37, 29))
    out_z, got = RandRescale.source_points(params, (3, 33, 31), z, yx)
    want = torch.stack(
        [
            params.start[a] + (yx[..., a] + 0.5) * (params.length[a] / size) - 0.5
            for a, size in enumerate((33, 31))
        ],
        -1,
    )
    assert out_z is z and got.dtype == dtype and torch.equal(got, want)
