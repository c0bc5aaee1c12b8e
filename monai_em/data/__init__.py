"""EM data: readers, the tiled-volume format, datasets, and the synthetic EM generator."""

from .chunks import chunk_box, chunk_boxes, chunk_name, split_rank_world
from .multi_volume import MultiVolumeDataset, RandVolumePicker, crop_positions
from .ome_zarr import create_ome_labels, create_ome_zarr, open_ome_zarr, read_ngff_transform, write_pyramid
from .readers import HDF5Reader, read_hdf5
from .sources import HDF5Volume, open_volume
from .stores import TensorStoreVolume, ZarrVolume, open_store
from .subvolume import SubVolume
from .synthetic import SyntheticEM, make_em_volume
from .tile_dataset import TileDataset
from .tile_format import TileSpec, load_tile_json, write_tile_json, write_tiled_volume
from .tiles import MissingTileWarning, TileVolume, check_compatible
from .volume import ArrayVolume, VolumeSource, geometry
