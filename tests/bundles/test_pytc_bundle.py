"""The bundle driven by a PyTorch Connectomics YAML (``--pytc_config``)."""

from __future__ import annotations

import h5py
import pytest
import torch
from monai.bundle import ConfigParser

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.training import read_checkpoint

from .test_bundle import CONFIGS, run_bundle


@pytest.fixture(scope="module")
def pytc_yaml(tmp_path_factory):
    """A PyTC config naming tile JSONs relative to INPUT_PATH, with PyTC-style augmentation switches."""
    root = tmp_path_factory.mktemp("pytc")
    vol = make_em_volume((12, 64, 64), seed=5)
    write_tiled_volume(vol.image, root / "im", tile_size=32, json_name="im.json")
    write_tiled_volume(vol.label, root / "seg", tile_size=32, json_name="seg.json")
    path = root / "MitoEM-tiny.yaml"
    path.write_text(
        f"""
MODEL: {{INPUT_SIZE: [4, 32, 32]}}
DATASET:
  INPUT_PATH: {root}
  IMAGE_NAME: im/im.json
  LABEL_NAME: seg/seg.json
  DATA_CHUNK_NUM: [2, 1, 1]
  DATA_CHUNK_ITER: 3
  REJECT_SAMPLING: {{SIZE_THRES: 100, P: 0.9}}
AUGMENTOR:
  ELASTIC: {{P: 0.25}}
  MISALIGNMENT: {{ENABLED: False}}
SOLVER: {{BASE_LR: 0.01}}
"""
    )
    return path


def test_pytc_yaml_sets_the_bundle_ids(pytc_yaml):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser["pytc_config"] = str(pytc_yaml)
    assert parser.get_parsed_content("input_size") == [4, 32, 32]
    assert parser.get_parsed_content("chunk_num") == [2, 1, 1]
    assert parser.get_parsed_content("chunk_iter") == 3
    assert parser.get_parsed_content("image_json") == str(pytc_yaml.parent / "im/im.json")
    crop = parser.get_parsed_content("train#crop")
    assert (crop.sampler.size_thres, crop.sampler.reject_p) == (100, 0.9)
    transforms = parser.get_parsed_content("train#augmentor").augmentations
    names = [type(t).__name__ for t in transforms]
    assert "RandMisAlignmentd" not in names
    elastic = transforms[names.index("RandSectionElasticd")]
    assert elastic.prob == 0.25
    # a command-line id still wins over the PyTC file
    parser["chunk_iter"] = 7
    assert parser.get_parsed_content("chunk_iter") == 7


def test_without_pytc_yaml_the_bundle_defaults_stand():
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    assert parser.get_parsed_content("input_size") == [8, 64, 64]
    assert parser.get_parsed_content("image_json") is None
    names = [type(t).__name__ for t in parser.get_parsed_content("train#augmentor").augmentations]
    assert "RandMisAlignmentd" in names


def test_bundle_cli_trains_with_pytc_config(pytc_yaml, tmp_path):
    run_bundle(
        ["train.yaml"], tmp_path, "--pytc_config", pytc_yaml, "--net_filters", "[4, 8, 16, 32]",
        "--num_threads", 1, "--val_sections", 4, "--epochs", 1, "--epoch_length", 2, "--batch_size", 1,
    )  # fmt: skip
    assert (tmp_path / "models" / "final_model.pt").is_file()


def test_bundle_ids_win_over_the_pytc_augmentation_switches(pytc_yaml):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser["pytc_config"] = str(pytc_yaml)
    parser["aug_disabled"] = ["rescale", "cutblur"]
    parser["do_2d"] = True
    names = [type(t).__name__ for t in parser.get_parsed_content("train#augmentor").augmentations]
    assert "RandRescaled" not in names and "RandCutBlurd" not in names
    assert "RandMissingSectiond" not in names, "do_2d drops MissingSection"
    assert "RandSectionElasticd" in names


def test_pytc_input_size_that_does_not_fit_the_network_is_fitted(tmp_path, caplog):
    """SNEMI/MitoEM/CREMI's [17, 257, 257]: the bundle's DynUNet needs multiples of [2, 8, 8]."""
    cfg = tmp_path / "snemi.yaml"
    cfg.write_text("MODEL: {INPUT_SIZE: [17, 257, 257]}\n")
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser["pytc_config"] = str(cfg)
    parser["net_filters"] = [2, 4, 8, 16]
    assert parser.get_parsed_content("input_size") == [17, 257, 257]
    assert parser.get_parsed_content("net_input_size") == [16, 256, 256]
    assert parser.get_parsed_content("train#augmentor").input_size == (16, 256, 256)
    assert tuple(parser.get_parsed_content("train#crop").sampler.test_size) == (16, 256, 256)
    net = parser.get_parsed_content("network_def")
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 16, 256, 256)).shape == (1, 1, 16, 256, 256)
        with pytest.raises(RuntimeError):  # what the unfitted size did: a crash deep inside the network
            net(torch.zeros(1, 1, 17, 257, 257))


@pytest.mark.slow  # ~25 s: two bundle runs
def test_pytc_config_trains_then_predicts_through_both_bundles(tmp_path, capfd):
    """TARGET_OPT, SOLVER.*, PAD_SIZE and INFERENCE.* from one PyTC file; no validation -> model.pt anyway."""
    vol = make_em_volume((12, 64, 64), seed=6)
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f["main"] = vol.image
    with h5py.File(tmp_path / "seg.h5", "w") as f:
        f["main"] = vol.label
    with h5py.File(tmp_path / "test.h5", "w") as f:
        f["main"] = vol.image[:8, :40, :48]
    cfg = tmp_path / "pytc.yaml"
    cfg.write_text(
        f"""
MODEL: {{INPUT_SIZE: [5, 33, 33], TARGET_OPT: ["2-1-1"]}}
DATASET: {{INPUT_PATH: {tmp_path}, IMAGE_NAME: train.h5, LABEL_NAME: seg.h5, PAD_SIZE: [1, 4, 4]}}
SOLVER: {{SAMPLES_PER_BATCH: 1, ITERATION_TOTAL: 3, ITERATION_VAL: 2, BASE_LR: 0.01}}
INFERENCE:
  IMAGE_NAME: test.h5
  OUTPUT_PATH: {tmp_path / "pred"}
  OUTPUT_NAME: result.h5
  STRIDE: [2, 16, 16]
  AUG_NUM: 4
  SAMPLES_PER_BATCH: 2
"""
    )
    common = ["--pytc_config", cfg, "--net_filters", "[4, 8, 16, 32]", "--num_threads", 1]
    proc = run_bundle(["train.yaml"], tmp_path, *common, "--val_sections", 0)
    assert "batch_size" in proc.stdout and "epochs" in proc.stdout  # the start-up table
    assert (tmp_path / "models" / "model.pt").is_file(), "no validation ran: the last weights are model.pt"
    state = read_checkpoint(tmp_path / "models" / "model.pt")["model"]
    out_channels = [
        v.shape[0] for k, v in state.items() if k.startswith("output_block") and k.endswith("bias")
    ]
    assert out_channels == [3], "TARGET_OPT 2-1-1: a 3-channel affinity network"
    run_bundle(["inference.yaml"], tmp_path, *common)
    with h5py.File(tmp_path / "pred" / "result.h5") as f:
        assert f["main"].shape == (3, 8, 40, 48)


def test_missing_checkpoint_is_one_clear_exit_in_process(tmp_path):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "inference.yaml")
    parser["bundle_root"] = str(tmp_path)
    with pytest.raises(SystemExit, match=r"checkpoint .*models/model.pt not found: train first"):
        parser.get_parsed_content("initialize")
    assert list(tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.slow  # ~11 s: MONAI's CLI in a subprocess
def test_inference_without_checkpoint_says_so_first(tmp_path):
    import os
    import subprocess
    import sys

    from .test_bundle import META, REPO

    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.yaml"),
           "--meta_file", str(META), "--bundle_root", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # MONAI's own warning about _target_ in configs
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("error: checkpoint") and str(tmp_path / "models" / "model.pt") in first
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "eval").exists(), "nothing written"
