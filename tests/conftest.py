"""Fixtures: the real EM volumes in ../shared/data (skipped with a reason when absent) and synthetic EM."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from monai_em.data.synthetic import make_em_volume

SHARED_DATA = Path(
    os.environ.get("MONAI_EM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def shared_path(*parts: str) -> Path:
    """Path inside the shared real-data folder, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"real EM data not available: {path} is missing (set MONAI_EM_SHARED_DATA to the shared/data folder)"
        )
    return path


@pytest.fixture(scope="session")
def fib25_paths():
    """(image, label) HDF5 paths of the fib25 FIB-SEM training crop: 50x100x200 uint8 / int32."""
    return shared_path("fib25_gala", "train-image.h5"), shared_path("fib25_gala", "train-gt.lzf.h5")


@pytest.fixture(scope="session")
def fib25():
    """The fib25 crop as numpy arrays ``(image uint8, label int32)``, each ``(50, 100, 200)``."""
    from monai_em.data.readers import read_hdf5

    return (
        read_hdf5(shared_path("fib25_gala", "train-image.h5"), "stack"),
        read_hdf5(shared_path("fib25_gala", "train-gt.lzf.h5"), "stack"),
    )


@pytest.fixture(scope="session")
def medulla_sections():
    """Sorted list of the 250 medulla250 section PNG paths (250x250 uint8 each)."""
    folder = shared_path("medulla250", "grayscale_maps")
    return sorted(folder.glob("*.png"))


@pytest.fixture(scope="session")
def medulla_label():
    """medulla250 dense labels, ``(250, 250, 250)`` uint32."""
    from monai_em.data.readers import read_hdf5

    return read_hdf5(shared_path("medulla250", "labels.h5"), "main")


@pytest.fixture(scope="session")
def isbi_paths():
    """(image paths, label paths) of the ISBI 2012 stack, 30 sections of 512x512, sorted by section."""
    key = lambda p: int(p.stem)  # noqa: E731
    return (
        sorted(shared_path("isbi2012", "image").glob("*.png"), key=key),
        sorted(shared_path("isbi2012", "label").glob("*.png"), key=key),
    )


@pytest.fixture(scope="session")
def synthetic_small():
    """A small synthetic EM volume (16, 96, 96), seed 0."""
    return make_em_volume((16, 96, 96), seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
