"""Robustness to real EM defects: a seeded defect benchmark and the augmentation ablation that uses it."""

from .defects import DEFECTS, KINDS, Corrupted, Defect, apply_defects, corrupt, draw_defects

__all__ = ["DEFECTS", "KINDS", "Corrupted", "Defect", "apply_defects", "corrupt", "draw_defects"]
