"""monai_em: connectomics (EM) data loading for MONAI."""

__version__ = "0.1.0"

from .data import HDF5Reader, SyntheticEM, make_em_volume, read_hdf5, write_tiled_volume  # noqa: E402
from .data import TileDataset, TileVolume, open_volume, write_tile_json  # noqa: E402
from .transforms import Margin, keys_and_modes  # noqa: E402
from .losses import VoxelWeightedLoss  # noqa: E402
from .transforms import AffinityTarget, AffinityTargetd, BoundaryTarget, BoundaryTargetd, ValidMaskToWeightd  # noqa: E402
from .transforms import (  # noqa: E402
    RandCopyPasted,
    RandCutBlur,
    RandCutBlurd,
    RandCutNoise,
    RandCutNoised,
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
)
from .data import MultiVolumeDataset, RandVolumePicker  # noqa: E402
from .transforms import RandRejectionCropd, RejectionSampler  # noqa: E402
from .transforms import (  # noqa: E402
    EMAugmentor,
    RandFlipTranspose,
    RandFlipTransposed,
    RandRescale,
    RandRescaled,
    RandRotateXY,
    RandRotateXYd,
    RandSectionElastic,
    RandSectionElasticd,
    default_em_transforms,
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
