"""Fast paths against slow, obviously-correct oracles: missing-parts band, mis-alignment rotation, grayscale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_cdt

from monai_em.transforms.resample import rotate_xy_map, shift_points
from monai_em.transforms.sections import _reflect_index, _reflect_pad, missing_parts_mask


def _band_oracle(shape, vertical, start, end, iterations):
    """The rasterised line (one pixel per step along it) dilated by a cross, via scipy's taxicab distance."""
    height, width = shape
    line = np.zeros(shape, dtype=bool)
    length = height if vertical else width
    steps = np.arange(length)
    across = np.rint(start + (end - start) * steps / max(length - 1, 1)).astype(int)
    if vertical:
        line[steps, np.clip(across, 0, width - 1)] = True
    else:
        line[np.clip(across, 0, height - 1), steps] = True
    return distance_transform_cdt(~line, metric="taxicab") <= iterations


@pytest.mark.parametrize("shape", [(40, 40), (17, 60), (60, 13), (1, 9)])
def test_missing_parts_band_matches_the_dilated_line(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(25):
        vertical = bool(rng.random() < 0.5)
        across = shape[1] if vertical else shape[0]
        start, end = (int(v) for v in rng.integers(0, across, size=2))
        iterations = int(rng.integers(0, 12))
        expected = _band_oracle(shape, vertical, start, end, iterations)
        got = missing_parts_mask(shape, vertical, start, end, iterations).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{shape} {vertical} {start} {end} {iterations}")


def _rotate_oracle(img: np.ndarray, angle: float, nearest: bool) -> np.ndarray:
    """Inverse-rotate every output pixel; bilinear from the four neighbours (zero outside) or nearest."""
    height, width = img.shape[-2:]
    t = math.radians(angle)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    out = np.zeros(img.shape, np.float64)
    for y in range(height):
        for x in range(width):
            sy = cy + (y - cy) * math.cos(t) - (x - cx) * math.sin(t)
            sx = cx + (y - cy) * math.sin(t) + (x - cx) * math.cos(t)
            if nearest:
                iy, ix = round(sy), round(sx)
                if 0 <= iy < height and 0 <= ix < width:
                    out[..., y, x] = img[..., iy, ix]
                continue
            y0, x0 = math.floor(sy), math.floor(sx)
            for py in (y0, y0 + 1):
                for px in (x0, x0 + 1):
                    if 0 <= py < height and 0 <= px < width:
                        out[..., y, x] += img[..., py, px] * (1 - abs(sy - py)) * (1 - abs(sx - px))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 9, 12), (1, 1, 11, 7)])
def test_section_rotation_matches_the_inverse_map(shape):
    from monai_em.transforms.resample import rotate_xy

    rng = np.random.default_rng(1)
    img = rng.random(shape).astype(np.float32)
    label = rng.integers(2**40, 2**40 + 5, size=shape)
    for angle in (7.5, -31.0, 200.0):
        got = rotate_xy(torch.from_numpy(img), angle, "bilinear").numpy()
        np.testing.assert_allclose(got, _rotate_oracle(img, angle, False), atol=1e-5)
        moved = rotate_xy(torch.from_numpy(label), angle, "nearest")
        assert moved.dtype == torch.int64
        np.testing.assert_array_equal(moved.numpy(), _rotate_oracle(label, angle, True).astype(np.int64))


def test_elastic_field_region_is_the_slice_of_the_whole_field():
    from monai_em.transforms.resample import sample_linear
    from monai_em.transforms.spatial import ElasticParams, RandSectionElastic

    t = RandSectionElastic(alpha=16.0, sigma=4.0, prob=1.0).set_random_state(4)
    params = t.draw((3, 150, 170))
    fresh = ElasticParams(params.noise, params.sigma, params.alpha)  # nothing cached yet
    field = params.field
    for rows, cols in (
        ((0, 150), (0, 170)),
        ((40, 97), (3, 170)),
        ((149, 150), (0, 1)),
        ((10, 20), (60, 61)),
    ):
        region = fresh.field_region(rows, cols)
        np.testing.assert_allclose(region, field[:, rows[0] : rows[1], cols[0] : cols[1]], atol=1e-6)
    # points that only read part of the field give the same displacement as sampling the whole field
    yx = torch.stack(torch.meshgrid(torch.arange(30.0), torch.arange(40.0), indexing="ij"), -1) * 0.7 + 55.3
    _, got = RandSectionElastic.source_points(fresh, (3, 150, 170), None, yx)
    expected = yx + sample_linear(field[None], yx).permute(1, 2, 0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    yx[0, 0] = torch.tensor([-300.0, 500.0])  # a point far outside: zero displacement there
    _, got = RandSectionElastic.source_points(fresh, (3, 150, 170), None, yx)
    assert torch.equal(got[0, 0], yx[0, 0])


def test_augmentor_keeps_metadata_and_fused_tracking_matches_one_by_one():
    from monai.data import MetaTensor
    from monai.data.meta_obj import get_track_meta

    from monai_em.data.synthetic import make_em_volume
    from monai_em.transforms.compose import EMAugmentor

    fused = EMAugmentor.from_targets((4, 24, 24), {"image": "img", "label": "mask"})
    serial = EMAugmentor.from_targets((4, 24, 24), {"image": "img", "label": "mask"}, fuse=False)
    em = make_em_volume(fused.sample_size, seed=2)
    plain = {
        "image": torch.from_numpy(em.image[None] / 255.0).float(),
        "label": torch.from_numpy(em.label[None]),
    }
    affine = torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))
    meta = {k: MetaTensor(v, affine=affine, meta={"filename_or_obj": "x.h5"}) for k, v in plain.items()}
    meta["note"] = "kept"
    for seed in range(4):
        out_plain = fused.set_random_state(seed)(plain)
        out_meta = fused.set_random_state(seed)(meta)
        out_serial = serial.set_random_state(seed)(meta)
        assert get_track_meta()
        assert out_meta["note"] == "kept"
        for key in plain:
            assert isinstance(out_meta[key], MetaTensor)
            assert out_meta[key].meta["filename_or_obj"] == "x.h5"
            assert torch.equal(out_meta[key].as_tensor(), torch.as_tensor(out_plain[key]))
            # the fused run records the same operations and the same affine as running them one by one
            torch.testing.assert_close(out_meta[key].affine, out_serial[key].affine)
            names = [op["class"] for op in out_meta[key].applied_operations]
            assert names == [op["class"] for op in out_serial[key].applied_operations]
            fused_run = [
                "RandSectionElasticd",
                "RandFlipTransposed",
                "RandRescaled",
                "RandRotateXYd",
                "_CentreCrop",
            ]
            assert names[-5:] == fused_run


def _windowed_pipelines(spatial_prob: float):
    from monai_em.transforms import intensity, sections, spatial

    keys, modes = ("image", "label"), ("bilinear", "nearest")

    def build():
        return [
            sections.RandMissingPartsd("image", iterations=5, section_prob=0.7, prob=1.0),
            intensity.RandGrayscaled("image", mode="mix", prob=1.0),
            spatial.RandSectionElasticd(keys, alpha=4.0, prob=spatial_prob, mode=modes),
            spatial.RandFlipTransposed(keys, prob=spatial_prob, mode=modes),
            spatial.RandRescaled(keys, prob=spatial_prob, mode=modes),
            spatial.RandRotateXYd(keys, rot90=False, prob=spatial_prob, mode=modes),
        ]

    return build(), build()


@pytest.mark.parametrize("spatial_prob", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("size", [(3, 20, 20), (20, 20)])
def test_image_transforms_before_a_fused_run_touch_only_its_window(spatial_prob, size):
    """Missing parts + grayscale applied inside the window a fused run reads == applied to everything first."""
    from monai_em.transforms.compose import EMAugmentor

    rng = np.random.default_rng(0)
    for seed in range(8):
        deferred, sequential = _windowed_pipelines(spatial_prob)
        aug, tail = EMAugmentor(deferred, size), EMAugmentor(sequential[2:], size)
        for n, (a, b) in enumerate(zip(deferred, sequential, strict=True)):  # after Compose's own seeding
            a.set_random_state(seed * 10 + n)
            b.set_random_state(seed * 10 + n)
        shape = aug.sample_size
        data = {
            "image": torch.from_numpy(rng.random((1, *shape), dtype=np.float32)),
            "label": torch.from_numpy(rng.integers(0, 2**40, size=(1, *shape))),
        }
        out = aug(data)
        expected = dict(data)
        for t in sequential[:2]:
            expected = t(expected)
        expected = tail(expected)
        np.testing.assert_allclose(out["image"].numpy(), expected["image"].numpy(), atol=1e-5)
        np.testing.assert_array_equal(out["label"].numpy(), expected["label"].numpy())


@pytest.mark.parametrize("shape", [(5, 7, 2), (3, 4, 6, 2), (0, 3, 2), (4, 0, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shift_points_equals_the_broadcast_subtraction(shape, dtype):
    g = torch.Generator().manual_seed(len(shape))
    yx = (torch.rand(shape, generator=g, dtype=dtype) * 300 - 20).mT.contiguous().mT  # not contiguous
    got = shift_points(yx, 17, -3)
    want = yx - torch.tensor([17.0, -3.0], dtype=dtype)
    assert got.shape == yx.shape and got.dtype == dtype
    assert torch.equal(got, want)
    assert yx.numel() == 0 or got.data_ptr() != yx.data_ptr()  # a new tensor: the input is not moved


@pytest.mark.parametrize("angle", [3.7, -41.0, 90.0, 187.5])
@pytest.mark.parametrize("cut", [None, ((3, 17), (5, 30))])
def test_rotate_xy_map_keeps_its_float32_order(angle, cut):
    """Mis-alignment and copy-paste labels are pinned to ``(dy cos - dx sin) + cy`` and ``(dy sin + dx cos) + cx``
    in float32: the map must hold exactly those numbers (rounded for nearest)."""
    (r0, r1), (c0, c1) = cut or ((0, 21), (0, 34))
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    dy = torch.arange(r0, r1, dtype=torch.float32).sub_(10.0)[:, None]
    dx = torch.arange(c0, c1, dtype=torch.float32).sub_(16.5)[None, :]
    want = torch.stack((dy * cos - dx * sin + 10.0, dy * sin + dx * cos + 16.5), -1)
    rows, cols = (None, None) if cut is None else cut
    assert torch.equal(rotate_xy_map((21, 34), angle, "bilinear", rows, cols), want)
    assert torch.equal(rotate_xy_map((21, 34), angle, "nearest", rows, cols), want.round())


@pytest.mark.parametrize("length", [1, 2, 4, 5, 9])
@pytest.mark.parametrize("dim", [-1, -2])
def test_motion_blur_reflect_pad_is_the_mirrored_indices(length, dim):
    """One mirror (torch's reflect pad) and wider pads (the indices) both read cv2's mirrored pixels."""
    g = torch.Generator().manual_seed(length)
    x = torch.rand((2, 1, length, 7) if dim == -2 else (2, 1, 7, length), generator=g)
    for before, after in ((0, 0), (2, 2), (5, 5), (4, 3), (0, 6)):
        want = x.index_select(dim, _reflect_index(length, before, after, x.device))
        assert torch.equal(_reflect_pad(x, dim, before, after), want), (before, after)
