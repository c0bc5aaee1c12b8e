"""EM augmentations and crops as MONAI transforms (array core + ``...d`` dictionary wrapper)."""

from .base import Margin, RandEMDictTransform, RandEMTransform, keys_and_modes
from .targets import AffinityTarget, AffinityTargetd, BoundaryTarget, BoundaryTargetd, ValidMaskToWeightd
from .intensity import RandCutBlur, RandCutBlurd, RandCutNoise, RandCutNoised, RandGrayscale, RandGrayscaled
from .mixing import RandCopyPasted, RandMixup, RandMixupd
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
