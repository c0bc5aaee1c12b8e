"""Inference for large EM volumes: chunked and resumable sliding windows, 2D image streaming, flip TTA."""

from .chunked import ChunkedInference, chunk_path, predict_chunks, save_sections, stitch_chunks
from .streaming import (
    ImageListInference,
    load_image_2d,
    predict_images,
    predict_sections,
    read_path_list,
    save_image,
)
from .tta import TestTimeFlips
from .window import WindowPredictor, resolve_rank_world, window_weights

__all__ = [
    "ChunkedInference",
    "ImageListInference",
    "TestTimeFlips",
    "WindowPredictor",
    "chunk_path",
    "load_image_2d",
    "predict_chunks",
    "predict_images",
    "predict_sections",
    "read_path_list",
    "resolve_rank_world",
    "save_image",
    "save_sections",
    "stitch_chunks",
    "window_weights",
]
