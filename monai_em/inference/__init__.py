"""Inference for large EM volumes: chunked and resumable sliding windows, blockwise into OME-Zarr on
in-process / torchrun / dask / daisy backends, 2D image streaming, flip TTA."""

from ..data.chunks import resolve_rank_world
from .backends import BACKENDS, run_blocks
from .blockwise import BlockJob, PredictBlock, prediction_job
from .chunked import ChunkedInference, chunk_path, predict_chunks, save_sections, stitch_chunks
from .settings import WindowSettings
from .streaming import (
    ImageListInference,
    load_image_2d,
    predict_images,
    predict_sections,
    read_path_list,
    save_image,
)
from .tta import TestTimeFlips
from .window import WindowPredictor, window_weights

__all__ = [
    "BACKENDS",
    "BlockJob",
    "ChunkedInference",
    "ImageListInference",
    "PredictBlock",
    "TestTimeFlips",
    "WindowPredictor",
    "WindowSettings",
    "chunk_path",
    "load_image_2d",
    "predict_chunks",
    "predict_images",
    "predict_sections",
    "prediction_job",
    "read_path_list",
    "resolve_rank_world",
    "run_blocks",
    "save_image",
    "save_sections",
    "stitch_chunks",
    "window_weights",
]
