"""RandRejectionCropd: foreground / valid-mask rejection, its statistics, metadata, bad input, long axes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandFlipd
from numpy.lib.stride_tricks import sliding_window_view

from monai_em.transforms.sampling import Measure, RandRejectionCropd, RejectionSampler
from tests.utils import ARRAY_TYPE_NAMES, as_type, same_container, to_numpy

CROP = (4, 16, 16)
TEST = (2, 8, 8)
OFF = np.array([1, 4, 4])  # TEST centred inside CROP: (CROP - TEST) // 2, as EMAugmentor crops


def blobs(shape=(8, 48, 48), n=4, seed=0) -> np.ndarray:
    """(1, *shape) int32 label with ``n`` small cubes of distinct ids on a zero background."""
    rng = np.random.default_rng(seed)
    label = np.zeros((1, *shape), np.int32)
    for i in range(1, n + 1):
        z, y, x = (rng.integers(0, s - 3) for s in shape)
        label[0, z : z + 3, y : y + 4, x : x + 4] = i
    return label


def coords_image(shape) -> np.ndarray:
    """(1, *shape) int64 image whose value encodes its own (z, y, x): any misplaced crop shows."""
    z, y, x = np.indices(shape, dtype=np.int64)
    return (z * 1_000_000 + y * 1_000 + x)[None]


def region_counts(mask: np.ndarray) -> np.ndarray:
    """Brute-force non-zero count of the tested region for every crop start (independent oracle)."""
    region = sliding_window_view(mask != 0, TEST)
    counts = region.sum(axis=(-3, -2, -1))
    n = [L - c + 1 for L, c in zip(mask.shape, CROP, strict=True)]
    return counts[OFF[0] : OFF[0] + n[0], OFF[1] : OFF[1] + n[1], OFF[2] : OFF[2] + n[2]]


def centre(a) -> np.ndarray:
    a = to_numpy(a)
    return a[:, OFF[0] : OFF[0] + TEST[0], OFF[1] : OFF[1] + TEST[1], OFF[2] : OFF[2] + TEST[2]]


@pytest.mark.parametrize("kind", ARRAY_TYPE_NAMES)
def test_every_crop_meets_threshold_with_p1_and_sits_where_it_says(kind):
    label = blobs()
    image = coords_image(label.shape[1:])
    crop = RandRejectionCropd(
        ["image", "label"],
        "label",
        CROP,
        test_size=TEST,
        size_thres=10,
        reject_p=1.0,
        num_samples=30,
        max_trials=10_000,
    ).set_random_state(3)
    data = {"image": as_type(image, kind), "label": as_type(label, kind)}
    outs = crop(data)
    assert len(outs) == 30
    for out in outs:
        start = out["crop_start"]
        assert start.dtype == np.int64 and out["rejection_trials"] >= 1
        assert np.count_nonzero(centre(out["label"])) >= 10
        assert same_container(out["image"], data["image"]) and to_numpy(out["label"]).dtype == label.dtype
        z, y, x = start
        np.testing.assert_array_equal(to_numpy(out["image"]), image[:, z : z + 4, y : y + 16, x : x + 16])
        np.testing.assert_array_equal(to_numpy(out["label"]), label[:, z : z + 4, y : y + 16, x : x + 16])
        if kind == "metatensor":
            assert out["image"].meta["rejection_trials"] == out["rejection_trials"]
            np.testing.assert_allclose(out["image"].affine[:3, 3].numpy(), start)  # the crop moved the origin


def test_below_threshold_rate_matches_theory_at_p095():
    label = blobs(n=6, seed=1)
    counts = region_counts(label[0])
    f = float((counts >= 10).mean())
    assert 0.05 < f < 0.6, f  # the fixture must have both kinds of positions
    p = 0.95
    expected = (1 - f) * (1 - p) / (f + (1 - f) * (1 - p))
    n = 1500
    crop = RandRejectionCropd(
        ["label"], "label", CROP, test_size=TEST, size_thres=10, reject_p=p, num_samples=n, max_trials=10_000
    ).set_random_state(7)
    outs = crop({"label": label})
    low = np.mean([np.count_nonzero(centre(o["label"])) < 10 for o in outs])
    assert abs(low - expected) < 4 * np.sqrt(expected * (1 - expected) / n), (low, expected)
    mean_trials = np.mean([o["rejection_trials"] for o in outs])
    theory = 1 / (f + (1 - f) * (1 - p))
    assert abs(mean_trials - theory) < 0.15 * theory, (mean_trials, theory)


def test_real_sparse_labels_fib25(fib25):
    _, gt = fib25
    ids, sizes = np.unique(gt, return_counts=True)
    small = ids[(sizes > 50) & (sizes < 2200)]  # a dozen small neurons: ~2% of the voxels
    label = np.where(np.isin(gt, small), gt, 0)[None]
    crop = RandRejectionCropd(
        ["label"],
        "label",
        (8, 32, 32),
        test_size=(4, 16, 16),
        size_thres=20,
        reject_p=1.0,
        num_samples=10,
        max_trials=10_000,
    ).set_random_state(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = crop({"label": label})
    for o in outs:
        assert np.count_nonzero(to_numpy(o["label"])[:, 2:6, 8:24, 8:24]) >= 20


def test_diversity_counts_background_too():
    label = blobs(n=8, seed=2)
    crop = RandRejectionCropd(
        ["label"],
        "label",
        CROP,
        test_size=TEST,
        diversity=3,
        reject_p=1.0,
        num_samples=20,
        max_trials=100_000,
    ).set_random_state(1)
    for o in crop({"label": label}):
        assert len(np.unique(centre(o["label"]))) >= 3


def test_half_annotated_volume_gives_crops_only_from_annotated_side():
    label = np.ones((1, 8, 48, 48), np.int32)
    valid = np.zeros_like(label, dtype=np.uint8)
    valid[..., :24] = 1  # left half annotated
    crop = RandRejectionCropd(
        ["label", "valid"],
        "label",
        CROP,
        valid_key="valid",
        test_size=TEST,
        valid_ratio=0.999,
        num_samples=40,
        max_trials=1000,
    ).set_random_state(0)
    for o in crop({"label": label, "valid": valid}):
        assert o["crop_start"][2] + OFF[2] + TEST[2] <= 24  # tested region fully inside the annotated side
        assert to_numpy(centre(o["valid"])).all()
    half = RandRejectionCropd(
        ["valid"],
        "label",
        CROP,
        valid_key="valid",
        test_size=TEST,
        valid_ratio=0.5,
        num_samples=40,
        max_trials=1000,
    ).set_random_state(0)
    for o in half({"label": label, "valid": valid}):
        assert to_numpy(centre(o["valid"])).mean() > 0.5  # strict >: exactly half is rejected


def test_no_acceptable_crop_stops_at_max_trials_and_warns():
    label = blobs()
    valid = np.zeros_like(label)
    crop = RandRejectionCropd(["label"], "label", CROP, valid_key="valid", size_thres=5, max_trials=7)
    with pytest.warns(
        RuntimeWarning, match=r"'label'.*max_trials=7.*size_thres=5.*best valid fraction seen 0"
    ):
        (out,) = crop({"label": label, "valid": valid})
    assert out["rejection_trials"] == 7


def test_shape_mismatch_names_keys_and_shapes():
    crop = RandRejectionCropd(["image", "label"], "label", CROP, valid_key="valid")
    good = np.zeros((1, 8, 48, 48))
    with pytest.raises(ValueError, match=r"'image': \(8, 48, 48\).*'label': \(8, 40, 48\)"):
        crop({"image": good, "label": np.zeros((1, 8, 40, 48)), "valid": good})
    with pytest.raises(ValueError, match=r"'valid': \(8, 48, 47\)"):
        crop({"image": good, "label": good, "valid": np.zeros((1, 8, 48, 47))})
    with pytest.raises(ValueError, match="key 'valid' is not in the data"):
        crop({"image": good, "label": good})


def test_too_small_volume_errors_or_reflect_pads():
    label = blobs((3, 10, 40), n=0)
    image = coords_image((3, 10, 40))
    crop = RandRejectionCropd(["image", "label"], "label", CROP)
    with pytest.raises(
        ValueError, match=r"'label' of spatial shape \(3, 10, 40\) is smaller than spatial_size \(4, 16, 16\)"
    ):
        crop({"image": image, "label": label})
    padded = RandRejectionCropd(
        ["image", "label"], "label", CROP, pad_mode="reflect", num_samples=5
    ).set_random_state(0)
    ref = np.pad(image, ((0, 0), (0, 1), (3, 3), (0, 0)), mode="reflect")  # short axes split evenly
    for o in padded({"image": image, "label": label}):
        z, y, x = o["crop_start"]
        assert z == 0 and y == -3 and 0 <= x <= 24
        np.testing.assert_array_equal(to_numpy(o["image"]), ref[:, :, :, x : x + 16])


def test_crop_on_axis_longer_than_65535():
    n = 70_000
    label = np.zeros((1, 1, 2, n), np.uint8)
    label[0, 0, 1, 68_123] = 1
    image = np.broadcast_to(np.arange(n, dtype=np.int64), (1, 1, 2, n))
    crop = RandRejectionCropd(
        ["image", "label"],
        "label",
        (1, 2, 100),
        size_thres=1,
        reject_p=1.0,
        max_trials=100_000,
        num_samples=3,
    ).set_random_state(5)
    for o in crop({"image": image, "label": label}):
        x = int(o["crop_start"][2])
        assert 68_123 - 99 <= x <= 68_123
        np.testing.assert_array_equal(to_numpy(o["image"])[0, 0, 0], np.arange(x, x + 100))
        assert to_numpy(o["label"]).sum() == 1


def test_same_seed_same_crops_different_seed_differs_and_table_reused():
    label = blobs()
    kw = dict(
        keys=["label"], label_key="label", spatial_size=CROP, size_thres=10, reject_p=0.9, num_samples=8
    )
    a = RandRejectionCropd(**kw).set_random_state(11)
    b = RandRejectionCropd(**kw).set_random_state(11)
    c = RandRejectionCropd(**kw).set_random_state(12)
    sa = [o["crop_start"].tolist() for o in a({"label": label})]
    assert sa == [o["crop_start"].tolist() for o in b({"label": label})]
    assert sa != [o["crop_start"].tolist() for o in c({"label": label})]
    a({"label": label})
    assert a.sampler.cache.builds == 1  # the integral volume was computed once for three calls


def test_inside_compose_gives_list_of_dicts():
    label = torch.as_tensor(blobs())
    pipe = Compose(
        [
            RandRejectionCropd(["image", "label"], "label", CROP, size_thres=10, reject_p=1.0, num_samples=3),
            RandFlipd(["image", "label"], prob=0.5, spatial_axis=2),
        ]
    )
    pipe.set_random_state(0)
    outs = pipe({"image": label.float(), "label": label})
    assert isinstance(outs, list) and len(outs) == 3
    for o in outs:
        assert o["image"].shape == (1, *CROP) and torch.equal(
            o["image"].as_tensor().long(), o["label"].as_tensor().long()
        )


def flip_and_centre(d):
    """A deterministic stand-in augmentor: flips x, then centre-crops to TEST."""
    out = dict(d)
    for k in ("label", "valid"):
        if k in out:
            a = torch.as_tensor(to_numpy(out[k])).flip(-1)
            out[k] = a[:, OFF[0] : OFF[0] + TEST[0], OFF[1] : OFF[1] + TEST[1], OFF[2] : OFF[2] + TEST[2]]
    return out


def test_exact_mode_tests_the_augmented_label():
    label = blobs()
    crop = RandRejectionCropd(
        ["label"],
        "label",
        CROP,
        size_thres=10,
        reject_p=1.0,
        augment=flip_and_centre,
        exact=True,
        num_samples=10,
        max_trials=10_000,
    ).set_random_state(0)
    for o in crop({"label": label}):
        assert tuple(o["label"].shape[1:]) == TEST and np.count_nonzero(to_numpy(o["label"])) >= 10
        z, y, x = o["crop_start"] + OFF
        np.testing.assert_array_equal(
            to_numpy(o["label"]), label[:, z : z + 2, y : y + 8, x : x + 8][..., ::-1]
        )
    with pytest.raises(ValueError, match="needs an `augment`"):
        RandRejectionCropd(["label"], "label", CROP, exact=True)


@pytest.mark.parametrize("kw", [{}, {"valid_key": "valid"}, {"diversity": 3}, {"pad_mode": "reflect"}])
def test_exact_and_default_paths_share_one_loop(kw):
    """With an augment that changes nothing, measuring before or after it is the same measure: the two
    paths must then make the same draws, accept the same candidates and give up alike."""
    label = blobs((6, 48, 48))[:, : 3 if "pad_mode" in kw else 6]  # 3 sections: mirrored to CROP's 4
    valid = np.zeros_like(label)
    valid[:, :, :30] = 1
    data = {"label": label, "valid": valid}
    common = dict(spatial_size=CROP, test_size=TEST, size_thres=12, reject_p=0.9, num_samples=12, **kw)

    def centre_only(d):
        return {k: centre(v) if k in ("label", "valid") else v for k, v in d.items()}

    runs = []
    for exact in (False, True):
        crop = RandRejectionCropd(["label"], "label", augment=centre_only, exact=exact, **common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a few draws may run out of trials
            outs = crop.set_random_state(7)(data)
        runs.append([(o["crop_start"].tolist(), o["rejection_trials"]) for o in outs])
    assert runs[0] == runs[1]
    assert len({tuple(s) for s, _ in runs[0]}) > 1  # the draws differ between samples


def test_search_takes_any_measure_function():
    """The loop accepts the first candidate its measure passes; a measure seeing only zeros gives up."""
    sampler = RejectionSampler((2, 4, 4), size_thres=1, reject_p=1.0, max_trials=20).set_random_state(0)
    seen = []

    def measure(start):
        seen.append(start.tolist())
        return Measure(int(start[2] >= 6), None, lambda: 1, output=len(seen))

    draw, m = sampler.search((4, 12, 12), measure)
    assert draw.accepted and draw.trials == len(seen) == m.output and seen[-1][2] >= 6
    assert all(s[2] < 6 for s in seen[:-1]) and all(0 <= s[2] <= 8 for s in seen)
    with pytest.warns(RuntimeWarning, match=r"'mask'.*max_trials=20.*best foreground count seen 0"):
        draw, _ = sampler.search((4, 12, 12), lambda start: Measure(0, None, lambda: 1), "mask")
    assert not draw.accepted and draw.trials == 20


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"reject_p": 1.5}, "reject_p"),
        ({"valid_ratio": -0.1}, "valid_ratio"),
        ({"max_trials": 0}, "max_trials"),
        ({"pad_mode": "wrap"}, "pad_mode"),
        ({"test_size": (8, 8, 8)}, "must fit inside"),
        ({"spatial_size": (4, 0, 4)}, "spatial_size"),
    ],
)
def test_bad_arguments(kw, match):
    args = {"spatial_size": CROP, **kw}
    with pytest.raises(ValueError, match=match):
        RejectionSampler(**args)


def test_metatensor_input_meta_untouched():
    label = MetaTensor(torch.as_tensor(blobs()))
    RandRejectionCropd(["label"], "label", CROP, num_samples=2)({"label": label})
    assert "crop_start" not in label.meta


def test_inside_emaugmentor_pipeline_and_reproducible(synthetic_small):
    from monai_em.transforms.compose import EMAugmentor

    aug = EMAugmentor.from_targets((4, 32, 32), {"image": "img", "label": "mask", "valid": "mask"})
    vol = synthetic_small
    data = {
        "image": vol.image[None],
        "label": vol.mito[None],
        "valid": np.ones_like(vol.mito[None], np.uint8),
    }
    pipe = Compose(
        [
            RandRejectionCropd(
                ["image", "label", "valid"],
                "label",
                aug.sample_size,
                valid_key="valid",
                test_size=aug.input_size,
                size_thres=1,
                reject_p=0.9,
                num_samples=2,
            ),
            aug,
        ]
    )
    first = [o["crop_start"].tolist() for o in pipe.set_random_state(4)(data)]
    outs = pipe.set_random_state(4)(data)
    assert first == [o["crop_start"].tolist() for o in outs]
    for o in outs:
        assert o["image"].shape[1:] == (4, 32, 32) and o["valid"].shape[1:] == (4, 32, 32)
        assert o["label"].dtype == torch.int32
    inner = RandRejectionCropd(
        ["image", "label", "valid"],
        "label",
        valid_key="valid",
        augment=aug,
        exact=True,
        size_thres=1,
        num_samples=2,
    ).set_random_state(4)
    assert inner.spatial_size == aug.sample_size and inner.sampler.test_size == aug.input_size
    dense = {**data, "label": vol.label[None]}  # every crop passes: one augmentation per sample
    assert all(o["label"].shape[1:] == (4, 32, 32) and o["rejection_trials"] == 1 for o in inner(dense))


def test_2d_crops():
    label = np.zeros((1, 40, 60), np.int32)
    label[0, 30:34, 50:54] = 7
    crop = RandRejectionCropd(
        ["label"], "label", (8, 8), size_thres=16, reject_p=1.0, num_samples=5, max_trials=10_000
    ).set_random_state(0)
    for o in crop({"label": label}):
        y, x = o["crop_start"]
        assert (y, x) == (30, 50) or np.count_nonzero(label[0, y : y + 8, x : x + 8]) >= 16
        assert np.count_nonzero(to_numpy(o["label"])) == 16
