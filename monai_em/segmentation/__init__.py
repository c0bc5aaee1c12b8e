"""From predictions to neurons: instances from boundary / affinity / mask predictions, blockwise, and their scores."""

from .blockwise import BlockResult, merge_blocks, relabel_block, segment_block, segment_blockwise
from .evaluate import CONVENTIONS, evaluate_segmentation, ground_truth, read_prediction
from .instances import (
    DEFAULTS,
    agglomerate,
    as_probability,
    connected_components,
    relabel_sequential,
    seeded_watershed,
    segment,
)
from .metrics import (
    adapted_rand,
    best_grey_threshold,
    boundary_f1,
    segmentation_scores,
    variation_of_information,
)
from .validation import SegmentationMetric

__all__ = [
    "CONVENTIONS",
    "DEFAULTS",
    "BlockResult",
    "SegmentationMetric",
    "adapted_rand",
    "agglomerate",
    "as_probability",
    "best_grey_threshold",
    "boundary_f1",
    "connected_components",
    "evaluate_segmentation",
    "ground_truth",
    "merge_blocks",
    "read_prediction",
    "relabel_block",
    "relabel_sequential",
    "seeded_watershed",
    "segment",
    "segment_block",
    "segment_blockwise",
    "segmentation_scores",
    "variation_of_information",
]
