"""PyTC v1.0-shaped configs: every key monai_em reads means what it means in PyTC v1.0.

The YAMLs below are written for these tests in the shape of PyTC's SNEMI / MitoEM / CREMI configs
(sizes and keys as those projects use them); expected values come from PyTC v1.0's semantics
(its ``config/defaults.py``, ``TestAugmentor``, solver and dataset builders), not from our code.
"""

from __future__ import annotations

import logging
import math
import warnings

import h5py
import numpy as np
import pytest
import torch

from monai_em.config import (
    BUNDLE_IDS,
    VolumeListInference,
    build_augmentor,
    build_inference,
    build_rejection_crop,
    build_tta,
    bundle_table,
    load_pytc_config,
    network_input_size,
    pytc_bundle_value,
)
from monai_em.inference import ChunkedInference, ImageListInference

SNEMI = """
SYSTEM: {NUM_GPUS: 4, NUM_CPUS: 4}
MODEL:
  ARCHITECTURE: unet_3d
  BLOCK_TYPE: residual_se
  INPUT_SIZE: [17, 257, 257]
  OUTPUT_SIZE: [17, 257, 257]
  IN_PLANES: 1
  OUT_PLANES: 3
  TARGET_OPT: ["2-1-1"]
  LOSS_OPTION: [["WeightedBCEWithLogitsLoss", "DiceLoss"]]
DATASET:
  IMAGE_NAME: train_image.h5
  LABEL_NAME: train_label.h5
  INPUT_PATH: datasets/SNEMI3D/
  OUTPUT_PATH: outputs/SNEMI3D/
  PAD_SIZE: [4, 64, 64]
  DISTRIBUTED: True
  REJECT_SAMPLING: {SIZE_THRES: 1000, P: 0.9, NUM_TRIAL: 20}
  MEAN: 0.5
SOLVER:
  NAME: SGD
  LR_SCHEDULER_NAME: WarmupCosineLR
  BASE_LR: 0.02
  ITERATION_SAVE: 5000
  ITERATION_TOTAL: 150000
  ITERATION_VAL: 10000
  SAMPLES_PER_BATCH: 8
  WARMUP_ITERS: 2000
INFERENCE:
  INPUT_SIZE: [17, 257, 257]
  OUTPUT_SIZE: [17, 257, 257]
  OUTPUT_ACT: ["sigmoid"]
  IMAGE_NAME: test_image.h5
  OUTPUT_PATH: outputs/SNEMI3D/test
  OUTPUT_NAME: result.h5
  PAD_SIZE: [8, 64, 64]
  AUG_MODE: mean
  AUG_NUM: None
  STRIDE: [8, 128, 128]
  SAMPLES_PER_BATCH: 16
"""

CREMI = """
MODEL:
  INPUT_SIZE: [17, 257, 257]
  TARGET_OPT: ["0", "4-2-1"]
DATASET:
  IMAGE_NAME: im_A.h5@im_B.h5@im_C.h5
  LABEL_NAME: syn_A.h5@syn_B.h5@syn_C.h5
  INPUT_PATH: datasets/CREMI/
SOLVER:
  LR_SCHEDULER_NAME: MultiStepLR
  STEPS: [80000, 90000]
  GAMMA: 0.5
  ITERATION_TOTAL: 100000
"""


def write_yaml(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- defaults as in PyTC v1.0's defaults.py


def test_v1_defaults_for_keys_that_differed():
    cfg = load_pytc_config({})
    assert cfg.get_path("AUGMENTOR.SMOOTH") is False
    assert cfg.get_path("DATASET.REJECT_SAMPLING.NUM_TRIAL") == 50
    assert cfg.get_path("DATASET.DISTRIBUTED") is False
    assert cfg.get_path("INFERENCE.AUG_NUM") is None
    assert "_SmoothLabels" not in [type(t).__name__ for t in build_augmentor(cfg).transforms]
    assert build_tta(cfg) is None


def test_snemi_shaped_config_loads_without_unknown_keys(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_pytc_config(write_yaml(tmp_path, SNEMI.replace("AUG_NUM: None", "AUG_NUM: null")))
    assert "DATASET.DISTRIBUTED" in cfg.user_keys
    assert {"MODEL.ARCHITECTURE", "SOLVER.NAME", "SOLVER.ITERATION_SAVE", "SYSTEM"} <= cfg.ignored_keys


def test_reject_sampling_num_trial_is_honoured():
    crop = build_rejection_crop({"DATASET": {"REJECT_SAMPLING": {"SIZE_THRES": 5, "NUM_TRIAL": 7}}})
    assert crop.sampler.max_trials == 7
    assert build_rejection_crop({}).sampler.max_trials == 50


def test_augmentor_enabled_false_means_no_augmentation():
    aug = build_augmentor({"MODEL": {"INPUT_SIZE": [4, 16, 16]}, "AUGMENTOR": {"ENABLED": False}})
    assert aug.augmentations == [] and aug.sample_size == (4, 16, 16)


# ---------------------------------------------------------------- INFERENCE.AUG_NUM as PyTC's TestAugmentor

# PyTC v1.0 TestAugmentor._tta_3d: itertools.product over (xflip, yflip, zflip, transpose)
_PYTC_3D = {
    4: [(x, y, False, False) for x in (0, 1) for y in (0, 1)],
    8: [(x, y, False, t) for x in (0, 1) for y in (0, 1) for t in (0, 1)],
    16: [(x, y, z, t) for x in (0, 1) for y in (0, 1) for z in (0, 1) for t in (0, 1)],
}


def _as_pytc(variants):
    """monai_em's (flip dims of (B, C, Z, Y, X), transpose) -> PyTC's (xflip, yflip, zflip, transpose)."""
    return sorted((4 in f, 3 in f, 2 in f, bool(t)) for f, t in variants)


@pytest.mark.parametrize("text", ["None", "null", "0", "'None'"])
def test_aug_num_none_or_zero_is_no_test_time_augmentation(tmp_path, text):
    # SNEMI/JWR15 write `AUG_NUM: None`, which YAML reads as the text 'None': PyTC's yacs decodes it to None
    cfg = load_pytc_config(write_yaml(tmp_path, f"INFERENCE: {{AUG_NUM: {text}}}"))
    assert cfg.get_path("INFERENCE.AUG_NUM") in (None, 0)
    assert build_tta(cfg) is None
    assert build_inference(cfg, torch.nn.Identity()).predictor.tta is None


def test_string_values_decode_as_pytc_yacs_does(tmp_path):
    cfg = load_pytc_config(
        write_yaml(tmp_path, "SOLVER: {BASE_LR: 1e-3}\nDATASET: {REJECT_SAMPLING: {P: '0.9'}}")
    )
    assert cfg.get_path("SOLVER.BASE_LR") == 0.001 and cfg.get_path("DATASET.REJECT_SAMPLING.P") == 0.9
    with pytest.raises(ValueError, match=r"DATASET.REJECT_SAMPLING.P: expected float like 0.95, got 'high'"):
        load_pytc_config({"DATASET": {"REJECT_SAMPLING": {"P": "high"}}})


@pytest.mark.parametrize("num", [4, 8, 16])
def test_aug_num_gives_pytc_variants(num):
    tta = build_tta({"INFERENCE": {"AUG_NUM": num, "AUG_MODE": "min"}})
    assert tta.merge == "min"
    got = _as_pytc(tta.variants(3, (4, 8, 8)))
    assert got == sorted(tuple(bool(v) for v in o) for o in _PYTC_3D[num])


def test_aug_num_16_with_a_2d_model_is_pytc_8():
    tta = build_tta({"INFERENCE": {"AUG_NUM": 16}, "DATASET": {"DO_2D": True}})
    assert len(tta.variants(2, (64, 64))) == 8  # PyTC caps 2D at 8: y/x flips x transpose


@pytest.mark.parametrize("bad, key", [(5, "INFERENCE.AUG_NUM"), (True, "INFERENCE.AUG_NUM")])
def test_aug_num_other_values_raise_naming_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        build_tta({"INFERENCE": {"AUG_NUM": bad}})
    with pytest.raises(ValueError, match="INFERENCE.AUG_MODE"):
        build_tta({"INFERENCE": {"AUG_NUM": 4, "AUG_MODE": "median"}})


# ---------------------------------------------------------------- DO_SINGLY with a 3D model


def _volume(path, seed, shape=(6, 20, 20)):
    data = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f["main"] = data
    return data


def test_do_singly_with_a_3d_model_runs_chunked_inference_once_per_volume(tmp_path):
    for i in range(3):
        _volume(tmp_path / f"v{i}.h5", i)
    cfg = load_pytc_config(
        {"MODEL": {"INPUT_SIZE": [4, 16, 16]},
         "INFERENCE": {"DO_SINGLY": True, "DO_SINGLY_START_INDEX": 1, "IMAGE_NAME": "v0.h5@v1.h5@v2.h5",
                       "INPUT_PATH": str(tmp_path), "OUTPUT_PATH": str(tmp_path / "out"), "STRIDE": [2, 8, 8], "PAD_SIZE": [1, 4, 4]}}
    )  # fmt: skip
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 2, 3, padding=1).eval()
    runner = build_inference(cfg, net, progress=False)
    assert isinstance(runner, VolumeListInference)
    from monai_em.config import volume_paths

    outs = runner(volume_paths(cfg, "INFERENCE")["image"])
    assert [o.name for o in outs] == ["v1.h5", "v2.h5"]  # START_INDEX 1: v0 skipped
    assert not (tmp_path / "out" / "v0.h5").exists()
    # each equals the plain 3D inference of that volume
    ref = ChunkedInference(
        net, roi_size=(4, 16, 16), output_dir=tmp_path / "ref", overlap=(0.5, 0.5, 0.5), pad_size=(1, 4, 4),
        activation="sigmoid", progress=False,
    )(tmp_path / "v2.h5")  # fmt: skip
    with h5py.File(outs[1]) as a, h5py.File(ref) as b:
        assert a["main"].shape == (2, 6, 20, 20)
        np.testing.assert_array_equal(a["main"][:], b["main"][:])


def test_do_singly_with_do_2d_streams_images():
    cfg = load_pytc_config({"DATASET": {"DO_2D": True}, "INFERENCE": {"DO_SINGLY": True}})
    assert isinstance(build_inference(cfg, torch.nn.Identity()), ImageListInference)


def test_do_singly_step_and_start_checks():
    with pytest.raises(ValueError, match="DO_SINGLY_STEP"):
        build_inference({"INFERENCE": {"DO_SINGLY": True, "DO_SINGLY_STEP": 0}}, torch.nn.Identity())


# ---------------------------------------------------------------- bundle ids from PyTC keys


def test_snemi_keys_map_onto_the_bundle_ids(tmp_path):
    cfg = load_pytc_config(write_yaml(tmp_path, SNEMI.replace("AUG_NUM: None", "AUG_NUM: 8")))

    def train(i, default=None):
        return pytc_bundle_value(cfg, i, default)

    def infer(i, default=None):
        return pytc_bundle_value(cfg, i, default, "inference")

    assert train("image_json") == "datasets/SNEMI3D/train_image.h5"
    assert train("input_size") == [17, 257, 257]
    assert train("pad_size") == [4, 64, 64]
    assert (train("reject_size_thres"), train("reject_p"), train("reject_trials")) == (1000, 0.9, 20)
    assert train("target") == "affinity"
    assert train("batch_size") == 8 and train("learning_rate") == 0.02
    assert train("lr_scheduler") == "cosine" and train("warmup_iters") == 2000
    # 150000 iterations validated every 10000: 15 epochs of 10000
    assert (train("epochs"), train("epoch_length")) == (15, 10000)
    assert infer("input_size") == [17, 257, 257]
    assert infer("infer_pad_size") == [8, 64, 64]
    assert infer("overlap") == pytest.approx([1 - 8 / 17, 1 - 128 / 257, 1 - 128 / 257], abs=1e-4)
    assert infer("sw_batch_size") == 16 and infer("tta") == 8 and infer("tta_merge") == "mean"
    assert infer("activation") == "sigmoid"
    assert (infer("output_dir"), infer("output_name")) == ("outputs/SNEMI3D/test", "result.h5")
    assert pytc_bundle_value({}, "output_dir", "eval/prediction", "inference") == "eval/prediction"
    assert infer("image_json") == "datasets/SNEMI3D/test_image.h5"  # INFERENCE.INPUT_PATH unset: DATASET's
    assert infer("infer_chunk_num") == [1, 1, 1]


def test_multistep_scheduler_and_defaults():
    cfg = load_pytc_config({"SOLVER": {"STEPS": [10, 20], "GAMMA": 0.5}})
    assert pytc_bundle_value(cfg, "lr_scheduler") == "multistep"
    assert pytc_bundle_value(cfg, "lr_steps") == [10, 20] and pytc_bundle_value(cfg, "lr_gamma") == 0.5
    assert pytc_bundle_value(cfg, "warmup_iters") == 0, "PyTC's MultiStepLR has no warm-up"
    assert pytc_bundle_value(cfg, "epochs") == math.ceil(40000 / 5000)
    assert pytc_bundle_value(None, "lr_scheduler", "constant") == "constant"


def test_scheduler_without_bundle_twin_warns_and_stays_constant(caplog):
    with caplog.at_level(logging.WARNING, logger="monai_em.config.bundle"):
        value = pytc_bundle_value({"SOLVER": {"LR_SCHEDULER_NAME": "ReduceLROnPlateau"}}, "lr_scheduler")
    assert value == "constant" and "SOLVER.LR_SCHEDULER_NAME" in caplog.text


@pytest.mark.parametrize(
    "opts, target, width",
    [(["4-2-1"], "boundary", 4), (["4-3-0"], "4-3-0", 6), (["4-3"], "boundary", 6), (["2-1-1"], "affinity", 2),
     (["4-1-1", "0"], "boundary", 2), (["0", "4-1-1"], "0", 2), (["9-3"], "9-3", 2)],
)  # fmt: skip
def test_target_opt_maps_to_the_bundle_target(opts, target, width):
    cfg = load_pytc_config({"MODEL": {"TARGET_OPT": opts}})
    assert pytc_bundle_value(cfg, "target", "x") == target
    assert pytc_bundle_value(cfg, "boundary_width", 9) == width


def test_target_opt_without_bundle_target_raises_and_unset_keeps_bundle_default():
    with pytest.raises(ValueError, match=r"MODEL.TARGET_OPT.*'1'.*synaptic polarity"):
        pytc_bundle_value({"MODEL": {"TARGET_OPT": ["1"]}}, "target", "boundary")
    with pytest.raises(ValueError, match=r"MODEL.TARGET_OPT.*4-x"):
        pytc_bundle_value({"MODEL": {"TARGET_OPT": ["4-x"]}}, "target", "boundary")
    assert pytc_bundle_value({}, "target", "boundary") == "boundary"


def test_multi_volume_names_error_naming_key_and_count(tmp_path):
    cfg = load_pytc_config(write_yaml(tmp_path, CREMI))
    with pytest.raises(ValueError, match=r"DATASET.IMAGE_NAME lists 3 volumes.*im_A.h5@im_B.h5@im_C.h5"):
        pytc_bundle_value(cfg, "image_json")


def test_start_up_table_lists_taken_defaulted_and_ignored(tmp_path):
    cfg = load_pytc_config(write_yaml(tmp_path, SNEMI.replace("AUG_NUM: None", "AUG_NUM: 4")))
    table = bundle_table(cfg, "train")
    rows = {
        line.split()[0]: line for line in table.splitlines()[2:] if not line.strip().startswith("ignored")
    }
    assert set(BUNDLE_IDS["train"]) == set(rows)
    assert rows["batch_size"].endswith("YAML") and "8" in rows["batch_size"]
    assert rows["chunk_iter"].endswith("PyTC default") and "1000" in rows["chunk_iter"]
    ignored = "\n".join(line for line in table.splitlines() if "ignored" in line)
    assert "DATASET.MEAN" in ignored and "MODEL.ARCHITECTURE" in ignored and "INFERENCE.STRIDE" in ignored
    assert "SOLVER.BASE_LR" not in ignored
    infer = bundle_table(cfg, "inference")
    assert "SOLVER.BASE_LR" in infer and "tta " in infer


@pytest.mark.parametrize(
    "size, strides, fitted",
    [([17, 257, 257], [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2]], [16, 256, 256]),
     ([8, 64, 64], [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2]], [8, 64, 64]),
     ([1, 257, 129], [[1, 1], [2, 2], [2, 2], [2, 2]], [1, 256, 128]),
     ([1, 5, 5], [[1, 1, 1], [2, 2, 2]], [2, 4, 4])],
)  # fmt: skip
def test_network_input_size_fits_the_strides(size, strides, fitted, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_em.config.bundle"):
        assert network_input_size(size, strides) == fitted
    assert (str(size) in caplog.text) == (size != fitted)


def test_rescale_fix_aspect_reaches_the_transform():
    aug = build_augmentor({"AUGMENTOR": {"RESCALE": {"FIX_ASPECT": True}}})
    rescale = next(t for t in aug.transforms if type(t).__name__ == "RandRescaled")
    assert rescale.transform.fix_aspect is True


def test_test_num_and_test_id_give_this_process_its_share():
    runner = build_inference({"INFERENCE": {"TEST_NUM": 4, "TEST_ID": 2}}, torch.nn.Identity())
    assert (runner.rank, runner.world_size) == (2, 4)
    with pytest.raises(ValueError, match="INFERENCE.TEST_ID / TEST_NUM"):
        build_inference({"INFERENCE": {"TEST_NUM": 2, "TEST_ID": 2}}, torch.nn.Identity())


def test_unsupported_v1_keys_warn_apart_from_typos():
    with pytest.warns(
        UserWarning, match=r"PyTC v1.0 keys that monai_em does not support, ignored: DATASET.DATA_SCALE"
    ):
        load_pytc_config({"DATASET": {"DATA_SCALE": [1.0, 0.5, 0.5]}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_pytc_config({"DATASET": {"DATA_SCALE": [1.0, 0.5, 0.5]}})
    assert not any("typo" in str(w.message) for w in caught)


def test_multi_volume_names_train_on_every_volume_padded_as_pytc(tmp_path):
    shapes = [(6, 40, 40), (8, 48, 40)]
    for i, shape in enumerate(shapes):
        vol = np.full(shape, 10 * (i + 1), np.uint8)
        vol[0] = 0  # a marker section: reflect padding mirrors section 1, not 0
        with h5py.File(tmp_path / f"im{i}.h5", "w") as f:
            f["main"] = vol
        with h5py.File(tmp_path / f"seg{i}.h5", "w") as f:
            f["main"] = np.ones(shape, np.uint16)
    cfg = load_pytc_config(
        {"MODEL": {"INPUT_SIZE": [4, 16, 16]}, "AUGMENTOR": {"ENABLED": False},
         "DATASET": {"INPUT_PATH": str(tmp_path), "IMAGE_NAME": "im0.h5@im1.h5", "LABEL_NAME": "seg0.h5@seg1.h5",
                     "PAD_SIZE": [1, 2, 3]}}
    )  # fmt: skip
    from monai_em.config import build_train_dataset

    ds = build_train_dataset(cfg, samples_per_epoch=40)
    for vols, shape in zip(ds.volumes, shapes, strict=True):
        assert vols["image"].shape == (1, shape[0] + 2, shape[1] + 4, shape[2] + 6)
        assert vols["image"][0, 0, 5, 5] == vols["image"][0, 2, 5, 5], "reflect padding mirrors section 1"
    seen = set()
    for i in range(40):
        item = ds[i]
        item = item[0] if isinstance(item, list) else item
        assert tuple(item["image"].shape) == (1, 4, 16, 16)
        seen |= set(np.unique(np.asarray(item["image"])).tolist()) - {0}
    assert seen == {10, 20}, "both volumes are sampled"


@pytest.mark.parametrize(
    "config, bundle_id, key",
    [({"SOLVER": {"ITERATION_TOTAL": 0}}, "epochs", "SOLVER.ITERATION_TOTAL"),
     ({"SOLVER": {"ITERATION_VAL": 0}}, "epoch_length", "SOLVER.ITERATION_VAL"),
     ({"SOLVER": {"SAMPLES_PER_BATCH": 0}}, "batch_size", "SOLVER.SAMPLES_PER_BATCH"),
     ({"SOLVER": {"BASE_LR": -0.1}}, "learning_rate", "SOLVER.BASE_LR"),
     ({"INFERENCE": {"SAMPLES_PER_BATCH": 0}}, "sw_batch_size", "INFERENCE.SAMPLES_PER_BATCH"),
     ({"INFERENCE": {"STRIDE": [0, 8, 8]}}, "overlap", "INFERENCE.STRIDE"),
     ({"DATASET": {"IMAGE_NAME": "a.h5@"}}, "image_json", "DATASET.IMAGE_NAME")],
)  # fmt: skip
def test_out_of_range_values_raise_naming_the_pytc_key(config, bundle_id, key):
    bundle = (
        "inference"
        if bundle_id in BUNDLE_IDS["inference"] and bundle_id not in BUNDLE_IDS["train"]
        else "train"
    )
    with pytest.raises(ValueError, match=rf"PyTC config key {key}"):
        pytc_bundle_value(config, bundle_id, None, bundle)
