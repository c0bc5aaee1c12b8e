"""EM augmentations and crops as MONAI transforms (array core + ``...d`` dictionary wrapper)."""

from .base import Margin, RandEMDictTransform, RandEMTransform, keys_and_modes
from .intensity import RandCutBlur, RandCutBlurd, RandCutNoise, RandCutNoised, RandGrayscale, RandGrayscaled
from .integral import IntegralCache, box_count, box_counts, integral_volume
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
from .targets import AffinityTarget, AffinityTargetd, BoundaryTarget, BoundaryTargetd, ValidMaskToWeightd
from .compose import EMAugmentor, default_em_transforms, plan_sample_size, smooth_label_edges
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
