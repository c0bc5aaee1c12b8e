"""From predictions to neurons: instances from boundary / affinity / mask predictions, blockwise, and their scores."""

from .blockwise import BlockResult, block_boxes, merge_blocks, relabel_block, segment_block, segment_blockwise
from .instances import (
    DEFAULTS,
    agglomerate,
    as_probability,
    connected_components,
    relabel_sequential,
    seeded_watershed,
    segment,
)
from .metrics import adapted_rand, boundary_f1, segmentation_scores, variation_of_information

__all__ = [
    "DEFAULTS",
    "BlockResult",
    "adapted_rand",
    "agglomerate",
    "as_probability",
    "block_boxes",
    "boundary_f1",
    "connected_components",
    "merge_blocks",
    "relabel_block",
    "relabel_sequential",
    "seeded_watershed",
    "segment",
    "segment_block",
    "segment_blockwise",
    "segmentation_scores",
    "variation_of_information",
]
