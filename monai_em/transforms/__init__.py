"""EM augmentations and crops as MONAI transforms (array core + ``...d`` dictionary wrapper)."""

from .base import Margin, RandEMDictTransform, RandEMTransform, keys_and_modes
