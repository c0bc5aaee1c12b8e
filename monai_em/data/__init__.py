"""EM data: readers, the tiled-volume format, datasets, and the synthetic EM generator."""

from .readers import HDF5Reader, read_hdf5
from .synthetic import SyntheticEM, make_em_volume
from .tile_format import write_tiled_volume
