"""Property-based sweep over every public monai_em transform: odd shapes, dtypes and input types.

Each case draws a shape (Z = 1, 2, 3..., tiny and non-square sections, odd and even sizes, 1-3
channels, 2D where the transform takes it), an image dtype (uint8, uint16, float32, float64), a label
dtype (uint8, int32, int64, uint64, with ids above 2**24, 2**32 and 2**63), an input type (numpy,
torch, MetaTensor) and valid random constructor arguments. A call must either

* return the documented type (a tensor; a MetaTensor for MetaTensor input), shape and dtype (the
  input's dtype for images, labels and masks; float32 for targets and weights), with label values a
  subset of the input ids (plus 0), finite values for finite input, and the input left untouched; or
* raise ``ValueError``/``TypeError`` from monai_em code (never IndexError, RuntimeError or an error
  from inside torch/scipy).
"""

from __future__ import annotations

import importlib
import inspect
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from monai.data import MetaTensor
from monai.transforms import Transform

from tests.robustness.conftest import FUZZ

MODULES = ("spatial", "sections", "intensity", "mixing", "targets", "sampling", "compose")
IMAGE_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
LABEL_DTYPES = (np.uint8, np.int32, np.int64, np.uint64)
INPUT_TYPES = ("numpy", "torch", "metatensor") + (("cuda",) if torch.cuda.is_available() else ())
# ids each label dtype can hold, the EM-sized ones included (float32 is exact only below 2**24)
IDS = {
    np.uint8: (1, 2, 7, 255),
    np.int32: (1, 5, 2**24 + 1, 2**31 - 1),
    np.int64: (3, 2**24 + 1, 2**32 + 7, 2**53 + 1, 2**63 - 1),
    np.uint64: (3, 2**24 + 1, 2**32 + 7, 2**63 + 5, 2**64 - 1),
}


# --------------------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    shape: tuple[int, ...]  # (C, [Z,] Y, X)
    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray
    kind: str  # input type


@st.composite
def spatial_shapes(draw, allow_2d: bool = True, min_z: int = 1) -> tuple[int, ...]:
    yx = st.one_of(st.integers(1, 4), st.integers(5, 24))
    y, x = draw(yx), draw(st.one_of(yx, st.just(-1)))
    x = y if x == -1 else x  # square sections are common (transposes, quarter turns)
    if allow_2d and draw(st.integers(0, 5)) == 0:
        return (y, x)
    z = draw(st.one_of(st.sampled_from([1, 2, 3]), st.integers(1, 7)).filter(lambda v: v >= min_z))
    return (z, y, x)


@st.composite
def inputs(draw, allow_2d: bool = True, channels: tuple[int, ...] = (1, 2, 3), min_z: int = 1) -> Inputs:
    spatial = draw(spatial_shapes(allow_2d, min_z))
    c = draw(st.sampled_from(channels))
    shape = (c, *spatial)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    idt = draw(st.sampled_from(IMAGE_DTYPES))
    if np.issubdtype(idt, np.floating):
        image = rng.random(shape).astype(idt)
    else:
        image = rng.integers(0, np.iinfo(idt).max, shape, endpoint=True, dtype=idt)
    ldt = draw(st.sampled_from(LABEL_DTYPES))
    pool = draw(st.lists(st.sampled_from(IDS[ldt]), min_size=1, max_size=3, unique=True))
    lab_shape = (1, *spatial)
    label = np.where(rng.random(lab_shape) < 0.3, 0, rng.choice(np.asarray(pool, dtype=ldt), lab_shape))
    label = label.astype(ldt)
    mdt = draw(st.sampled_from([np.uint8, np.bool_]))
    mask = (rng.random(lab_shape) < 0.7).astype(mdt)
    kind = draw(st.sampled_from(INPUT_TYPES))
    return Inputs(shape, image, label, mask, kind + ("-strided" if draw(st.booleans()) else ""))


def typed(array: np.ndarray, kind: str):
    """``array`` as the input type ``kind``; ``...-strided``: a non-contiguous view (x reversed / y<->x swapped)."""
    kind, _, strided = kind.partition("-")
    if kind == "numpy":
        return array[..., ::-1].copy()[..., ::-1] if strided else array.copy()
    t = torch.as_tensor(array.copy(), device="cuda" if kind == "cuda" else None)
    if strided:
        t = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    return MetaTensor(t) if kind == "metatensor" else t


def to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def torch_dtype_of(array) -> torch.dtype:
    return (
        array.dtype
        if isinstance(array, torch.Tensor)
        else torch.as_tensor(np.zeros(1, np.asarray(array).dtype)).dtype
    )


# --------------------------------------------------------------------------------------- checks


def assert_clear_error(err: BaseException) -> None:
    """A user-facing error: ValueError/TypeError raised by monai_em code, with a message."""
    while isinstance(err, RuntimeError) and isinstance(err.__cause__, (ValueError, TypeError)):
        err = err.__cause__  # MONAI's Compose wraps the transform's own error
    if not isinstance(err, (ValueError, TypeError)):
        raise AssertionError(f"expected ValueError/TypeError, got {type(err).__name__}: {err}") from err
    frames = traceback.extract_tb(err.__traceback__)
    origin = frames[-1].filename if frames else ""
    if "monai_em" not in origin.replace("\\", "/").split("/site-packages/")[-1]:
        raise AssertionError(f"{type(err).__name__} raised inside {origin}, not by monai_em: {err}") from err
    assert str(err).strip(), "error without a message"


def call(fn: Callable):
    """``fn()``'s result, or None when it raised a clear error (anything else fails the test)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rejection sampling giving up is a warning
            return fn()
    except Exception as err:  # noqa: BLE001  (the check decides)
        assert_clear_error(err)
        return None


def check_output(out, given, shape=None, dtype=None, name: str = "output") -> np.ndarray:
    """Type, device, dtype, shape and finiteness of one output array; returns it as numpy."""
    assert isinstance(out, torch.Tensor), f"{name}: expected a tensor, got {type(out).__name__}"
    if isinstance(given, MetaTensor):
        assert isinstance(out, MetaTensor), f"{name}: MetaTensor input must give a MetaTensor"
    if isinstance(given, torch.Tensor):
        assert out.device == given.device
    expect = dtype if dtype is not None else torch_dtype_of(given)
    assert out.dtype == expect, f"{name}: dtype {out.dtype}, expected {expect}"
    if shape is not None:
        assert tuple(out.shape) == tuple(shape), f"{name}: shape {tuple(out.shape)}, expected {tuple(shape)}"
    arr = to_numpy(out)
    if np.issubdtype(arr.dtype, np.floating):
        assert np.isfinite(arr).all(), f"{name}: NaN/inf in the output of a finite input"
    return arr


def check_ids(out: np.ndarray, given: np.ndarray, name: str = "label", extra=()) -> None:
    allowed = set(np.unique(given).tolist()) | {0} | set(extra)
    new = set(np.unique(out).tolist()) - allowed
    assert not new, f"{name}: values {sorted(new)[:5]} are not input ids (dtype {given.dtype})"


def check_unchanged(before: np.ndarray, after) -> None:
    np.testing.assert_array_equal(to_numpy(after), before, err_msg="the transform modified its input")


def typed_inputs(x) -> dict:
    """The case's image, label and valid mask as the input type it drew."""
    return {
        "image": typed(x.image, x.kind),
        "label": typed(x.label, x.kind),
        "valid_mask": typed(x.mask, x.kind),
    }


def check_inputs_unchanged(x, given: dict) -> None:
    """No transform may write into the arrays it was given."""
    for key, arr in (("image", x.image), ("label", x.label), ("valid_mask", x.mask)):
        check_unchanged(arr, given[key])


# --------------------------------------------------------------------------------------- registry


def geometric_shape(name: str, t, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Expected output shape of a geometric transform from what it drew."""
    p = t.params
    if p is None:
        return shape
    if "MisAlignment" in name and not p.rotate:
        return (*shape[:-2], shape[-2] - p.displacement, shape[-1] - p.displacement)
    if "MissingSection" in name:
        return (shape[0], shape[1] - len(p.sections), *shape[2:])
    return shape


prob = st.sampled_from([0.0, 0.5, 1.0, 1.0])
ARGS: dict[str, st.SearchStrategy] = {
    "Rescale": st.fixed_dictionaries(
        {"low": st.floats(0.4, 1.0), "high": st.floats(1.0, 2.5), "fix_aspect": st.booleans()}
    ),
    "FlipTranspose": st.fixed_dictionaries({"do_ztrans": st.booleans()}),
    "RotateXY": st.fixed_dictionaries({"rot90": st.booleans()}),
    "SectionElastic": st.fixed_dictionaries({"alpha": st.floats(0.0, 20.0), "sigma": st.floats(0.5, 8.0)}),
    "MisAlignment": st.fixed_dictionaries(
        {"displacement": st.integers(1, 8), "rotate_ratio": st.floats(0, 1)}
    ),
    "MissingSection": st.fixed_dictionaries({"num_sections": st.integers(1, 3)}),
    "MissingParts": st.fixed_dictionaries({"iterations": st.integers(0, 8), "section_prob": st.floats(0, 1)}),
    "MotionBlur": st.fixed_dictionaries({"sections": st.integers(1, 4), "kernel_size": st.integers(1, 9)}),
    "Grayscale": st.fixed_dictionaries(
        {
            "contrast": st.floats(0, 1),
            "brightness": st.floats(0, 1),
            "mode": st.sampled_from(["mix", "2D", "3D"]),
            "invert": st.booleans(),
            "invert_p": st.floats(0, 1),
        }
    ),
    "CutBlur": st.floats(1.0, 8.0).flatmap(
        lambda lo: st.fixed_dictionaries(
            {
                "length_ratio": st.floats(0.01, 1.0),
                "down_ratio_min": st.just(lo),
                "down_ratio_max": st.floats(lo, 10.0),
                "downsample_z": st.booleans(),
            }
        )
    ),
    "CutNoise": st.fixed_dictionaries({"length_ratio": st.floats(0.01, 1.0), "scale": st.floats(0, 1)}),
    "Mixup": st.floats(0, 1).flatmap(
        lambda lo: st.fixed_dictionaries(
            {"min_ratio": st.just(lo), "max_ratio": st.floats(lo, 1.0), "num_aug": st.integers(1, 4)}
        )
    ),
}
GEOMETRIC = ("Rescale", "FlipTranspose", "RotateXY", "SectionElastic", "MisAlignment", "MissingSection")
IMAGE_ONLY = ("MissingParts", "MotionBlur", "Grayscale", "CutBlur", "CutNoise")


def _family(name: str) -> str:
    return name[4:-1] if name.endswith("d") and name[4:-1] in ARGS else name[4:]


def _class(name: str):
    for module in MODULES:
        mod = importlib.import_module(f"monai_em.transforms.{module}")
        if name in getattr(mod, "__all__", ()):
            return getattr(mod, name)
    raise LookupError(name)


def public_transforms() -> set[str]:
    """Every public transform class of monai_em.transforms (MONAI ``Transform`` subclasses in ``__all__``)."""
    names = set()
    for module in MODULES:
        mod = importlib.import_module(f"monai_em.transforms.{module}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and issubclass(obj, Transform):
                names.add(name)
    return names


def run_rand_array(name: str, data) -> None:
    """Array form of a random EM transform: image with its default mode, label/mask moved with the same draw."""
    fam = _family(name)
    kwargs = data.draw(ARGS[fam], label="kwargs")
    p = data.draw(prob, label="prob")
    geometric = fam in GEOMETRIC
    x = data.draw(inputs(allow_2d=True), label="inputs")
    t = _class(name)(**kwargs, prob=p)
    t.set_random_state(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    img = typed(x.image, x.kind)
    out = call(lambda: t(img))
    check_unchanged(x.image, img)
    if out is None:
        return
    expect = geometric_shape(name, t, x.shape) if geometric else x.shape
    check_output(out, img, expect, name="image")
    if not geometric or t.params is None:
        return
    for arr, what in ((x.label, "label"), (x.mask, "mask")):
        given_ = typed(arr, x.kind)
        res = call(lambda g=given_: t(g, mode="nearest", randomize=False))
        assert res is not None, f"{what}: the image went through but the {what} raised"
        check_unchanged(arr, given_)
        lab = check_output(res, given_, (1, *expect[1:]), name=what)
        check_ids(lab, arr, what)


def run_rand_dict(name: str, data) -> None:
    fam = _family(name)
    kwargs = data.draw(ARGS[fam], label="kwargs")
    p = data.draw(prob, label="prob")
    x = data.draw(inputs(allow_2d=True), label="inputs")
    geometric = fam in GEOMETRIC
    if geometric:
        kwargs.update(keys=["image", "label", "valid_mask"], mode=["bilinear", "nearest", "nearest"])
    else:
        kwargs.update(keys=["image"])
    t = _class(name)(**kwargs, prob=p)
    t.set_random_state(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    given_ = typed_inputs(x)
    out = call(lambda: t(dict(given_)))
    check_inputs_unchanged(x, given_)
    if out is None:
        return
    expect = geometric_shape(name, t.transform, x.shape) if geometric and t.params is not None else x.shape
    check_output(out["image"], given_["image"], expect, name="image")
    if geometric:
        for key, arr in (("label", x.label), ("valid_mask", x.mask)):
            check_ids(check_output(out[key], given_[key], (1, *expect[1:]), name=key), arr, key)
    else:
        assert out["label"] is given_["label"] and out["valid_mask"] is given_["valid_mask"]


def run_mixup(name: str, data) -> None:
    kwargs = data.draw(ARGS["Mixup"], label="kwargs")
    p = data.draw(prob, label="prob")
    b = data.draw(st.integers(1, 4), label="batch")
    x = data.draw(inputs(allow_2d=True), label="inputs")
    batch = np.stack([x.image] * b) if b == 1 else np.stack([np.roll(x.image, i) for i in range(b)])
    if name.endswith("d"):
        t = _class(name)(keys=["image"], **kwargs, prob=p)
    else:
        t = _class(name)(**kwargs, prob=p)
    t.set_random_state(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    given_ = typed(batch, x.kind)
    out = call(lambda: t({"image": given_})["image"] if name.endswith("d") else t(given_))
    check_unchanged(batch, given_)
    if out is not None:
        res = check_output(out, given_, batch.shape, name="batch")
        if np.issubdtype(batch.dtype, np.floating):  # a convex blend stays inside the batch's range
            assert res.min() >= batch.min() - 1e-6 and res.max() <= batch.max() + 1e-6


def run_copy_paste(name: str, data) -> None:
    kwargs = data.draw(
        st.fixed_dictionaries(
            {"aug_thres": st.floats(0.01, 1.0), "dilation": st.integers(0, 3), "relabel": st.booleans()}
        ),
        label="kwargs",
    )
    p = data.draw(prob, label="prob")
    x = data.draw(inputs(allow_2d=True), label="inputs")
    t = _class(name)(keys=["image"], label_key="label", **kwargs, prob=p)
    t.set_random_state(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    given_ = {"image": typed(x.image, x.kind), "label": typed(x.label, x.kind)}
    out = call(lambda: t(dict(given_)))
    check_unchanged(x.image, given_["image"])
    check_unchanged(x.label, given_["label"])
    if out is None:
        return
    check_output(out["image"], given_["image"], x.shape, name="image")
    lab = check_output(out["label"], given_["label"], x.label.shape, name="label")
    extra = ()
    if kwargs["relabel"]:  # pasted ids are offset by the maximum; an offset that wraps the dtype is a bug
        top = int(x.label.max())
        extra = {int(i) + top for i in np.unique(x.label) if i}
    check_ids(lab, x.label, extra=extra)


def run_target(name: str, data) -> None:
    x = data.draw(inputs(allow_2d=True, channels=(1,)), label="inputs")
    base = name.rstrip("d") if name != "ValidMaskToWeightd" else name
    if base.startswith("Boundary"):
        kwargs = data.draw(
            st.fixed_dictionaries(
                {
                    "width": st.integers(1, 4),
                    "in_plane": st.booleans(),
                    "bg_mode": st.sampled_from(["include", "exclude"]),
                }
            ),
            label="kwargs",
        )
    elif base.startswith("Affinity"):
        nd = len(x.shape) - 1
        offsets = st.lists(
            st.lists(st.integers(-3, 3), min_size=nd, max_size=nd).filter(any), min_size=1, max_size=4
        )
        kwargs = data.draw(
            st.fixed_dictionaries({"offsets": st.one_of(st.none(), offsets), "in_plane": st.booleans()}),
            label="kwargs",
        )
    elif base.startswith("Binary"):
        kwargs = {"invert": data.draw(st.booleans(), label="invert")}
    elif base.startswith("Semantic"):
        kwargs = {"num_classes": data.draw(st.integers(2, 6), label="num_classes")}
    elif base.startswith("Distance"):
        kwargs = data.draw(
            st.fixed_dictionaries({"in_plane": st.booleans(), "z_res": st.floats(0.5, 4.0)}), label="kwargs"
        )
    else:
        from monai_em.transforms.targets import AffinityTarget, BoundaryTarget

        which = data.draw(st.sampled_from([None, "boundary", "affinity"]), label="target")
        target = {None: None, "boundary": BoundaryTarget(2), "affinity": AffinityTarget()}[which]
        kwargs = {"target": target, "channels": data.draw(st.integers(1, 3), label="channels")}
    cls = _class(name)
    label = typed(x.label, x.kind)
    mask = typed(x.mask, x.kind)
    if name == "ValidMaskToWeightd":
        out = call(lambda: cls(keys="valid_mask", weight_key="weight", **kwargs)({"valid_mask": mask}))
        check_unchanged(x.mask, mask)
        if out is not None:
            w = check_output(out["weight"], mask, dtype=torch.float32, name="weight")
            assert w.shape[1:] == x.mask.shape[1:] and set(np.unique(w).tolist()) <= {0.0, 1.0}
        return
    if name.endswith("d"):
        weight = data.draw(st.booleans(), label="weight")
        t = cls(
            keys="label",
            valid_key="valid_mask" if weight else None,
            weight_key="w" if weight else None,
            **kwargs,
        )
        out = call(lambda: t({"label": label, "valid_mask": mask}))
        res = None if out is None else out["label"]
    else:
        res = call(lambda: cls(**kwargs)(label))
    check_unchanged(x.label, label)
    if res is None:
        return
    tgt = check_output(res, label, dtype=torch.float32, name="target")
    assert tgt.shape[1:] == x.label.shape[1:]
    if base.startswith("Semantic"):  # class indices, all inside the range
        assert set(np.unique(tgt).tolist()) <= set(map(float, range(kwargs["num_classes"])))
    elif base.startswith("Distance"):
        assert tgt.min() >= 0 and tgt.max() <= 1
    else:
        assert set(np.unique(tgt).tolist()) <= {0.0, 1.0}
    if x.label.dtype == np.uint64 and not base.startswith("Binary"):  # a mask has no ids to lose
        assert int(x.label.max()) < 2**63, "uint64 ids >= 2**63 must be refused with a ValueError"


def run_rejection_crop(name: str, data) -> None:
    x = data.draw(inputs(allow_2d=True), label="inputs")
    spatial = x.shape[1:]
    size = data.draw(st.tuples(*[st.integers(1, n + 2) for n in spatial]), label="spatial_size")
    kwargs = data.draw(
        st.fixed_dictionaries(
            {
                "size_thres": st.integers(-1, 20),
                "reject_p": st.floats(0, 1),
                "diversity": st.integers(-1, 3),
                "valid_ratio": st.floats(0, 1),
                "num_samples": st.integers(1, 3),
                "max_trials": st.integers(1, 6),
                "pad_mode": st.sampled_from([None, "reflect"]),
            }
        ),
        label="kwargs",
    )
    valid = data.draw(st.booleans(), label="valid_key")
    t = _class(name)(
        keys=["image", "label", "valid_mask"],
        label_key="label",
        spatial_size=list(size),
        valid_key="valid_mask" if valid else None,
        **kwargs,
    )
    t.set_random_state(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    given_ = typed_inputs(x)
    out = call(lambda: t(dict(given_)))
    check_inputs_unchanged(x, given_)
    if out is None:
        assert kwargs["pad_mode"] is None and any(s > n for s, n in zip(size, spatial, strict=True)), (
            "a crop that fits (or is padded) must not fail"
        )
        return
    assert isinstance(out, list) and len(out) == kwargs["num_samples"]
    for item in out:
        check_output(item["image"], given_["image"], (x.shape[0], *size), name="image")
        check_ids(check_output(item["label"], given_["label"], (1, *size), name="label"), x.label)
        check_ids(check_output(item["valid_mask"], given_["valid_mask"], (1, *size), name="mask"), x.mask)
        assert item["crop_start"].dtype == np.int64


def run_augmentor(name: str, data) -> None:
    from monai_em.transforms import compose, intensity, sections, spatial

    x = data.draw(inputs(allow_2d=True, channels=(1,)), label="inputs")
    spatial_shape = x.shape[1:]
    is3d = len(spatial_shape) == 3
    g = {"keys": ["image", "label", "valid_mask"], "mode": ["bilinear", "nearest", "nearest"]}
    pool = [
        lambda: spatial.RandRescaled(**g, prob=0.7),
        lambda: spatial.RandFlipTransposed(**g),
        lambda: spatial.RandRotateXYd(**g, rot90=False),
        lambda: spatial.RandRotateXYd(**g),
        lambda: spatial.RandSectionElasticd(**g, alpha=3.0, prob=0.8),
        lambda: intensity.RandGrayscaled(keys=["image"], prob=0.8),
        lambda: intensity.RandCutNoised(keys=["image"], prob=0.8),
        lambda: sections.RandMotionBlurd(keys=["image"], kernel_size=3, prob=0.8),
    ]
    if is3d:
        pool += [
            lambda: sections.RandMisAlignmentd(**g, displacement=2, rotate_ratio=0.5, prob=0.8),
            lambda: sections.RandMissingSectiond(**g, num_sections=1, prob=0.8),
        ]
    picks = data.draw(st.lists(st.integers(0, len(pool) - 1), max_size=5), label="transforms")
    input_size = data.draw(st.tuples(*[st.integers(1, n) for n in spatial_shape]), label="input_size")
    aug = compose.EMAugmentor(
        [pool[i]() for i in picks],
        input_size,
        smooth_labels=data.draw(st.booleans(), label="smooth"),
        fuse=data.draw(st.booleans(), label="fuse"),
    )
    aug.set_random_state(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    given_ = typed_inputs(x)
    out = call(lambda: aug(dict(given_)))
    check_inputs_unchanged(x, given_)
    if out is None:
        return
    check_output(out["image"], given_["image"], (1, *input_size), name="image")
    for key, arr in (("label", x.label), ("valid_mask", x.mask)):
        check_ids(check_output(out[key], given_[key], (1, *input_size), name=key), arr, key)


TARGETS = [
    f"{t}Target{d}" for t in ("Boundary", "Affinity", "Binary", "Semantic", "Distance") for d in ("", "d")
]
TARGETS.append("ValidMaskToWeightd")


def runner(name: str) -> Callable:
    fam = _family(name)
    if name in ("RandMixup", "RandMixupd"):
        return run_mixup
    if fam in ARGS:
        return run_rand_dict if name.endswith("d") else run_rand_array
    if name == "RandCopyPasted":
        return run_copy_paste
    if name in TARGETS:
        return run_target
    if name == "RandRejectionCropd":
        return run_rejection_crop
    if name == "EMAugmentor":
        return run_augmentor
    raise LookupError(f"no robustness case for the public transform {name}")


COVERED = sorted(
    [f"Rand{f}" for f in ARGS if f != "Mixup"]
    + [f"Rand{f}d" for f in ARGS if f != "Mixup"]
    + ["RandMixup", "RandMixupd", "RandCopyPasted", "RandRejectionCropd", "EMAugmentor"]
    + list(TARGETS)
)


def test_every_public_transform_is_swept():
    """A new public transform fails here until it gets a case in this sweep."""
    assert public_transforms() == set(COVERED)


@pytest.mark.parametrize("name", COVERED)
@FUZZ
@given(data=st.data())
def test_transform_contract_under_odd_inputs(name, data):
    runner(name)(name, data)
