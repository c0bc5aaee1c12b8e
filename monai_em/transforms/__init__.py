"""EM augmentations and crops as MONAI transforms (array core + ``...d`` dictionary wrapper)."""

from .base import Margin, RandEMDictTransform, RandEMTransform, keys_and_modes
from .targets import AffinityTarget, AffinityTargetd, BoundaryTarget, BoundaryTargetd, ValidMaskToWeightd
