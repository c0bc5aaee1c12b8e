"""evaluate_segmentation and the bundle's evaluate.yaml: prediction -> segmentation -> JSON / CSV scores."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from monai.bundle import ConfigParser

from monai_em.segmentation import evaluate_segmentation, ground_truth
from monai_em.transforms.targets import BoundaryTarget

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "em_segmentation" / "configs"


def cubes_volume():
    """(16, 32, 32) label of 8 touching blocks, an image with dark 3D boundaries, and their boundary map."""
    gt = np.zeros((16, 32, 32), np.int64)
    for i, (z, y, x) in enumerate(np.ndindex(2, 2, 2)):
        gt[z * 8 : (z + 1) * 8, y * 16 : (y + 1) * 16, x * 16 : (x + 1) * 16] = i + 1
    boundary = BoundaryTarget(width=2, in_plane=False)(gt[None]).numpy()[0]
    image = np.where(boundary > 0, 40, 200).astype(np.uint8)
    return gt, image, boundary


def test_membrane_mask_ground_truth_per_section():
    mask = np.full((2, 5, 7), 255, np.uint8)
    mask[:, :, 3] = 0  # one membrane line splits each section in two cells
    inst, boundary = ground_truth(mask, "membrane_mask", in_plane=True)
    assert len(np.unique(inst[inst > 0])) == 4 and np.all(inst[:, :, 3] == 0)
    assert np.array_equal(boundary, mask == 0)
    with pytest.raises(ValueError, match="label_convention must be one of"):
        ground_truth(mask, "ids", in_plane=True)


def test_evaluate_rows_and_files(tmp_path):
    gt, image, boundary = cubes_volume()
    rows = evaluate_segmentation(boundary[None], gt, image=image, output_dir=tmp_path)
    names = [r["name"] for r in rows]
    assert names[0] == "model" and names[1].startswith("grey threshold") and names[2].startswith("oracle")
    for r in rows:  # the prediction, the dark voxels and the oracle are all the true boundary here
        assert r["vi"] == pytest.approx(0.0, abs=1e-9) and r["arand"] == pytest.approx(0.0, abs=1e-9)
        assert r["boundary_f1"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "metrics.json").read_text()) == rows
    with open(tmp_path / "metrics.csv") as f:
        assert [r["name"] for r in csv.DictReader(f)] == names
    with h5py.File(tmp_path / "segmentation.h5") as f:
        assert f["main"].shape == gt.shape and len(np.unique(f["main"][()])) == 8
    # an empty prediction (no boundary) merges everything: the scores say so
    merged = evaluate_segmentation(np.zeros((1, *gt.shape), np.float32), gt, baselines=False)
    assert (
        merged[0]["vi_merge"] == pytest.approx(3.0) and merged[0]["segments"] == 1
    )  # 8 equal blocks: log2 8
    with pytest.raises(ValueError, match="does not cover the label"):
        evaluate_segmentation(boundary[None, :4], gt)


def test_evaluate_yaml_through_the_bundle_cli(tmp_path):
    gt, image, boundary = cubes_volume()
    with h5py.File(tmp_path / "label.h5", "w") as f:
        f["main"] = gt
    with h5py.File(tmp_path / "image.h5", "w") as f:
        f["main"] = image
    pred_dir = tmp_path / "eval" / "prediction"
    pred_dir.mkdir(parents=True)
    with h5py.File(pred_dir / "prediction.h5", "w") as f:  # as inference.yaml writes it: uint8 255 * p
        f["main"] = (boundary[None, 4:] * 255).astype(np.uint8)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "evaluate.yaml"),
           "--meta_file", str(CONFIGS / "metadata.json"), "--bundle_root", str(tmp_path),
           "--label_json", str(tmp_path / "label.h5"), "--image_json", str(tmp_path / "image.h5"),
           "--z_range", "[4, None]"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "eval" / "segmentation" / "metrics.json").read_text())
    assert rows[0]["name"] == "model" and rows[0]["vi"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("target", "channels", "loss", "cls"),
    [
        ("membrane", 1, "bce+dice", "BinaryTargetd"),
        ("9-3", 3, "ce", "SemanticTargetd"),
        ("5", 1, "mse", "DistanceTargetd"),
    ],
)
def test_train_yaml_wires_every_target(target, channels, loss, cls):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser["target"] = target
    assert parser.get_parsed_content("out_channels") == channels
    assert parser.get_parsed_content("loss").loss == loss
    active = [t for t in parser.get_parsed_content("target_transforms") if t is not None]
    assert [type(t).__name__ for t in active] == [cls]


def test_train_yaml_validates_on_vi_and_keeps_the_lowest(tmp_path):
    """A tiny training run with ``val_metric: vi``: the log shows val_vi, the best checkpoint is written."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.yaml"),
           "--meta_file", str(CONFIGS / "metadata.json"), "--bundle_root", str(tmp_path),
           "--logging_file", str(CONFIGS / "logging.conf"),
           "--input_size", "[4, 32, 32]", "--net_filters", "[4, 8, 16, 32]", "--num_threads", "1",
           "--synthetic_shape", "[12, 64, 64]", "--val_sections", "4", "--epochs", "2", "--epoch_length", "2",
           "--batch_size", "1", "--val_metric", "vi"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "val_vi" in log
    assert (tmp_path / "models" / "model.pt").is_file()


def test_segmentation_metric_scores_a_perfect_and_an_empty_prediction():
    from monai_em.segmentation import SegmentationMetric

    gt, _, boundary = cubes_volume()
    metric = SegmentationMetric("vi")
    metric.reset()
    metric.update((boundary[None], gt[None]))
    assert metric.compute() == pytest.approx(0.0, abs=1e-9)
    metric.update((np.zeros((1, *gt.shape), np.float32), gt[None]))  # one segment: merge = log2(8)
    assert metric.compute() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="metric must be one of"):
        SegmentationMetric("f1")
