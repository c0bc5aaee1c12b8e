"""The bundle driven by a PyTorch Connectomics YAML (``--pytc_config``)."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume

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
