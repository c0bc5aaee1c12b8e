"""One contract for every public random EM transform (spatial, sections, intensity, mixing).

Input types and devices give the same result for the same seed; type, device and integer label dtype
are kept; ``prob=0`` is the identity; the same seed repeats and different seeds differ; constructor
arguments are JSON-serialisable and a MONAI bundle config (``_target_``) builds the same transform.
"""

from __future__ import annotations

import importlib
import inspect
import json

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable

from monai_em.data.synthetic import make_em_volume
from tests.utils import ARRAY_TYPE_NAMES, as_type, to_numpy

MODULES = ("spatial", "sections", "intensity", "mixing")
ALL3 = {"keys": ["image", "label", "valid_mask"], "mode": ["bilinear", "nearest", "nearest"]}
IMG = {"keys": ["image"]}

# id -> (class name, JSON-serialisable constructor kwargs, input kind); prob 1 so every call acts
REGISTRY: dict[str, tuple[str, dict, str]] = {
    "rescale": ("RandRescaled", {**ALL3, "prob": 1.0}, "volume"),
    "flip": ("RandFlipTransposed", {**ALL3, "prob": 1.0}, "volume"),
    "rot90": ("RandRotateXYd", {**ALL3, "prob": 1.0}, "volume"),
    "rotate": ("RandRotateXYd", {**ALL3, "rot90": False, "prob": 1.0}, "volume"),
    "elastic": ("RandSectionElasticd", {**ALL3, "alpha": 16.0, "prob": 1.0}, "volume"),
    "misalignment": (
        "RandMisAlignmentd",
        {**ALL3, "displacement": 4, "rotate_ratio": 0.5, "prob": 1.0},
        "volume",
    ),
    "missing_section": ("RandMissingSectiond", {**ALL3, "num_sections": 2, "prob": 1.0}, "volume"),
    "missing_parts": (
        "RandMissingPartsd",
        {**IMG, "iterations": 3, "section_prob": 0.9, "prob": 1.0},
        "volume",
    ),
    "motion_blur": ("RandMotionBlurd", {**IMG, "sections": 2, "kernel_size": 5, "prob": 1.0}, "volume"),
    "grayscale": ("RandGrayscaled", {**IMG, "prob": 1.0}, "volume"),
    "cut_blur": ("RandCutBlurd", {**IMG, "length_ratio": 0.5, "prob": 1.0}, "volume"),
    "cut_noise": ("RandCutNoised", {**IMG, "length_ratio": 0.5, "scale": 0.3, "prob": 1.0}, "volume"),
    "copy_paste": ("RandCopyPasted", {**IMG, "label_key": "label", "prob": 1.0}, "copy_paste"),
    "mixup": ("RandMixupd", {**IMG, "prob": 1.0}, "batch"),
}


# CopyPaste's choice is deterministic (least overlap): only its coin is random
DIFFER_CHANGES = {"copy_paste": {"prob": 0.5}}


def _handled(case: str) -> set[str]:
    """Keys the transform changes (others pass through untouched)."""
    kwargs = REGISTRY[case][1]
    return set(kwargs["keys"]) | ({kwargs["label_key"]} if "label_key" in kwargs else set())


def _class(name: str):
    for module in MODULES:
        mod = importlib.import_module(f"monai_em.transforms.{module}")
        if name in getattr(mod, "__all__", ()):
            return getattr(mod, name), f"monai_em.transforms.{module}.{name}"
    raise LookupError(name)


def _build(case: str, **changes):
    name, kwargs, _ = REGISTRY[case]
    return _class(name)[0](**{**kwargs, **changes})


@pytest.fixture(scope="module")
def volume():
    em = make_em_volume((6, 28, 28), seed=3)
    return {
        "image": (em.image[None] / 255.0).astype(np.float32),
        "label": (em.label[None].astype(np.int64) + 2**33) * (em.label[None] > 0),  # ids above 2**32
        "valid_mask": (em.label[None] % 3 > 0).astype(np.uint8),
    }


def _data(case: str, volume: dict) -> dict:
    kind = REGISTRY[case][2]
    if kind == "batch":
        rng = np.random.default_rng(0)
        return {"image": rng.random((3, 1, 4, 16, 16)).astype(np.float32)}
    if kind == "copy_paste":
        label = np.zeros_like(volume["label"])
        label[:, 1:5, 4:12, 5:10] = 2**33 + 5  # one compact object leaves room for a copy
        return {"image": volume["image"], "label": label}
    return dict(volume)


def _run(t, data: dict, seed: int) -> dict:
    t.set_random_state(seed)
    return t(dict(data))


def test_registry_covers_every_public_random_transform():
    public = set()
    for module in MODULES:
        mod = importlib.import_module(f"monai_em.transforms.{module}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and issubclass(obj, Randomizable) and issubclass(obj, MapTransform):
                public.add(name)
    assert public == {name for name, _, _ in REGISTRY.values()}


@pytest.mark.parametrize("case", REGISTRY)
def test_input_types_give_the_same_result(case, volume):
    data = _data(case, volume)
    reference = _run(_build(case), data, seed=5)
    for type_name in ARRAY_TYPE_NAMES:
        typed = {k: as_type(v, type_name) for k, v in data.items()}
        out = _run(_build(case), typed, seed=5)
        for key, value in typed.items():
            res = out[key]
            if key not in _handled(case):
                assert res is value, f"{key} is not the transform's key: it must pass through untouched"
                continue
            assert isinstance(res, torch.Tensor), (type_name, key, type(res))
            if isinstance(value, torch.Tensor):
                assert res.device == value.device, (type_name, key)
            if isinstance(value, MetaTensor):
                assert isinstance(res, MetaTensor), (type_name, key)
            assert to_numpy(res).dtype == np.asarray(data[key]).dtype, (type_name, key)
            np.testing.assert_allclose(
                to_numpy(res), to_numpy(reference[key]), atol=1e-5, err_msg=f"{type_name} {key}"
            )


@pytest.mark.parametrize("case", REGISTRY)
def test_prob_zero_is_identity(case, volume):
    data = _data(case, volume)
    out = _run(_build(case, prob=0.0), data, seed=0)
    for key, value in data.items():
        np.testing.assert_array_equal(to_numpy(out[key]), value, err_msg=key)


@pytest.mark.parametrize("case", REGISTRY)
def test_same_seed_repeats_and_seeds_differ(case, volume):
    data = _data(case, volume)
    t = _build(case)
    first = _run(t, data, seed=11)
    again = _run(t, data, seed=11)
    for key in data:
        np.testing.assert_array_equal(to_numpy(first[key]), to_numpy(again[key]))
    t = _build(case, **DIFFER_CHANGES.get(case, {}))
    outs = {to_numpy(_run(t, data, seed=s)["image"]).tobytes() for s in range(6)}
    assert len(outs) > 1, "six seeds gave one result"
    labels_before = set(np.unique(data.get("label", np.zeros(1))).tolist()) | {0}
    if "label" in data and case != "copy_paste":
        assert set(np.unique(to_numpy(first["label"])).tolist()) <= labels_before


@pytest.mark.parametrize("case", REGISTRY)
def test_bundle_config_builds_the_same_transform(case, volume):
    name, kwargs, _ = REGISTRY[case]
    cls, path = _class(name)
    text = json.dumps(kwargs)  # constructor arguments must be plain JSON
    data = _data(case, volume)
    expected = _run(cls(**kwargs), data, seed=2)
    for target in (path, name):  # full path, and the short name (monai_em is imported)
        parser = ConfigParser({"aug": {"_target_": target, **json.loads(text)}})
        t = parser.get_parsed_content("aug")
        assert type(t) is cls
        out = _run(t, data, seed=2)
        for key in data:
            np.testing.assert_array_equal(to_numpy(out[key]), to_numpy(expected[key]))


def test_augmentor_builds_from_a_bundle_config():
    config = {
        "aug": {
            "_target_": "monai_em.transforms.compose.EMAugmentor.from_targets",
            "input_size": [8, 256, 256],
            "targets": {"image": "img", "label": "mask", "valid_mask": "mask"},
        }
    }
    aug = ConfigParser(config).get_parsed_content("aug")
    assert aug.sample_size == (10, 370, 370)
