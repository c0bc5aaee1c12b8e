"""One-pass fusion: golden comparison with running the members one by one, the plan, unfused members."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Lambdad, RandSpatialCropSamplesd

from monai_em.transforms.compose import EMAugmentor, default_em_transforms
from monai_em.transforms.fusion import FusedStep, plan
from monai_em.transforms.sections import RandMisAlignmentd, RandMissingSectiond

TARGETS = {"image": "img", "label": "mask", "valid_mask": "mask"}
SPATIAL = 4  # the default list ends with elastic, flip, rescale, rotate


def _members(forced: bool):
    ts = default_em_transforms(TARGETS)
    if forced:
        for t in ts:
            t.prob = 1.0
    return ts


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    label = (np.arange(n, dtype=np.int64).reshape(1, *shape) + 2**40) * (rng.random((1, *shape)) > 0.1)
    valid = (rng.random((1, *shape)) > 0.3).astype(np.uint8)
    return {
        "image": torch.from_numpy(rng.random((1, *shape), dtype=np.float32)),
        "label": torch.from_numpy(label),
        "valid_mask": torch.from_numpy(valid),
    }


@pytest.mark.parametrize("forced", [False, True])
def test_golden_fused_pass_equals_members_one_by_one(forced):
    """The default pipeline in one pass == every member up to the spatial tail run one by one (each
    its own call), then the spatial tail (fused since before one-pass fusion): labels and masks
    bit-identical, image within float tolerance, over many seeds and both mis-alignment variants."""
    input_size = (4, 28, 28)
    fused_members, ref_members = _members(forced), _members(forced)
    fused = EMAugmentor(fused_members, input_size)
    tail = EMAugmentor(ref_members[-SPATIAL:], input_size)
    rotated = translated = lost = 0
    for seed in range(30):
        for n, (a, b) in enumerate(zip(fused_members, ref_members, strict=True)):
            a.set_random_state(seed * 100 + n)
            b.set_random_state(seed * 100 + n)
        data = _data(fused.sample_size, seed)
        out = fused(data)
        expected = dict(data)
        for t in ref_members[:-SPATIAL]:
            expected = t(expected)
        expected = tail(expected)
        for key in ("label", "valid_mask"):
            assert out[key].dtype == expected[key].dtype
            np.testing.assert_array_equal(
                out[key].numpy(), expected[key].numpy(), err_msg=f"seed {seed} {key}"
            )
        np.testing.assert_allclose(
            out["image"].numpy(), expected["image"].numpy(), atol=1e-5, err_msg=str(seed)
        )
        mis = next(t for t in fused_members if isinstance(t, RandMisAlignmentd)).params
        rotated += mis is not None and mis.rotate
        translated += mis is not None and not mis.rotate
        lost += next(t for t in fused_members if isinstance(t, RandMissingSectiond)).params is not None
    assert rotated and translated and lost  # both mis-alignment variants and missing sections were drawn


def test_plan_groups_declared_contributions():
    aug = EMAugmentor(default_em_transforms(TARGETS), (4, 28, 28))
    steps = plan(aug.transforms, aug.crop)
    names = [type(s).__name__ for s in steps]
    assert names == ["FusedStep"]
    step = steps[-1]
    assert isinstance(step, FusedStep) and step.cropped
    assert [type(t).__name__ for t in step.patched] == ["RandCutNoised", "RandCutBlurd", "RandMotionBlurd"]
    assert [type(t).__name__ for t in step.sections] == ["RandMisAlignmentd", "RandMissingSectiond"]
    assert [type(t).__name__ for t in step.windowed] == ["RandMissingPartsd", "RandGrayscaled"]
    assert len(step.points) == SPATIAL
    # a z<->x transpose is no per-section point map: the flip then runs on its own
    ts = default_em_transforms(TARGETS, flip={"do_ztrans": True})
    aug = EMAugmentor(ts, (4, 28, 28))
    assert any(type(s).__name__ == "RandFlipTransposed" for s in plan(aug.transforms, aug.crop))
    # section members on other keys than the point maps run on their own
    ts = default_em_transforms(TARGETS, skip={"missingsection": ["valid_mask"]})
    aug = EMAugmentor(ts, (4, 28, 28))
    fused = [s for s in plan(aug.transforms, aug.crop) if isinstance(s, FusedStep)]
    assert [type(t).__name__ for t in fused[0].sections] == []


def test_multi_sample_member_in_a_fused_list_behaves_as_in_compose():
    ts = default_em_transforms(TARGETS)
    aug = EMAugmentor(ts, (4, 28, 28))
    size = aug.sample_size
    crop = RandSpatialCropSamplesd(list(TARGETS), roi_size=size, num_samples=3, random_size=False)
    for fuse in (True, False):
        multi = EMAugmentor([crop, *ts], (4, 28, 28), fuse=fuse)
        multi.set_random_state(0)
        data = _data((size[0] + 2, size[1] + 5, size[2] + 5), 0)
        out = multi(data)
        assert isinstance(out, list) and len(out) == 3
        for item in out:
            assert {k: tuple(item[k].shape) for k in TARGETS} == {k: (1, 4, 28, 28) for k in TARGETS}
            assert item["label"].dtype == torch.int64 and item["valid_mask"].dtype == torch.uint8


def test_unfused_member_errors_name_the_transform():
    def boom(x):
        raise ValueError("bad voxel")

    aug = EMAugmentor([Lambdad("image", boom), *default_em_transforms(TARGETS)], (4, 28, 28))
    with pytest.raises(RuntimeError, match="applying transform.*Lambdad"):
        aug(_data(aug.sample_size, 0))


def _batch(aug, n, seed, device="cpu"):
    samples = [_data(aug.sample_size, seed + b) for b in range(n)]
    return samples, {k: torch.stack([s[k] for s in samples]).to(device) for k in TARGETS}


def test_batch_path_gives_each_sample_the_per_sample_draws():
    aug = EMAugmentor.from_targets((4, 28, 28), TARGETS)
    samples, batch = _batch(aug, 3, 0)
    batch["names"] = ["a", "b", "c"]
    out = aug.set_random_state(5).augment_batch(batch)
    aug.set_random_state(5)
    expected = [aug(s) for s in samples]
    assert out["names"] == ["a", "b", "c"]
    for key in TARGETS:
        assert out[key].shape == (3, 1, 4, 28, 28) and out[key].dtype == batch[key].dtype
        for b in range(3):
            np.testing.assert_allclose(out[key][b].numpy(), expected[b][key].numpy(), atol=1e-6)
    assert not torch.equal(out["label"][0], out["label"][1])  # samples drew differently
    with pytest.raises(ValueError, match=r"batch sizes \{'image': 3, 'label': 2\}"):
        aug.augment_batch({"image": batch["image"], "label": batch["label"][:2]})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_path_on_cuda_keeps_the_device_and_the_per_sample_draws():
    aug = EMAugmentor.from_targets((4, 28, 28), TARGETS)
    samples, batch = _batch(aug, 4, 1, "cuda")
    out = aug.set_random_state(3).augment_batch(batch)
    aug.set_random_state(3)
    expected = [aug({k: v.cuda() for k, v in s.items()}) for s in samples]
    for key in TARGETS:
        assert out[key].device.type == "cuda" and out[key].dtype == batch[key].dtype
        for b in range(4):
            torch.testing.assert_close(out[key][b], torch.as_tensor(expected[b][key]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("rotate", [True, False])
def test_section_map_reads_what_the_section_transforms_write(rotate):
    """A composed mis-alignment + missing-section map: its frame equals the two transforms applied in
    turn, and its one gather equals resampling that frame (points partly outside it)."""
    from monai_em.transforms.frames import SectionMap
    from monai_em.transforms.resample import resample
    from monai_em.transforms.sections import (
        MisAlignmentParams,
        MissingSectionParams,
        RandMisAlignment,
        RandMissingSection,
    )

    rng = np.random.default_rng(int(rotate))
    label = torch.from_numpy(rng.integers(2**40, 2**40 + 9, (2, 6, 30, 34)))
    mis, lost = RandMisAlignment(displacement=6), RandMissingSection(num_sections=2)
    p1 = MisAlignmentParams(2, False, rotate, 6, start0=(1, 4), start1=(5, 0), angle=17.0)
    p2 = MissingSectionParams((1, 3))
    shape1 = mis.output_shape(p1, (6, 30, 34))
    expected = lost.apply(mis.apply(label, p1, "nearest"), p2, "nearest")
    assert tuple(expected.shape[1:]) == lost.output_shape(p2, shape1)
    smap = SectionMap().then(*mis.section_map(p1, (6, 30, 34))).then(*lost.section_map(p2, shape1))
    assert torch.equal(smap.take(label), expected)
    z = torch.tensor([3.0, 0.0, 2.0, 3.0])
    yx = torch.from_numpy(rng.uniform(-3, 36, (9, 11, 2)).astype(np.float32))
    got = smap.sample_nearest(label, z, yx, {})
    assert torch.equal(got, resample(expected, z, yx, "nearest"))
    assert (got == 0).any() and (got != 0).any()
    flat, outside = smap.flat_indices(label, z, yx, {})  # the batch path's one gather reads the same voxels
    gathered = label.reshape(2, -1)[:, flat].reshape(2, len(z), -1).masked_fill(outside, 0)
    assert torch.equal(gathered.reshape(got.shape), got)


def test_a_turned_section_reads_zero_where_its_turn_leaves_the_input():
    """Every point inside the frame, but the turned section's corners come from outside the input: only
    those read zero (the other sections' reads have nothing outside)."""
    from monai_em.transforms.frames import SectionMap
    from monai_em.transforms.resample import identity_points, resample

    label = torch.arange(1, 1 + 3 * 20 * 24, dtype=torch.int64).reshape(1, 3, 20, 24)
    smap = SectionMap((0, 1, 2), ((0, 0),) * 3, (20, 24), (None, 30.0, None))
    z, yx = identity_points((3, 20, 24))
    got = smap.sample_nearest(label, z, yx, {})
    assert torch.equal(got, resample(smap.take(label), z, yx, "nearest"))
    assert (got[0, 1] == 0).any() and (got[0, [0, 2]] != 0).all()
    flat, outside = smap.flat_indices(label, z, yx, {})
    assert outside is not None and not outside[0, [0, 2]].any() and outside[0, 1].any()


def test_a_section_member_without_allow_missing_keys_still_raises_in_the_pass():
    ts = default_em_transforms(TARGETS)
    for t in ts[-SPATIAL:]:
        t.allow_missing_keys = True  # the point maps would skip a missing key; mis-alignment must not
    aug = EMAugmentor(ts, (4, 28, 28))
    data = _data(aug.sample_size, 0)
    del data["valid_mask"]
    with pytest.raises(KeyError, match="valid_mask"):
        aug(data)


def test_a_patch_member_without_allow_missing_keys_still_raises_in_the_pass():
    ts = default_em_transforms(TARGETS)
    for t in ts:
        t.allow_missing_keys = type(t).__name__ != "RandCutNoised"  # only cut noise insists on the image
    for fuse, error, match in (
        (True, KeyError, "image` of transform `RandCutNoised"),
        (False, RuntimeError, "RandCutNoised"),
    ):
        aug = EMAugmentor(ts, (4, 28, 28), fuse=fuse)
        data = _data(aug.sample_size, 0)
        del data["image"]
        with pytest.raises(error, match=match):  # one by one, MONAI's apply_transform wraps the KeyError
            aug.set_random_state(0)(data)


def test_a_draw_error_in_the_pass_names_the_member():
    """A member's draw that fails inside the fused pass keeps its error type, with a note naming it."""
    ts = default_em_transforms(TARGETS, disabled=["misalignment"])
    missing = next(t for t in ts if isinstance(t, RandMissingSectiond))
    missing.prob = 1.0
    aug = EMAugmentor(ts, (1, 28, 28))  # plans 3 sections: too few to delete two interior ones
    with pytest.raises(ValueError, match="interior sections from Z=3") as info:
        aug(_data(aug.sample_size, 0))
    assert any("RandMissingSectiond" in note for note in info.value.__notes__)


def test_a_point_member_without_allow_missing_keys_still_raises_in_the_pass():
    """Every point map checks its keys, as one by one: the first one that does not allow a missing key
    raises, not only the first member of the step."""
    ts = default_em_transforms(TARGETS)[-SPATIAL:]
    for t in ts[:-1]:
        t.allow_missing_keys = True  # only the last one (RandRotateXYd) insists on the mask
    aug = EMAugmentor(ts, (4, 28, 28))
    data = _data(aug.sample_size, 0)
    del data["valid_mask"]
    with pytest.raises(KeyError, match="valid_mask` of transform `RandRotateXYd"):
        aug(data)
    ts[-1].allow_missing_keys = True
    assert sorted(aug(data)) == ["image", "label"]


@pytest.mark.parametrize("angles", [None, (None, 90.0)])
@pytest.mark.parametrize("axis", [0, 1])
def test_points_rounding_to_just_past_the_last_row_or_column_read_zero(angles, axis):
    """A point that rounds to exactly ``Y`` (or ``X``) lies outside: that row (column) reads zero, the
    rest of the section what resampling the mapped frame gives (the read box's edge, inclusive)."""
    from monai_em.transforms.frames import SectionMap
    from monai_em.transforms.resample import identity_points, resample

    label = torch.arange(1, 1 + 2 * 2 * 6 * 6, dtype=torch.int32).reshape(2, 2, 6, 6)
    smap = SectionMap((0, 1), ((0, 0), (0, 0)), (6, 6), angles)
    z, yx = identity_points((2, 6, 6))
    yx[..., axis] += 0.5  # the last row (column) rounds half up to 6
    got = smap.sample_nearest(label, z, yx, {})
    assert torch.equal(got, resample(smap.take(label), z, yx, "nearest"))
    edge = got[..., -1, :] if axis == 0 else got[..., -1]
    inner = got[..., :-1, :] if axis == 0 else got[..., :-1]
    assert (edge == 0).all() and (inner != 0).all()
