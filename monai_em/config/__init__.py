"""PyTorch Connectomics YAML compatibility."""

from .pytc import PyTCConfig, load_pytc_config, pytc_defaults
from .pytc_build import (
    VolumeListInference,
    augmentor_kwargs,
    build_augmentations,
    build_augmentor,
    build_inference,
    build_rejection_crop,
    build_train_dataset,
    build_train_transform,
    build_tta,
    pytc_targets,
    pytc_value,
    volume_paths,
)
