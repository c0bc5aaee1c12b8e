"""monai_em: connectomics (EM) data loading for MONAI.

The most used names are re-exported here; everything else lives in ``monai_em.transforms``,
``monai_em.data``, ``monai_em.inference`` and ``monai_em.config``.
"""

__version__ = "0.1.0"

from .data import (  # noqa: E402
    HDF5Reader,
    MultiVolumeDataset,
    RandVolumePicker,
    SyntheticEM,
    TileDataset,
    TileVolume,
    make_em_volume,
    open_volume,
    read_hdf5,
    write_tile_json,
    write_tiled_volume,
)
from .inference import (  # noqa: E402
    ChunkedInference,
    ImageListInference,
    TestTimeFlips,
    predict_chunks,
    predict_images,
    predict_sections,
    read_path_list,
    stitch_chunks,
)
from .losses import VoxelWeightedLoss  # noqa: E402
from .transforms import (  # noqa: E402
    AffinityTarget,
    AffinityTargetd,
    BoundaryTarget,
    BoundaryTargetd,
    EMAugmentor,
    Margin,
    RandCopyPasted,
    RandCutBlur,
    RandCutBlurd,
    RandCutNoise,
    RandCutNoised,
    RandFlipTranspose,
    RandFlipTransposed,
    RandGrayscale,
    RandGrayscaled,
    RandMisAlignment,
    RandMisAlignmentd,
    RandMissingParts,
    RandMissingPartsd,
    RandMissingSection,
    RandMissingSectiond,
    RandMixup,
    RandMixupd,
    RandMotionBlur,
    RandMotionBlurd,
    RandRejectionCropd,
    RandRescale,
    RandRescaled,
    RandRotateXY,
    RandRotateXYd,
    RandSectionElastic,
    RandSectionElasticd,
    RejectionSampler,
    ValidMaskToWeightd,
    default_em_transforms,
    keys_and_modes,
)
