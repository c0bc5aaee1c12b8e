import json
import warnings

import numpy as np
import pytest
import torch

from monai_em.config import (
    build_augmentor,
    build_inference,
    build_rejection_crop,
    build_train_dataset,
    build_train_transform,
    load_pytc_config,
    volume_paths,
)
from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.inference import ChunkedInference, ImageListInference
from monai_em.transforms.compose import EMAugmentor

ISSUE_SNIPPET = """
AUGMENTOR:
  ADDITIONAL_TARGETS_NAME: ['label', 'valid_mask']
  ADDITIONAL_TARGETS_TYPE: ['mask', 'mask']
  MISALIGNMENT:
    ENABLED: False
DATASET:
  REJECT_SAMPLING:
    SIZE_THRES: 1000
    P: 0.95
  VALID_MASK_NAME: valid.json
  DO_CHUNK_TITLE: 1
  DATA_CHUNK_NUM: [2, 4, 4]
  DATA_CHUNK_ITER: 5000
  DO_2D: True
  LOAD_2D: True
INFERENCE:
  IMAGE_NAME: datasets/test_path.txt
  IS_ABSOLUTE_PATH: True
  DO_SINGLY: True
"""

MITOEM = """
SYSTEM: {NUM_GPUS: 4, NUM_CPUS: 8}
MODEL:
  ARCHITECTURE: unet_residual_3d
  INPUT_SIZE: [17, 129, 129]
  OUTPUT_SIZE: [17, 129, 129]
  TARGET_OPT: ["0", "4-2-1"]
DATASET:
  IMAGE_NAME: im_train.json
  LABEL_NAME: mito_train.json
  INPUT_PATH: datasets/MitoEM/
  OUTPUT_PATH: outputs/MitoEM/
  PAD_SIZE: [4, 64, 64]
  DO_CHUNK_TITLE: 1
  DATA_CHUNK_NUM: [8, 2, 2]
  DATA_CHUNK_ITER: 2500
  REJECT_SAMPLING: {SIZE_THRES: 1000, P: 0.95}
AUGMENTOR:
  ROTATE: {ROT90: False}
  MISSINGPARTS: {ITER: 32}
SOLVER: {BASE_LR: 0.04, ITERATION_TOTAL: 150000}
INFERENCE:
  INPUT_SIZE: [17, 129, 129]
  OUTPUT_SIZE: [17, 129, 129]
  IMAGE_NAME: im_test.json
  OUTPUT_PATH: outputs/MitoEM/test
  OUTPUT_NAME: result.h5
  PAD_SIZE: [4, 64, 64]
  AUG_MODE: mean
  AUG_NUM: 4
  STRIDE: [8, 64, 64]
  DO_CHUNK_TITLE: 1
"""


def write_yaml(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def describe(transform):
    """A transform's class, keys, per-key modes, probability and plain-valued parameters."""
    inner = getattr(transform, "transform", transform)
    params = {
        k: v
        for k, v in sorted(vars(inner).items())
        if isinstance(v, (bool, int, float, str, tuple)) and not k.startswith("_") and k != "R"
    }
    return (
        type(transform).__name__,
        tuple(getattr(transform, "keys", None) or ()),
        tuple(getattr(transform, "mode", ()))
        if not isinstance(getattr(transform, "mode", ()), str)
        else transform.mode,
        getattr(transform, "prob", None),
        params,
    )


def pipeline(augmentor):
    return [describe(t) for t in augmentor.transforms]


def test_issue_snippet_equals_hand_written_pipeline(tmp_path):
    cfg = load_pytc_config(write_yaml(tmp_path, ISSUE_SNIPPET))
    hand = EMAugmentor.from_targets(
        (8, 256, 256),
        {"image": "img", "label": "mask", "valid_mask": "mask"},
        smooth_labels=False,  # PyTC v1.0's AUGMENTOR.SMOOTH default
        do_2d=True,
        disabled=["misalignment"],
        missingparts={"iterations": 64, "section_prob": 0.9, "prob": 0.9},
    )
    built = build_augmentor(cfg)
    assert pipeline(built) == pipeline(hand)
    names = [type(t).__name__ for t in built.transforms]
    # DO_2D drops MissingSection and MisAlignment
    assert "RandMissingSectiond" not in names and "RandMisAlignmentd" not in names
    # ADDITIONAL_TARGETS: mask keys get nearest interpolation in every geometric transform
    for t in built.transforms:
        if type(t).__name__ in ("RandRotateXYd", "RandRescaled", "RandFlipTransposed", "RandSectionElasticd"):
            assert dict(zip(t.keys, t.mode, strict=True)) == {
                "image": "bilinear",
                "label": "nearest",
                "valid_mask": "nearest",
            }
        if type(t).__name__ in ("RandGrayscaled", "RandCutNoised", "RandCutBlurd", "RandMotionBlurd"):
            assert tuple(t.keys) == ("image",)


def test_issue_snippet_rejection_crop_and_inference(tmp_path):
    cfg = load_pytc_config(write_yaml(tmp_path, ISSUE_SNIPPET))
    crop = build_rejection_crop(cfg)
    sampler = crop.sampler
    assert (sampler.size_thres, sampler.reject_p, sampler.valid_ratio) == (1000, 0.95, 0.5)
    assert crop.valid_key == "valid_mask" and crop.label_key == "label"
    assert tuple(sampler.test_size) == (8, 256, 256)
    runner = build_inference(cfg, torch.nn.Identity())
    assert isinstance(runner, ImageListInference) and runner.roi == (256, 256)
    assert volume_paths(cfg, "INFERENCE")["image"] == ["datasets/test_path.txt"]


@pytest.mark.parametrize(
    "input_size, sample_size, rot90",
    [((8, 256, 256), (10, 370, 370), True), ((17, 129, 129), (19, 212, 212), True),
     ((9, 65, 65), (11, 132, 132), True), ((8, 256, 256), (10, 505, 505), False)],
)  # fmt: skip
def test_planner_check_values_from_model_input_size(input_size, sample_size, rot90):
    cfg = load_pytc_config(
        {"MODEL": {"INPUT_SIZE": list(input_size)}, "AUGMENTOR": {"ROTATE": {"ROT90": rot90}}}
    )
    assert build_augmentor(cfg).sample_size == sample_size
    assert tuple(build_rejection_crop(cfg).sampler.spatial_size) == sample_size


@pytest.mark.parametrize("section", ["ROTATE", "RESCALE", "FLIP", "ELASTIC", "GRAYSCALE", "MISSINGPARTS",
                                     "MISSINGSECTION", "MISALIGNMENT", "MOTIONBLUR", "CUTBLUR", "CUTNOISE"])  # fmt: skip
def test_enabled_false_removes_exactly_that_transform(section):
    full = [type(t).__name__ for t in build_augmentor({}).transforms]
    less = [
        type(t).__name__ for t in build_augmentor({"AUGMENTOR": {section: {"ENABLED": False}}}).transforms
    ]
    removed = [n for n in full if n not in less]
    assert len(removed) == 1 and len(less) == len(full) - 1


def test_skip_and_parameters_reach_the_transforms():
    aug = build_augmentor(
        {"AUGMENTOR": {"ELASTIC": {"ALPHA": 8.0, "SIGMA": 2.0, "SKIP": ["valid_mask"]},
                       "ADDITIONAL_TARGETS_NAME": ["label", "valid_mask"],
                       "ADDITIONAL_TARGETS_TYPE": ["mask", "mask"]}}
    )  # fmt: skip
    elastic = next(t for t in aug.transforms if type(t).__name__ == "RandSectionElasticd")
    assert tuple(elastic.keys) == ("image", "label")
    assert (elastic.transform.alpha, elastic.transform.sigma) == (8.0, 2.0)


def test_mitoem_config_builds_tiled_training_and_chunked_inference(tmp_path):
    cfg = load_pytc_config(write_yaml(tmp_path, MITOEM))
    assert cfg.get_path("DATASET.DATA_CHUNK_NUM") == [8, 2, 2]
    aug = build_augmentor(cfg)
    assert aug.input_size == (17, 129, 129)
    assert "RandRotateXYd" in [type(t).__name__ for t in aug.transforms]
    assert aug.sample_size[1] > 212, "arbitrary rotation (ROT90: False) needs a larger sample"
    runner = build_inference(cfg, torch.nn.Identity())
    assert isinstance(runner, ChunkedInference)
    assert tuple(runner.chunk_num) == (8, 2, 2)
    assert volume_paths(cfg)["image"] == ["datasets/MitoEM/im_train.json"]


def test_tiled_training_dataset_from_config_yields_input_size_samples(tmp_path):
    vol = make_em_volume((12, 96, 96), seed=0)
    image = write_tiled_volume(vol.image, tmp_path / "im", tile_size=48, json_name="im.json")
    label = write_tiled_volume(vol.label, tmp_path / "lab", json_name="lab.json")
    cfg = load_pytc_config(
        {
            "MODEL": {"INPUT_SIZE": [4, 32, 32]},
            "DATASET": {"IMAGE_NAME": str(image), "LABEL_NAME": str(label), "IS_ABSOLUTE_PATH": True,
                        "DO_CHUNK_TITLE": 1, "DATA_CHUNK_NUM": [1, 1, 1], "DATA_CHUNK_ITER": 3,
                        "PAD_SIZE": [0, 0, 0], "REJECT_SAMPLING": {"SIZE_THRES": 10, "P": 1.0}},
        }
    )  # fmt: skip
    ds = build_train_dataset(cfg, num_rounds=1, prefetch=False)
    samples = list(ds)
    assert len(samples) == 3
    for s in samples:
        assert tuple(s["image"].shape) == (1, 4, 32, 32) and tuple(s["label"].shape) == (1, 4, 32, 32)


def test_whole_volume_training_dataset_from_hdf5(tmp_path):
    import h5py

    vol = make_em_volume((12, 80, 80), seed=1)
    with h5py.File(tmp_path / "im.h5", "w") as f:
        f["main"] = vol.image
    with h5py.File(tmp_path / "lab.h5", "w") as f:
        f["main"] = vol.label
    cfg = load_pytc_config(
        {"MODEL": {"INPUT_SIZE": [4, 24, 24]},
         "DATASET": {"INPUT_PATH": str(tmp_path), "IMAGE_NAME": "im.h5", "LABEL_NAME": "lab.h5"}}
    )  # fmt: skip
    ds = build_train_dataset(cfg, samples_per_epoch=2)
    item = ds[0]
    item = item[0] if isinstance(item, list) else item
    assert tuple(item["image"].shape) == (1, 4, 24, 24)
    ids = np.unique(np.asarray(item["label"]))
    assert set(ids.tolist()) <= set(np.unique(vol.label).tolist()) | {0}


def test_misspelled_key_warns_naming_it(tmp_path):
    text = ISSUE_SNIPPET.replace("MISALIGNMENT:", "MISALIGNMNT:").replace(
        "DATA_CHUNK_ITER", "DATA_CHUNK_ITERS"
    )
    with pytest.warns(
        UserWarning,
        match=r"AUGMENTOR\.MISALIGNMNT.*DATASET\.DATA_CHUNK_ITERS|DATASET\.DATA_CHUNK_ITERS.*AUGMENTOR\.MISALIGNMNT",
    ):
        load_pytc_config(write_yaml(tmp_path, text))


def test_known_keys_do_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pytc_config(write_yaml(tmp_path, MITOEM))


@pytest.mark.parametrize(
    "bad, key",
    [({"DATASET": {"REJECT_SAMPLING": {"P": "high"}}}, "DATASET.REJECT_SAMPLING.P"),
     ({"MODEL": {"INPUT_SIZE": [8, "256", 256]}}, r"MODEL.INPUT_SIZE\[1\]"),
     ({"AUGMENTOR": {"FLIP": {"ENABLED": "yes"}}}, "AUGMENTOR.FLIP.ENABLED"),
     ({"DATASET": {"DATA_CHUNK_NUM": 4}}, "DATASET.DATA_CHUNK_NUM"),
     ({"AUGMENTOR": {"ELASTIC": 3}}, "AUGMENTOR.ELASTIC")],
)  # fmt: skip
def test_wrong_type_raises_naming_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        load_pytc_config(bad)


def test_mismatched_targets_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="ADDITIONAL_TARGETS_NAME"):
        load_pytc_config({"AUGMENTOR": {"ADDITIONAL_TARGETS_NAME": ["label", "valid_mask"]}})
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_pytc_config(tmp_path / "nope.yaml")


def test_base_then_experiment_merge_order(tmp_path):
    base = write_yaml(tmp_path, "DATASET: {DATA_CHUNK_ITER: 10, DATA_CHUNK_NUM: [2, 2, 2]}", "base.yaml")
    exp = write_yaml(tmp_path, "DATASET: {DATA_CHUNK_ITER: 20}", "exp.yaml")
    cfg = load_pytc_config(exp, base)
    assert cfg.get_path("DATASET.DATA_CHUNK_ITER") == 20 and cfg.get_path("DATASET.DATA_CHUNK_NUM") == [
        2,
        2,
        2,
    ]
    json.dumps(cfg)  # plain data, serialisable for bundle configs


def test_copy_paste_enabled_appends_it_before_the_crop():
    aug = build_augmentor({"AUGMENTOR": {"COPYPASTE": {"ENABLED": True, "P": 0.6, "AUG_THRES": 0.5}}})
    names = [type(t).__name__ for t in aug.transforms]
    i = names.index("RandCopyPasted")
    assert names[i + 1] == "_CentreCrop" and aug.transforms[i].prob == 0.6
    assert aug.sample_size == build_augmentor({}).sample_size


def test_valid_mask_name_alone_makes_the_mask_travel_with_the_label():
    cfg = load_pytc_config(
        {
            "MODEL": {"INPUT_SIZE": [4, 24, 24]},
            "DATASET": {"VALID_MASK_NAME": "valid.json"},
            "AUGMENTOR": {"SMOOTH": False},  # smoothing reshapes the label only
        }
    )  # ADDITIONAL_TARGETS_NAME stays PyTC's default ['label']
    transform = build_train_transform(cfg)
    transform.set_random_state(seed=3)
    mask = (make_em_volume((10, 80, 80), seed=2).label % 2).astype(np.uint8)[None]
    for _ in range(5):
        out = transform({"image": mask.astype(np.float32), "label": mask, "valid_mask": mask.copy()})
        out = out[0] if isinstance(out, list) else out
        np.testing.assert_array_equal(np.asarray(out["valid_mask"]), np.asarray(out["label"]))


def test_2d_config_builds_a_2d_chunked_inference(tmp_path):
    cfg = load_pytc_config(
        {"MODEL": {"INPUT_SIZE": [1, 32, 32]},
         "DATASET": {"DO_2D": True, "PAD_SIZE": [0, 4, 4]},
         "INFERENCE": {"OUTPUT_PATH": str(tmp_path), "STRIDE": [1, 16, 16]}}
    )  # fmt: skip
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    runner = build_inference(cfg, net, progress=False)
    out = runner(np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8))
    import h5py

    with h5py.File(out) as f:
        assert f["main"].shape == (2, 3, 40, 40)
