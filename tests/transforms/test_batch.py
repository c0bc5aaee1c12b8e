"""The batched path: EMAugmentor.augment_batch reads a fused step for the whole batch at once, with each
sample's own draws; the window patches of cut noise, cut blur and motion blur; the canvas sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Lambdad, RandSpatialCropSamplesd

from monai_em.transforms.compose import EMAugmentor, default_em_transforms
from monai_em.transforms.frames import Patched
from monai_em.transforms.fusion import plan, run_plan_batch
from monai_em.transforms.intensity import RandCutBlur, RandCutNoise, paste_patches
from monai_em.transforms.resample import resample, rotate_xy, sample_windows
from monai_em.transforms.sections import RandMotionBlur

TARGETS = {"image": "img", "label": "mask", "valid_mask": "mask"}


def _members(forced: bool):
    ts = default_em_transforms(TARGETS)
    for t in ts if forced else ():
        t.prob = 1.0
    return ts


def _sample(shape, seed, image_dtype=np.float32):
    """Image, int64 labels above 2**40 (float32 cannot hold them) and a uint8 mask."""
    rng = np.random.default_rng(seed)
    label = (np.arange(int(np.prod(shape))).reshape(1, *shape) + 2**40) * (rng.random((1, *shape)) > 0.1)
    image = rng.random((1, *shape), dtype=np.float32)
    if image_dtype == np.uint8:
        image = (image * 255).astype(np.uint8)
    return {
        "image": torch.from_numpy(image),
        "label": torch.from_numpy(label),
        "valid_mask": torch.from_numpy((rng.random((1, *shape)) > 0.3).astype(np.uint8)),
    }


@pytest.mark.parametrize("forced", [False, True])
@pytest.mark.parametrize("image_dtype", [np.float32, np.uint8])
def test_batch_equals_per_sample_calls_over_seeds(forced, image_dtype):
    """Sample b of a batch == the b-th per-sample call from the same seed, bit for bit (the batch and a
    lone sample share the canvas numbers), with every member forced on or at its own probability."""
    aug = EMAugmentor(_members(forced), (4, 28, 28))
    for seed in range(4):
        samples = [_sample(aug.sample_size, 10 * seed + b, image_dtype) for b in range(4)]
        batch = {k: torch.stack([s[k] for s in samples]) for k in TARGETS}
        out = aug.set_random_state(seed).augment_batch(batch)
        aug.set_random_state(seed)
        expected = [aug(s) for s in samples]
        for key in TARGETS:
            assert out[key].shape == (4, 1, 4, 28, 28) and out[key].dtype == batch[key].dtype
            for b in range(4):
                want = torch.as_tensor(expected[b][key]).as_subclass(torch.Tensor)
                assert torch.equal(out[key][b], want), f"seed {seed} sample {b} {key}"
        assert len({out["label"][b].sum().item() for b in range(4)}) > 1  # the samples drew differently


def test_batched_read_covers_every_key_of_the_default_pipeline():
    """The default list is one fused step: every key comes back as one (B, C, ...) read, not a stack."""
    aug = EMAugmentor.from_targets((4, 28, 28), TARGETS)
    batch = {k: torch.stack([_sample(aug.sample_size, b)[k] for b in range(3)]) for k in TARGETS}
    samples, stacked = run_plan_batch(plan(aug.transforms, aug.crop), batch, aug.crop, aug)
    assert sorted(stacked) == sorted(TARGETS) and len(samples) == 3
    for key in TARGETS:
        assert stacked[key].shape == (3, 1, 4, 28, 28)
        assert all(samples[b][key].data_ptr() == stacked[key][b].data_ptr() for b in range(3))


def test_one_kernel_over_the_batch_equals_the_per_sample_reads():
    """The GPU's nearest read (one gather over the (B, C, Z, Y, X) batch tensor) == the CPU's (each
    sample's reads into the batch output), on CPU tensors, for every key and every forced member."""
    aug = EMAugmentor(_members(True), (4, 28, 28))
    batch = {k: torch.stack([_sample(aug.sample_size, b)[k] for b in range(4)]) for k in TARGETS}
    outs = {}
    for one in (True, False):
        aug.set_random_state(7)
        outs[one] = run_plan_batch(plan(aug.transforms, aug.crop), batch, aug.crop, aug, one_kernel=one)[1]
    for key in TARGETS:
        assert torch.equal(outs[True][key], outs[False][key]), key


def test_batch_with_a_member_between_the_point_maps_equals_per_sample_calls():
    """A MONAI member between the point maps leaves a fused step without the crop, whose output is each
    sample's own shape (missing sections and mis-alignment drawn per sample): the batch still equals the
    per-sample calls."""
    depths = []
    seen = Lambdad("image", lambda x: depths.append(x.shape[1]) or x)
    members = default_em_transforms(TARGETS)
    aug = EMAugmentor(
        [*members[:-2], seen, *members[-2:]], (4, 28, 28)
    )  # elastic + flip: a step without the crop
    samples = [_sample(aug.sample_size, b) for b in range(4)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in TARGETS}
    for seed in range(3):
        out = aug.set_random_state(seed).augment_batch(batch)
        aug.set_random_state(seed)
        expected = [aug(s) for s in samples]
        for key in TARGETS:
            for b in range(4):
                want = torch.as_tensor(expected[b][key]).as_subclass(torch.Tensor)
                assert torch.equal(out[key][b], want), f"seed {seed} sample {b} {key}"
    assert len(set(depths)) > 1  # the samples reached the member with different shapes


def test_batch_with_a_multi_sample_member_names_it():
    aug = EMAugmentor.from_targets((4, 28, 28), TARGETS)
    crop = RandSpatialCropSamplesd(list(TARGETS), roi_size=aug.sample_size, num_samples=2, random_size=False)
    multi = EMAugmentor([crop, *default_em_transforms(TARGETS)], (4, 28, 28))
    batch = {k: torch.stack([_sample(aug.sample_size, b)[k] for b in range(2)]) for k in TARGETS}
    with pytest.raises(ValueError, match="RandSpatialCropSamplesd returned several samples"):
        multi.augment_batch(batch)


def test_unfused_batch_still_calls_per_sample():
    aug = EMAugmentor.from_targets((4, 28, 28), TARGETS, fuse=False)
    samples = [_sample(aug.sample_size, b) for b in range(2)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in TARGETS}
    out = aug.set_random_state(1).augment_batch(batch)
    aug.set_random_state(1)
    for b, s in enumerate(samples):
        assert torch.equal(out["label"][b], torch.as_tensor(aug(s)["label"]).as_subclass(torch.Tensor))


@pytest.mark.parametrize("seed", range(3))
def test_patched_reads_equal_the_whole_image_apply(seed):
    """A Patched image read anywhere == slicing the image after the members ran one by one (each patch
    member computes its boxes from the image with the earlier ones written)."""
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.random((2, 6, 40, 44), dtype=np.float32))
    members = [RandCutNoise(0.5, 0.3, 1.0), RandCutBlur(0.5, prob=1.0), RandMotionBlur(3, 5, 1.0)]
    expected, patched = image, Patched(image)
    for n, t in enumerate(members):
        t.set_random_state(seed * 10 + n)
        params = t.draw((6, 40, 44))
        expected = t.apply(expected, params, "bilinear")
        patched.patches += t.patches(params, (6, 40, 44), patched.read)
    assert torch.equal(patched.whole(), torch.as_tensor(expected).as_subclass(torch.Tensor))
    for _ in range(10):
        lo = rng.integers(0, (6, 40, 44))
        hi = lo + rng.integers(1, (7, 41, 45) - lo)
        box = tuple(zip(lo.tolist(), hi.tolist(), strict=True))
        want = expected[:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        assert torch.equal(patched.read(box), torch.as_tensor(want).as_subclass(torch.Tensor))
    assert torch.equal(Patched(image).read(((1, 3), (2, 9), (0, 44))), image[:, 1:3, 2:9])  # no patch: a view
    assert torch.equal(paste_patches(image, []), image)


def test_canvas_sampler_equals_resample_of_each_window():
    """sample_windows == resampling each window on its own (zero outside it), for points inside, across
    and far outside the windows, within float rounding (the canvas changes the grid normalisation)."""
    rng = np.random.default_rng(0)
    windows = [torch.from_numpy(rng.random((2, 5, h, w), dtype=np.float32)) for h, w in ((30, 33), (41, 25))]
    zs = [torch.tensor([4.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, 3.0])]
    yxs = [torch.from_numpy(rng.uniform(-3, 60, (7, 9, 2)).astype(np.float32)) for _ in windows]
    out = sample_windows(windows, zs, yxs, (64, 64))
    assert out.shape == (2, 2, 3, 7, 9)
    for b, (window, z, yx) in enumerate(zip(windows, zs, yxs, strict=True)):
        want = torch.as_tensor(resample(window, z, yx, "bilinear")).as_subclass(torch.Tensor)
        torch.testing.assert_close(out[b], want, atol=1e-5, rtol=0)
        assert (want == 0).any() and (want != 0).any()
    with pytest.raises(ValueError, match=r"sections \[7\] outside \[0, 5\)"):
        sample_windows(windows[:1], [torch.tensor([7.0])], yxs[:1], (64, 64))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_resample_reads_runs_reversed_runs_and_picks_of_sections(mode):
    """resample's section choice (a run: a view; a reversed run: sampled then flipped; else picked)
    == resampling each output section on its own; a section outside the input is named."""
    img = torch.from_numpy(np.random.default_rng(0).random((2, 5, 9, 8), dtype=np.float32))
    yx = torch.from_numpy(np.random.default_rng(1).uniform(-1, 9, (6, 7, 2)).astype(np.float32))
    for picks in ([1, 2, 3], [4, 3, 2, 1], [0, 4, 4, 2]):
        out = resample(img, torch.tensor(picks, dtype=torch.float32), yx, mode)
        for k, z in enumerate(picks):
            want = resample(img[:, z : z + 1], torch.tensor([0.0]), yx, mode)[:, 0]
            assert torch.equal(torch.as_tensor(out)[:, k], torch.as_tensor(want)), (picks, k)
    with pytest.raises(ValueError, match=r"sections \[0, 5\] outside \[0, 5\)"):
        resample(img, torch.tensor([0.0, 5.0]), yx, mode)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (no GPU on this machine)")
def test_batch_on_cuda_equals_the_cpu_batch():
    """The batched path on the GPU: every transform keeps the device; labels and masks equal the CPU
    batch bit for bit, images within float rounding (the devices round differently)."""
    aug = EMAugmentor(_members(True), (4, 28, 28))
    batch = {k: torch.stack([_sample(aug.sample_size, b)[k] for b in range(4)]) for k in TARGETS}
    on_cpu = aug.set_random_state(2).augment_batch(batch)
    on_gpu = aug.set_random_state(2).augment_batch({k: v.cuda() for k, v in batch.items()})
    for key in TARGETS:
        assert on_gpu[key].device.type == "cuda" and on_gpu[key].dtype == batch[key].dtype
        if key == "image":
            torch.testing.assert_close(on_gpu[key].cpu(), on_cpu[key], atol=1e-5, rtol=0)
        else:
            assert torch.equal(on_gpu[key].cpu(), on_cpu[key])


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_rotate_xy_computes_any_part_of_its_output(mode):
    """rotate_xy with rows / cols == the same rows / cols of the whole rotation, bit for bit (the pass
    rotates only the window a mis-aligned section is read at)."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((2, 37, 41), dtype=np.float32))
    for angle in (0.0, 7.5, -23.0):
        whole = rotate_xy(x, angle, mode)
        part = rotate_xy(x, angle, mode, (5, 30), (0, 17))
        assert torch.equal(part, whole[:, 5:30, 0:17])
