"""monai_em transforms as MONAI pieces: thread workers, MetaTensor affine and trace, Invertd round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import Dataset, MetaTensor, ThreadDataLoader
from monai.data.meta_obj import get_track_meta
from monai.transforms import Compose, Flip, Invertd, Rotate90, SpatialCrop, SpatialCropd

from monai_em.data.synthetic import make_em_volume
from monai_em.transforms.compose import EMAugmentor
from monai_em.transforms.sampling import RandRejectionCropd
from monai_em.transforms.sections import RandMisAlignmentd
from monai_em.transforms.spatial import (
    RandFlipTransposed,
    RandRescaled,
    RandRotateXYd,
    RandSectionElasticd,
)

AFFINE = torch.tensor(
    [[40.0, 0.0, 0.0, 7.0], [0.0, 0.0, 4.0, -3.0], [0.0, 4.0, 0.0, 11.0], [0.0, 0.0, 0.0, 1.0]],
    dtype=torch.float64,
)  # anisotropic, y and x swapped, an origin: any mix-up of axes or signs shows


def _meta(arr) -> MetaTensor:
    return MetaTensor(torch.as_tensor(arr), affine=AFFINE.clone(), meta={"filename_or_obj": "vol.h5"})


def _coordinates(shape) -> torch.Tensor:
    """(1, Z, Y, X) int64 label whose every voxel holds its own flat index: any misplacement shows."""
    return torch.arange(int(np.prod(shape)), dtype=torch.int64).reshape(1, *shape)


# ------------------------------------------------------------------------------------- thread workers


def _nearest_geometry(keys=("image", "label")):
    """Geometric transforms moving both keys with nearest sampling: outputs equal iff both got one draw."""
    mode = ("nearest",) * len(keys)
    return [
        RandSectionElasticd(keys, alpha=4.0, prob=0.75, mode=mode),
        RandRescaled(keys, prob=0.5, mode=mode),
        RandFlipTransposed(keys, mode=mode),
        RandRotateXYd(keys, rot90=False, mode=mode),
    ]


def test_one_augmentor_serves_thread_workers():
    aug = EMAugmentor(_nearest_geometry(), (4, 16, 16))
    fused_default = EMAugmentor.from_targets((4, 16, 16), {"image": "img", "label": "mask"})
    shape = tuple(max(a, b) for a, b in zip(aug.sample_size, fused_default.sample_size, strict=True))
    items = []
    for i in range(48):
        lab = _coordinates(shape) + i
        items.append({"image": _meta(lab.clone()), "label": _meta(lab), "i": i})

    def both(d):
        out = aug(d)
        out["default"] = fused_default({"image": d["image"].float(), "label": d["label"]})
        return out

    track_before = get_track_meta()
    loader = ThreadDataLoader(
        Dataset(items, transform=both), batch_size=2, num_workers=4, use_thread_workers=True, buffer_size=1
    )
    seen = 0
    for batch in loader:
        assert isinstance(batch["image"], MetaTensor) and isinstance(batch["label"], MetaTensor)
        assert isinstance(batch["default"]["image"], MetaTensor)
        # image and label of each sample were moved by one draw (a leaked draw would split them)
        assert torch.equal(batch["image"].as_tensor(), batch["label"].as_tensor())
        seen += len(batch["i"])
    assert seen == len(items)
    assert get_track_meta() == track_before


def test_rejection_crop_and_augmentor_serve_thread_workers():
    coords = _coordinates((10, 48, 48)) + 1  # image == label: outputs stay equal iff each call used one draw
    volume = {"image": _meta(coords.clone()), "label": _meta(coords)}  # one shared volume (one shared cache)
    aug = EMAugmentor(_nearest_geometry(), (4, 16, 16))
    crop = RandRejectionCropd(["image", "label"], "label", augment=aug, size_thres=50, num_samples=2)
    loader = ThreadDataLoader(
        Dataset([volume] * 24, transform=crop), batch_size=4, num_workers=4, use_thread_workers=True
    )
    seen = 0
    for batch in loader:
        assert isinstance(batch["image"], MetaTensor) and batch["image"].shape[-3:] == (4, 16, 16)
        assert torch.equal(batch["image"].as_tensor(), batch["label"].as_tensor())
        seen += batch["image"].shape[0]
    assert seen == 24 * 2


def test_params_are_per_thread_and_pickle():
    import pickle
    import threading

    t = RandFlipTransposed(["image"]).set_random_state(0)
    t({"image": torch.zeros(1, 2, 4, 4)})
    mine = t.params
    other = []
    th = threading.Thread(target=lambda: other.append(t.params))
    th.start()
    th.join()
    assert mine is not None and other == [None]  # another thread sees only its own last draw
    clone = pickle.loads(pickle.dumps(t))
    assert clone.params is None and clone({"image": torch.zeros(1, 2, 4, 4)})["image"].shape == (1, 2, 4, 4)


# ------------------------------------------------------------------------------------- affine and trace


def test_centre_crop_affine_equals_monai_spatial_crop():
    img = _meta(torch.rand(1, 10, 30, 26))
    out = EMAugmentor([], (4, 16, 16))({"image": img})["image"]
    start = [(10 - 4) // 2, (30 - 16) // 2, (26 - 16) // 2]
    ref = SpatialCropd(
        "image", roi_start=start, roi_end=[s + n for s, n in zip(start, (4, 16, 16), strict=True)]
    )({"image": img})["image"]
    torch.testing.assert_close(out.affine, ref.affine)
    assert torch.equal(out.as_tensor(), ref.as_tensor())
    assert [op["class"] for op in out.applied_operations] == ["_CentreCrop"]
    assert img.applied_operations == []  # the input is left alone


@pytest.mark.parametrize("pad_mode", [None, "reflect"])
def test_rejection_crop_affine_equals_monai_spatial_crop(pad_mode):
    em = make_em_volume((8, 40, 40), seed=1)
    d = {"image": _meta(em.image[None]), "label": _meta(em.label[None])}
    size = (6, 48, 24) if pad_mode else (6, 24, 24)  # reflect: taller than the volume, partly mirrored
    crop = RandRejectionCropd(["image", "label"], "label", spatial_size=size, pad_mode=pad_mode)
    for seed in range(3):
        out = crop.set_random_state(seed)(d)[0]
        start = out["crop_start"]
        expect = AFFINE.clone()
        expect[:3, 3] += AFFINE[:3, :3] @ torch.as_tensor(start, dtype=torch.float64)
        if (start >= 0).all():
            stop = start + np.asarray(size)
            mon = SpatialCrop(roi_start=start.tolist(), roi_end=stop.tolist())(d["image"])
            torch.testing.assert_close(mon.affine, expect)
            assert torch.equal(out["image"].as_tensor(), mon.as_tensor())
        torch.testing.assert_close(out["image"].affine, expect)
        assert [op["class"] for op in out["label"].applied_operations] == ["RandRejectionCropd"]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_quarter_turn_affine_and_data_equal_monai_rotate90(k):
    img = _meta(_coordinates((3, 8, 8)))
    t = RandRotateXYd("image", prob=1.0, mode="nearest")
    for seed in range(40):
        out = t.set_random_state(seed)({"image": img})["image"]
        if t.params.k == k:
            break
    ref = Rotate90(k=k, spatial_axes=(1, 2))(img)
    assert torch.equal(out.as_tensor(), ref.as_tensor())
    torch.testing.assert_close(out.affine, ref.affine)


def test_flip_transpose_affine_follows_the_voxels():
    """Every output voxel's world position (affine @ index) equals its source voxel's, read from its value."""
    shape = (3, 6, 6)
    img = _meta(_coordinates(shape))
    t = RandFlipTransposed("image", do_ztrans=False)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    for seed in range(12):
        out = t.set_random_state(seed)({"image": img})["image"]
        src = np.stack(np.unravel_index(out.as_tensor().numpy()[0], shape), -1).reshape(-1, 3)
        idx = np.stack((zz, yy, xx), -1).reshape(-1, 3)
        world_out = idx @ out.affine[:3, :3].numpy().T + out.affine[:3, 3].numpy()
        world_src = src @ AFFINE[:3, :3].numpy().T + AFFINE[:3, 3].numpy()
        np.testing.assert_allclose(world_out, world_src)
    ref = Flip(spatial_axis=[1, 2])(img)  # MONAI's own flip of y and x: same voxels, same affine
    for seed in range(40):
        out = t.set_random_state(seed)({"image": img})["image"]
        p = t.params
        if p.flip_y and p.flip_x and not (p.flip_z or p.transpose):
            break
    assert torch.equal(out.as_tensor(), ref.as_tensor())
    torch.testing.assert_close(out.affine, ref.affine)


def test_rescale_and_rotation_affine_follow_the_voxels():
    """Nearest rescale / rotation: inside the image, each output voxel came from the source voxel
    its affine points at (within the voxel that nearest sampling rounds off)."""
    shape = (2, 24, 24)
    img = _meta(_coordinates(shape))
    for t in (
        RandRescaled("image", prob=1.0, mode="nearest"),
        RandRotateXYd("image", rot90=False, mode="nearest"),
    ):
        out = t.set_random_state(3)({"image": img})["image"]
        grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1).reshape(-1, 3)
        vals = out.as_tensor().numpy()[0].reshape(-1)
        src = np.stack(np.unravel_index(vals, shape), -1)
        inv = np.linalg.inv(AFFINE.numpy())
        world = grid @ out.affine[:3, :3].numpy().T + out.affine[:3, 3].numpy()
        where = world @ inv[:3, :3].T + inv[:3, 3]  # input index the affine says each output voxel is at
        inside = (where[:, 1:] > 0.5).all(1) & (where[:, 1:] < np.asarray(shape[1:]) - 1.5).all(1)
        assert inside.sum() > 500
        assert np.abs(where[inside] - src[inside]).max() <= 1.0  # rescale takes floor(), rotation rounds


# ------------------------------------------------------------------------------------------- inverse


def test_invertd_round_trip_through_flips_turns_and_crops():
    em = make_em_volume((8, 40, 40), seed=2)
    aug = EMAugmentor(
        [
            RandFlipTransposed(["image", "label"]),
            RandRotateXYd(["image", "label"], mode=("bilinear", "nearest")),
        ],
        (4, 24, 24),
    )
    crop = RandRejectionCropd(["image", "label"], "label", augment=aug)
    pipeline = Compose([crop])
    d = {"image": _meta(em.image[None].astype(np.float32)), "label": _meta(em.label[None])}
    for seed in range(4):
        out = pipeline.set_random_state(seed)(d)[0]
        pred = MetaTensor(out["image"].as_tensor() * 2.0)  # a "prediction" aligned with the augmented input
        support = MetaTensor(torch.ones_like(pred))
        inv = Invertd(
            ["pred", "support"], transform=pipeline, orig_keys=["image", "image"], nearest_interp=False
        )({**out, "pred": pred, "support": support})
        back, where = inv["pred"], inv["support"].as_tensor() != 0
        assert back.shape == d["image"].shape
        torch.testing.assert_close(back.affine, AFFINE)
        assert back.applied_operations == []
        # each predicted voxel lands on the input voxel it was computed from; the rest is zero
        assert int(where.sum()) == 4 * 24 * 24
        # (float rounding only: the fused run samples the turned grid bilinearly at whole pixels)
        torch.testing.assert_close(back.as_tensor()[where], 2.0 * d["image"].as_tensor()[where])
        assert not back.as_tensor()[~where].any()
        # Compose.inverse of the augmentor alone undoes the turns and the centre crop too
        again = aug.inverse({"image": out["image"], "label": out["label"]})["label"]
        assert tuple(again.shape[1:]) == aug.sample_size
        assert again.applied_operations[-1]["class"] == "RandRejectionCropd"


@pytest.mark.parametrize(
    "transform",
    [
        RandRescaled(["image"], prob=1.0),
        RandSectionElasticd(["image"], prob=1.0),
        RandRotateXYd(["image"], rot90=False),
        RandMisAlignmentd(["image"], displacement=2, prob=1.0),
    ],
    ids=lambda t: type(t).__name__,
)
def test_interpolating_transforms_refuse_to_invert(transform):
    out = Compose([transform])({"image": _meta(torch.rand(1, 4, 16, 16))})
    with pytest.raises(RuntimeError) as err:  # MONAI's Compose wraps the transform's error
        Compose([transform]).inverse(out)
    assert isinstance(err.value.__cause__, NotImplementedError)
    assert "has no exact inverse" in str(err.value.__cause__)


def test_skipped_draw_inverts_to_itself():
    t = RandRescaled(["image"], prob=0.0)
    img = _meta(torch.rand(1, 4, 16, 16))
    out = t({"image": img})
    back = t.inverse(out)["image"]
    assert torch.equal(back.as_tensor(), img.as_tensor()) and back.applied_operations == []


# ------------------------------------------------------------------------------------ axis-order guard


def _nifti(tmp_path, zyx: np.ndarray) -> str:
    """``zyx`` written as NIfTI the way EM tools write it: x first, z (the thick, 40 nm axis) last."""
    import nibabel as nib

    path = str(tmp_path / "stack.nii.gz")
    nib.save(
        nib.Nifti1Image(np.ascontiguousarray(zyx.transpose(2, 1, 0)), np.diag([4.0, 4.0, 40.0, 1.0])), path
    )
    return path


def test_x_first_nifti_through_load_imaged_warns_and_transposed_does_not(tmp_path):
    import warnings

    from monai.transforms import LoadImaged, Transposed

    zyx = np.random.default_rng(0).integers(0, 255, (3, 10, 12)).astype(np.float32)
    path = _nifti(tmp_path, zyx)
    load = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)
    d = load({"image": path, "label": path})
    assert tuple(d["image"].shape[1:]) == (12, 10, 3)  # x first: what a user gets from stock MONAI
    flip = RandFlipTransposed(["image", "label"])
    with pytest.warns(UserWarning, match=r"stack\.nii\.gz arrives from NibabelReader as \(X, Y, Z\)"):
        flip(d)
    with pytest.warns(UserWarning, match=r"Transposed\(keys, indices=\(0, 3, 2, 1\)\)"):
        EMAugmentor([], (2, 8, 2))(d)
    fixed = Transposed(["image", "label"], indices=(0, 3, 2, 1))(d)  # the fix the warning names
    np.testing.assert_array_equal(fixed["image"].numpy()[0], zyx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flip(fixed)
        RandRejectionCropd(["image"], "label", spatial_size=(2, 8, 8))(fixed)
        flip({"image": torch.as_tensor(zyx[None]), "label": torch.as_tensor(zyx[None])})  # plain arrays: ZYX


def test_x_first_png_warns_in_2d(tmp_path):
    from monai.transforms import LoadImaged
    from PIL import Image

    Image.fromarray(np.zeros((10, 16), np.uint8)).save(
        tmp_path / "section.png"
    )  # 10 rows (y), 16 columns (x)
    d = LoadImaged("image", ensure_channel_first=True, image_only=True)(
        {"image": str(tmp_path / "section.png")}
    )
    with pytest.warns(UserWarning, match=r"PILReader as \(X, Y\) = \(16, 10\)"):
        RandFlipTransposed("image")(d)
