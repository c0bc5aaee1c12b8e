"""PyTorch Connectomics YAML compatibility."""

from .bundle import (
    BUNDLE_IDS,
    bundle_table,
    bundle_target,
    existing_checkpoint,
    load_pytc_bundle_config,
    network_input_size,
    pytc_bundle_value,
)
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
    inference_activation,
    inference_blending,
    inference_overlap,
    inference_roi,
    pytc_presets,
    pytc_targets,
    pytc_value,
    train_transform_kwargs,
    tta_from_aug_num,
    volume_name_keys,
    volume_paths,
)
