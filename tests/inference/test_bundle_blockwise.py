"""The bundle's inference config: ``backend`` / ``scheduler_address`` / ``output_format`` reach the inferer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_em.data.ome_zarr import open_ome_zarr, read_ngff_transform
from monai_em.inference import ChunkedInference

CONFIG = Path(__file__).resolve().parents[2] / "bundles" / "em_segmentation" / "configs" / "inference.yaml"


def parser_with(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(CONFIG)
    for key, value in overrides.items():
        parser[key] = value
    return parser


def test_bundle_dask_backend_and_scheduler_address_reach_the_inferer(tmp_path):
    parser = parser_with(output_dir=str(tmp_path), output_format="ome-zarr", backend="dask",
                         scheduler_address="tcp://127.0.0.1:8786", device="cpu")  # fmt: skip
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, ChunkedInference)
    assert (inferer.backend, inferer.scheduler_address) == ("dask", "tcp://127.0.0.1:8786")
    assert inferer.output_file == tmp_path / "prediction.ome.zarr"
    with pytest.raises(RuntimeError, match="Failed to instantiate") as info:  # MONAI wraps the ValueError
        parser_with(output_dir=str(tmp_path), backend="dask", device="cpu").get_parsed_content("inferer")
    assert "backend 'dask' writes blocks into one OME-Zarr image" in str(info.value.__cause__)


def test_bundle_writes_ome_zarr_blockwise_in_process(tmp_path):
    parser = parser_with(output_dir=str(tmp_path), output_format="ome-zarr", device="cpu", synthetic_shape=[8, 64, 64],
                         infer_chunk_num=[1, 2, 1], infer_pad_size=[0, 0, 0], net_filters=[4, 8, 16, 32])  # fmt: skip
    torch.manual_seed(0)
    inferer = parser.get_parsed_content("inferer")
    inferer.progress = False
    inferer.predictor.network.eval()
    out = inferer(parser.get_parsed_content("image_source"))
    pred = open_ome_zarr(out)[:]
    assert out == tmp_path / "prediction.ome.zarr" and pred.shape == (1, 8, 64, 64) and pred.dtype == np.uint8
    assert pred.std() > 0 and read_ngff_transform(out)[0] == (1.0, 1.0, 1.0)
