"""EM augmentations, crops and training targets as MONAI transforms (array core + ``...d`` dictionary wrapper)."""

from .base import Margin, RandEMDictTransform, RandEMTransform, keys_and_modes
from .compose import EMAugmentor, plan_sample_size, smooth_label_edges
from .integral import IntegralCache, box_count, box_counts, integral_volume
from .intensity import RandCutBlur, RandCutBlurd, RandCutNoise, RandCutNoised, RandGrayscale, RandGrayscaled
from .mixing import RandCopyPasted, RandMixup, RandMixupd
from .pipeline import TrainTransform, intensity_scaling, train_transform
from .presets import default_em_transforms
from .sampling import CropDraw, RandRejectionCropd, RejectionSampler
from .sections import (
    RandMisAlignment,
    RandMisAlignmentd,
    RandMissingParts,
    RandMissingPartsd,
    RandMissingSection,
    RandMissingSectiond,
    RandMotionBlur,
    RandMotionBlurd,
)
from .spatial import (
    RandFlipTranspose,
    RandFlipTransposed,
    RandRescale,
    RandRescaled,
    RandRotateXY,
    RandRotateXYd,
    RandSectionElastic,
    RandSectionElasticd,
)
from .target_options import loss_for_target, target_channels, target_from_pytc_option
from .targets import (
    AffinityTarget,
    AffinityTargetd,
    BinaryTarget,
    BinaryTargetd,
    BoundaryTarget,
    BoundaryTargetd,
    DistanceTarget,
    DistanceTargetd,
    SemanticTarget,
    SemanticTargetd,
    ValidMaskToWeightd,
)

__all__ = [
    "AffinityTarget",
    "AffinityTargetd",
    "BinaryTarget",
    "BinaryTargetd",
    "BoundaryTarget",
    "BoundaryTargetd",
    "DistanceTarget",
    "DistanceTargetd",
    "CropDraw",
    "EMAugmentor",
    "IntegralCache",
    "Margin",
    "RandCopyPasted",
    "RandCutBlur",
    "RandCutBlurd",
    "RandCutNoise",
    "RandCutNoised",
    "RandEMDictTransform",
    "RandEMTransform",
    "RandFlipTranspose",
    "RandFlipTransposed",
    "RandGrayscale",
    "RandGrayscaled",
    "RandMisAlignment",
    "RandMisAlignmentd",
    "RandMissingParts",
    "RandMissingPartsd",
    "RandMissingSection",
    "RandMissingSectiond",
    "RandMixup",
    "RandMixupd",
    "RandMotionBlur",
    "RandMotionBlurd",
    "RandRejectionCropd",
    "RandRescale",
    "RandRescaled",
    "RandRotateXY",
    "RandRotateXYd",
    "RandSectionElastic",
    "RandSectionElasticd",
    "RejectionSampler",
    "SemanticTarget",
    "SemanticTargetd",
    "ValidMaskToWeightd",
    "box_count",
    "box_counts",
    "default_em_transforms",
    "integral_volume",
    "keys_and_modes",
    "loss_for_target",
    "plan_sample_size",
    "smooth_label_edges",
    "target_channels",
    "target_from_pytc_option",
    "TrainTransform",
    "intensity_scaling",
    "train_transform",
]
