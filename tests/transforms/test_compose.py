"""EMAugmentor: sample-size planning, crop, fusion, alignment through the full default pipeline, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, OneOf
from monai.utils import set_determinism
from scipy import ndimage

from monai_em.transforms.compose import (
    EMAugmentor,
    default_em_transforms,
    plan_sample_size,
    smooth_label_edges,
)
from monai_em.transforms.spatial import RandRotateXYd, RandSectionElasticd
from tests.transforms.test_spatial import OFFSET, assert_aligned, coordinate_data
from tests.utils import to_numpy

IMAGE_ONLY = ("grayscale", "missingparts", "motionblur", "cutblur", "cutnoise")


@pytest.mark.parametrize(
    "input_size, arbitrary, expected",
    [
        ((8, 256, 256), False, (10, 370, 370)),
        ((17, 129, 129), False, (19, 212, 212)),
        ((9, 65, 65), False, (11, 132, 132)),
        ((8, 256, 256), True, (10, 505, 505)),
    ],
)
def test_sample_size_check_values(input_size, arbitrary, expected):
    aug = EMAugmentor.from_targets(input_size, rotate={"rot90": not arbitrary})
    assert aug.sample_size == expected


def test_planner_walks_from_last_to_first_and_into_monai_wrappers():
    rot = RandRotateXYd("image", rot90=False)
    elastic = RandSectionElasticd("image")
    # order matters: (256 * 1.42 -> 364) + 34 = 398, but (256 + 34) * 1.42 -> 412
    assert plan_sample_size([elastic, rot], (4, 256, 256)) == (4, 398, 398)
    assert plan_sample_size([rot, elastic], (4, 256, 256)) == (4, 412, 412)
    assert plan_sample_size([Compose([rot, elastic])], (4, 256, 256)) == (4, 412, 412)
    assert plan_sample_size([OneOf([rot, elastic])], (4, 256, 256)) == (4, 364, 364)
    assert plan_sample_size([rot, elastic], (256, 256)) == (412, 412)  # 2D input sizes


def test_default_list_order_keys_and_switches():
    targets = {"image": "img", "label": "mask", "valid_mask": "mask"}
    ts = default_em_transforms(targets)
    names = [type(t).__name__ for t in ts]
    assert names == [
        "RandCutNoised",
        "RandCutBlurd",
        "RandMotionBlurd",
        "RandMisAlignmentd",
        "RandMissingSectiond",
        "RandMissingPartsd",
        "RandGrayscaled",
        "RandSectionElasticd",
        "RandFlipTransposed",
        "RandRescaled",
        "RandRotateXYd",
    ]
    for t in ts:
        if type(t).__name__ in (
            "RandCutNoised",
            "RandCutBlurd",
            "RandMotionBlurd",
            "RandMissingPartsd",
            "RandGrayscaled",
        ):
            assert t.keys == ("image",)
        else:
            assert t.keys == ("image", "label", "valid_mask") and t.mode == ("bilinear", "nearest", "nearest")
    assert [t.prob for t in ts] == [0.75, 0.5, 0.5, 0.5, 0.5, 0.9, 0.75, 0.75, 1.0, 0.5, 1.0]
    two_d = [type(t).__name__ for t in default_em_transforms(targets, do_2d=True)]
    assert "RandMisAlignmentd" not in two_d and "RandMissingSectiond" not in two_d and len(two_d) == 9
    fewer = default_em_transforms(targets, enabled={"MISSINGPARTS": False}, disabled=["cut_blur"])
    assert len(fewer) == 9
    skipped = default_em_transforms(targets, skip={"elastic": ["valid_mask"]}, rotate={"rot90": False})
    elastic = next(t for t in skipped if isinstance(t, RandSectionElasticd))
    assert elastic.keys == ("image", "label") and elastic.mode == ("bilinear", "nearest")
    assert skipped[-1].transform.rot90 is False
    with pytest.raises(ValueError, match="unknown augmentation 'twirl'"):
        default_em_transforms(targets, disabled=["twirl"])
    with pytest.raises(ValueError, match="target types must be 'img' or 'mask'"):
        default_em_transforms({"image": "picture"})


def test_centre_crop_margin_and_errors():
    aug = EMAugmentor([], (4, 10, 12))
    vol = np.arange(7 * 15 * 17).reshape(1, 7, 15, 17)
    out = aug({"image": vol, "name": "kept"})
    np.testing.assert_array_equal(to_numpy(out["image"]), vol[:, 1:5, 2:12, 2:14])  # (S - I) // 2
    assert out["name"] == "kept"
    with pytest.raises(
        ValueError, match=r"key 'image': spatial shape \(7, 15, 17\) is smaller than input_size"
    ):
        EMAugmentor([], (8, 10, 12))({"image": vol})
    with pytest.raises(ValueError, match="input_size must be 2 or 3 positive ints"):
        EMAugmentor([], (0, 4, 4))


def _pipeline_data(shape, seed=0):
    data = coordinate_data(shape)
    rng = np.random.default_rng(seed)
    valid = np.ones((1, *shape), np.uint8)
    valid[:, :, : shape[1] // 5] = 0
    return {
        "image": rng.random((1, *shape)).astype(np.float32),
        "coord": data["image"],
        "label": data["label"],
        "valid_mask": valid,
    }


@pytest.mark.parametrize("fuse", [True, False])
def test_full_default_pipeline_keeps_labels_aligned(fuse):
    """Every default transform on: a coordinate image that skips the intensity transforms must still
    be explained by the label ids (positions) after the whole pipeline."""
    targets = {"image": "img", "coord": "img", "label": "mask", "valid_mask": "mask"}
    skip = {name: ["coord"] for name in IMAGE_ONLY}
    always = {name: {"prob": 1.0} for name in ("rescale", "elastic", "missingsection", "misalignment")}
    aug = EMAugmentor.from_targets((6, 40, 40), targets, skip=skip, fuse=fuse, **always)
    shape = aug.sample_size
    assert shape == (8, 100, 100)
    data = _pipeline_data(shape)
    for seed in range(6):
        aug.set_random_state(seed)
        out = aug(data)
        assert all(tuple(v.shape[1:]) == (6, 40, 40) for k, v in out.items())
        assert set(np.unique(to_numpy(out["valid_mask"])).tolist()) <= {0, 1}
        assert out["label"].dtype == torch.int64 and out["valid_mask"].dtype == torch.uint8
        checked = {"image": out["coord"], "label": out["label"]}
        # sections lost or moved by mis-alignment shift z; chained nearest moves add up to ~1 px
        pos_z = np.stack(np.unravel_index(to_numpy(out["label"])[0] - OFFSET - 1, shape))[0]
        assert np.abs(to_numpy(out["coord"])[0] - pos_z).max() < 1e-3
        assert_aligned(checked, shape, tol=1.5, min_fraction=0.5)
        lab = to_numpy(out["label"])
        err = np.abs(to_numpy(out["coord"])[1:] - np.stack(np.unravel_index(lab[0] - OFFSET - 1, shape))[1:])
        assert np.median(err) <= 0.5


def test_fused_and_sequential_runs_agree():
    ts = default_em_transforms({"image": "img", "label": "mask"}, disabled=IMAGE_ONLY)
    for t in ts:
        t.prob = 1.0
    fused, plain = EMAugmentor(ts, (4, 40, 40)), EMAugmentor(ts, (4, 40, 40), fuse=False)
    shape = fused.sample_size
    data = coordinate_data(shape)
    for seed in range(4):
        out_f = fused.set_random_state(seed)(data)
        out_p = plain.set_random_state(seed)(data)
        lf, lp = to_numpy(out_f["label"]), to_numpy(out_p["label"])
        pf, pp = (np.stack(np.unravel_index(x[0] - OFFSET - 1, shape)) for x in (lf, lp))
        # same draws, same geometry: chained nearest rounding may pick a neighbouring voxel
        assert np.abs(pf - pp).max() <= 2 and np.abs(pf - pp).mean() < 0.6
        assert np.abs(to_numpy(out_f["image"]) - to_numpy(out_p["image"])).mean() < 0.3


def test_same_seed_same_output_and_random_state_reaches_every_transform():
    aug = EMAugmentor.from_targets((4, 32, 32), {"image": "img", "label": "mask"})
    data = _pipeline_data(aug.sample_size)
    data = {k: data[k] for k in ("image", "label")}
    a = aug.set_random_state(7)(data)
    b = aug.set_random_state(7)(data)
    for key in a:
        np.testing.assert_array_equal(to_numpy(a[key]), to_numpy(b[key]))
    aug.set_random_state(7)
    states = [t.R.get_state()[1][:4].tolist() for t in aug.augmentations]
    assert len({tuple(s) for s in states}) == len(states)  # every transform reseeded, differently
    assert all(t.transform.R is t.R for t in aug.augmentations)  # the array core shares the stream
    outs = [to_numpy(aug.set_random_state(s)(data)["image"]) for s in (1, 2, 3)]
    assert not np.array_equal(outs[0], outs[1]) or not np.array_equal(outs[1], outs[2])


def _loader_draws(num_workers: int, seed: int | None):
    aug = EMAugmentor.from_targets((4, 24, 24), {"image": "img"})
    item = {"image": np.random.default_rng(0).random((1, *aug.sample_size)).astype(np.float32)}
    if seed is not None:
        set_determinism(seed)
    loader = DataLoader(Dataset([item] * 4, transform=aug), batch_size=1, num_workers=num_workers)
    out = [to_numpy(batch["image"]) for batch in loader]
    set_determinism(None)
    return out


def test_dataloader_workers_draw_differently_and_seed_reproduces():
    first = _loader_draws(2, seed=3)
    # items 0 and 1 come from different workers: identical items must not get identical draws
    assert not np.array_equal(first[0], first[1])
    again = _loader_draws(2, seed=3)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


def _naive_smooth(label: np.ndarray) -> np.ndarray:
    """PyTC's smoothing, literally: every section, every id, full-section filters."""
    out = label.copy()
    for sec in out.reshape(-1, *out.shape[-2:]):
        for idx in np.unique(sec):
            if idx == 0:
                continue
            binary = sec == idx
            for _ in range(2):
                binary = ndimage.gaussian_filter(binary.astype(np.float32), 2.0, mode="nearest") > 0.5
            sec[sec == idx] = 0
            sec[binary] = idx
    return out


def test_label_smoothing_matches_the_per_section_definition():
    rng = np.random.default_rng(0)
    seeds = rng.integers(1, 9, (2, 48, 40))
    blocks = np.kron(seeds[:, ::4, ::4], np.ones((1, 4, 4), np.int64))[None]
    label = blocks + (2**40) * (blocks > 0)
    noisy = label.copy()
    noisy[rng.random(label.shape) < 0.05] = 3  # speckles the smoothing removes
    out = to_numpy(smooth_label_edges(noisy))
    np.testing.assert_array_equal(out, _naive_smooth(noisy))
    assert (out != noisy).any() and out.dtype == np.int64
    aug = EMAugmentor([], (2, 40, 32), smooth_labels=True)
    res = aug({"label": noisy, "valid_mask": (noisy > 0).astype(np.uint8)})
    np.testing.assert_array_equal(to_numpy(res["label"]), _naive_smooth(noisy[:, :, 4:44, 4:36]))
    np.testing.assert_array_equal(to_numpy(res["valid_mask"]), (noisy > 0)[:, :, 4:44, 4:36])


def test_len_and_bool_keep_a_seeded_pipeline_s_draws():
    """MONAI's Compose.__len__ flattens into a new Compose, which reseeds every member: len() or bool()
    of a seeded augmentor or training transform must not change what it draws."""
    from monai.transforms import Lambdad

    from monai_em.transforms.compose import flat_length
    from monai_em.transforms.pipeline import train_transform

    aug = EMAugmentor.from_targets((4, 32, 32), {"image": "img", "label": "mask"})
    pipeline = train_transform((4, 32, 32), ["image", "label"], crop={"size_thres": 0})
    rng = np.random.default_rng(0)
    sample = {
        "image": torch.from_numpy(rng.random((1, *aug.sample_size), dtype=np.float32)),
        "label": torch.from_numpy(rng.integers(0, 9, (1, *aug.sample_size))),
    }
    for transform in (aug, pipeline):
        transform.set_random_state(3)
        first = transform(dict(sample))
        transform.set_random_state(3)
        assert len(transform) > 0 and bool(transform)
        second = transform(dict(sample))
        first, second = (x[0] if isinstance(x, list) else x for x in (first, second))
        torch.testing.assert_close(first["image"], second["image"], rtol=0, atol=0)
    nested = Compose([Lambdad("image", abs), Compose([Lambdad("image", abs), Lambdad("image", abs)]), aug])
    assert flat_length(nested) == len(nested) == 4


def test_one_section_input_gets_the_2d_list_and_every_draw_runs():
    """(1, Y, X): missing sections and mis-alignment would need several sections (they raised on most
    draws); the default list leaves them out, as for 2D, unless do_2d is given."""
    aug = EMAugmentor.from_targets((1, 32, 32), {"image": "img", "label": "mask"})
    names = {type(t).__name__ for t in aug.augmentations}
    assert not names & {"RandMissingSectiond", "RandMisAlignmentd"} and "RandSectionElasticd" in names
    kept = EMAugmentor.from_targets((1, 32, 32), {"image": "img", "label": "mask"}, do_2d=False)
    assert "RandMissingSectiond" in {type(t).__name__ for t in kept.augmentations}
    rng = np.random.default_rng(0)
    sample = {
        "image": torch.from_numpy(rng.random((1, *aug.sample_size), dtype=np.float32)),
        "label": torch.from_numpy(rng.integers(0, 9, (1, *aug.sample_size))),
    }
    for seed in range(20):
        out = aug.set_random_state(seed)(dict(sample))
        assert out["image"].shape == out["label"].shape == (1, 1, 32, 32)
