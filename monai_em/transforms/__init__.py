"""EM augmentations, crops and training targets as MONAI transforms (array core + ``...d`` dictionary wrapper)."""

from .base import Margin, RandEMDictTransform, RandEMTransform, keys_and_modes
from .compose import EMAugmentor, default_em_transforms, plan_sample_size, smooth_label_edges
from .integral import IntegralCache, box_count, box_counts, integral_volume
from .intensity import RandCutBlur, RandCutBlurd, RandCutNoise, RandCutNoised, RandGrayscale, RandGrayscaled
from .mixing import RandCopyPasted, RandMixup, RandMixupd
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
from .targets import AffinityTarget, AffinityTargetd, BoundaryTarget, BoundaryTargetd, ValidMaskToWeightd

__all__ = [
    "AffinityTarget",
    "AffinityTargetd",
    "BoundaryTarget",
    "BoundaryTargetd",
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
    "ValidMaskToWeightd",
    "box_count",
    "box_counts",
    "default_em_transforms",
    "integral_volume",
    "keys_and_modes",
    "plan_sample_size",
    "smooth_label_edges",
]
