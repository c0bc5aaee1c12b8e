"""Inference scales intensities as training does (train.yaml's scale_intensity with the same intensity_max)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_em.inference import ChunkedInference, ImageListInference

from .helpers import Counted, Pointwise

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "em_segmentation" / "configs"


def parsed(config: str, item: str, **overrides):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / config))
    for k, v in overrides.items():
        parser[k] = v
    return parser.get_parsed_content(item)


def training_scaled(image: np.ndarray, intensity_max: int) -> np.ndarray:
    """What the training pipeline feeds the network: train.yaml's scale_intensity transforms."""
    data = {"image": image[None]}
    for t in parsed("train.yaml", "scale_intensity", intensity_max=intensity_max):
        data = t(data)
    return np.asarray(data["image"])


@pytest.fixture(scope="module")
def uint16_volume():
    vol = np.random.default_rng(3).integers(0, 4096, size=(4, 12, 12), dtype=np.uint16)
    vol[0, 0, :3] = (0, 4095, 5000)  # the range ends, and one value above intensity_max (training clips it)
    return vol


def test_chunked_bundle_inference_feeds_uint16_input_as_training(uint16_volume, tmp_path):
    scale = parsed("inference.yaml", "inferer#intensity_scale", intensity_max=4095)
    assert parsed("inference.yaml", "intensity_max") == 255  # the default, as train.yaml's
    net = Counted(Pointwise(), record=True)
    ChunkedInference(net, (4, 12, 12), tmp_path, intensity_scale=scale, overlap=0.0, progress=False,
                     output_dtype="float32")(uint16_volume)  # fmt: skip
    assert net.calls == 1  # one window: the whole volume
    fed = net.inputs[0][0].numpy()
    want = training_scaled(uint16_volume, 4095)
    np.testing.assert_allclose(fed, want, rtol=1e-6, atol=0)
    assert (
        fed.max() == 1.0
        and fed[0, 0, 0, 1] == pytest.approx(1.0)
        and fed[0, 0, 0, 2] == 1.0
        and want.max() == 1.0
    )


def test_2d_bundle_inference_feeds_uint16_input_as_training(uint16_volume, tmp_path):
    scale = parsed("inference_2d.yaml", "inferer#intensity_scale", intensity_max=4095)
    net = Counted(Pointwise(dims=2), record=True)
    infer = ImageListInference(net, (12, 12), tmp_path, intensity_scale=scale, overlap=0.0, output_ext="npy",
                               output_dtype="float32", progress=False)  # fmt: skip
    infer.predict_image(uint16_volume[0][None])
    want = training_scaled(uint16_volume[:1], 4095)[:, 0]
    np.testing.assert_allclose(net.inputs[0][0].numpy(), want, rtol=1e-6, atol=0)
    assert torch.all(net.inputs[0] <= 1.0)
