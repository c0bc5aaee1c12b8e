import h5py
import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged

from monai_em.data.readers import HDF5Reader, read_hdf5


def test_loadimaged_reads_fib25_image_and_lzf_labels(fib25_paths):
    image_path, label_path = fib25_paths
    out = LoadImaged(keys=("image", "label"), reader=HDF5Reader, dtype=None)(
        {"image": str(image_path), "label": str(label_path)}
    )
    assert out["image"].shape == (1, 50, 100, 200) and out["image"].dtype == torch.uint8
    assert out["label"].shape == (1, 50, 100, 200) and out["label"].dtype == torch.int32
    assert len(torch.unique(out["label"])) == 88
    with h5py.File(label_path) as f:
        np.testing.assert_array_equal(out["label"][0].numpy(), f["stack"][()])


def test_reader_by_dotted_path_and_ensure_channel_first(fib25_paths):
    out = LoadImaged(keys="image", reader="monai_em.data.readers.HDF5Reader", ensure_channel_first=True)(
        {"image": str(fib25_paths[0])}
    )
    assert out["image"].shape == (1, 50, 100, 200)


def test_affine_from_resolution_attribute(tmp_path):
    path = tmp_path / "vol.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("other", data=np.zeros((2, 2), np.uint8))
        d = f.create_dataset("raw", data=np.arange(24, dtype=np.uint16).reshape(2, 3, 4))
        d.attrs["resolution"] = [40.0, 4.0, 4.0]
    img = LoadImaged(keys="x", reader=HDF5Reader(dataset="raw"), dtype=None)({"x": str(path)})["x"]
    assert img.shape == (1, 2, 3, 4) and img.dtype == torch.int32  # MONAI widens uint16
    np.testing.assert_allclose(np.diag(img.affine.numpy())[:3], [40.0, 4.0, 4.0])
    # default dataset is the first one in the file
    assert read_hdf5(path).shape == (2, 2)


def test_wrong_dataset_names_file_and_available_keys(tmp_path):
    path = tmp_path / "vol.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError, match=r"vol\.h5.*'raw'.*\['main'\]"):
        LoadImaged(keys="x", reader=HDF5Reader(dataset="raw"))({"x": str(path)})


def test_not_hdf5_and_missing_file(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="bad.h5"):
        read_hdf5(bad)
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        read_hdf5(tmp_path / "nope.h5")
    assert HDF5Reader().verify_suffix("a/b.H5") and not HDF5Reader().verify_suffix("a.png")
