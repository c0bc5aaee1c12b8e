"""python -m monai_em.convert: HDF5 / image folders -> OME-Zarr, block by block, resumable."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import zarr
from PIL import Image

from monai_em.convert import MARKERS, STATE_ATTR, convert, main
from monai_em.data.ome_zarr import read_ngff_transform
from monai_em.data.volume import ArrayVolume

from .stores_fixtures import sample_volume


class CountingVolume(ArrayVolume):
    """Records every box read; raises after ``fail_after`` reads (a killed conversion)."""

    def __init__(self, array, fail_after=None, **kwargs):
        super().__init__(array, **kwargs)
        self.boxes, self.fail_after = [], fail_after

    def read(self, box):
        if self.fail_after is not None and len(self.boxes) >= self.fail_after:
            raise RuntimeError("killed")
        self.boxes.append(tuple(tuple(ab) for ab in box))
        return super().read(box)


def test_hdf5_to_ome_zarr_keeps_data_and_voxel_size(tmp_path):
    data = sample_volume((9, 21, 26), np.uint16)
    with h5py.File(tmp_path / "cremi.h5", "w") as f:
        ds = f.create_dataset("volumes/raw", data=data)
        ds.attrs.update(resolution=[40.0, 4.0, 4.0], offset=[80.0, 0.0, 8.0])
    out = convert(tmp_path / "cremi.h5", tmp_path / "out.ome.zarr", dataset="volumes/raw", chunks=(4, 8, 8),
                  levels=1, progress=False)  # fmt: skip
    np.testing.assert_array_equal(out[...], data)
    assert read_ngff_transform(tmp_path / "out.ome.zarr") == ((40.0, 4.0, 4.0), (80.0, 0.0, 8.0), "nanometer")
    assert read_ngff_transform(tmp_path / "out.ome.zarr", 1)[0] == (40.0, 8.0, 8.0)
    assert not (tmp_path / "out.ome.zarr" / MARKERS).exists()
    assert zarr.open_group(str(tmp_path / "out.ome.zarr")).attrs[STATE_ATTR]["complete"] is True


def test_image_folder_and_labels_via_the_cli(tmp_path, capsys):
    data = sample_volume((4, 10, 12), np.uint8)
    folder = tmp_path / "sections"
    folder.mkdir()
    for z, sec in enumerate(data):
        Image.fromarray(sec).save(folder / f"s{z}.png")  # natural order: s2 before s10
    labels = np.arange(4 * 10 * 12, dtype=np.uint32).reshape(4, 10, 12)
    with h5py.File(tmp_path / "seg.h5", "w") as f:
        f["ids"] = labels
    dst = tmp_path / "em.ome.zarr"
    assert (
        main(
            [
                str(folder),
                str(dst),
                "--chunks",
                "2",
                "8",
                "8",
                "--voxel-size",
                "50",
                "4",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                str(tmp_path / "seg.h5"),
                str(dst),
                "--label",
                "cells",
                "--chunks",
                "2",
                "8",
                "8",
                "--no-progress",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(zarr.open_array(str(dst / "0"))[...], data)
    np.testing.assert_array_equal(zarr.open_array(str(dst / "labels" / "cells" / "0"))[...], labels)
    # a label file without voxel size sits on the image's voxels
    assert read_ngff_transform(dst / "labels" / "cells")[0] == (50.0, 4.0, 4.0)
    assert capsys.readouterr().out.split() == [str(dst), str(dst / "labels" / "cells")]
    with h5py.File(tmp_path / "seg30.h5", "w") as f:
        f["ids"] = labels
        f["ids"].attrs["resolution"] = [30.0, 4.0, 4.0]
    with pytest.raises(
        ValueError, match=r"seg30.h5 have voxel size \(30.0, 4.0, 4.0\).*image .*em.ome.zarr has \(50.0"
    ):
        main([str(tmp_path / "seg30.h5"), str(dst), "--label", "other", "--no-progress"])


def test_help_works(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "OME-Zarr" in capsys.readouterr().out


def test_resume_skips_written_blocks_and_reads_in_bounded_blocks(tmp_path):
    data = sample_volume((8, 32, 32), np.uint16)
    dst = tmp_path / "out.ome.zarr"
    kwargs = {"chunks": (4, 8, 8), "block": (1, 2, 2), "progress": False}  # 2 x 2 x 2 = 8 blocks of 4x16x16
    killed = CountingVolume(data, fail_after=3)
    with pytest.raises(RuntimeError, match="killed"):
        convert(killed, dst, **kwargs)
    assert len(list((dst / MARKERS).iterdir())) == 3
    again = CountingVolume(data)
    out = convert(again, dst, **kwargs)
    assert len(again.boxes) == 5 and not set(again.boxes) & set(killed.boxes)
    assert max(np.prod([b - a for a, b in box]) for box in killed.boxes + again.boxes) <= 4 * 16 * 16
    np.testing.assert_array_equal(out[...], data)
    done = CountingVolume(data)
    convert(done, dst, **kwargs)  # complete: nothing is read again
    assert done.boxes == []


def test_a_different_volume_is_not_resumed_into(tmp_path):
    dst = tmp_path / "out.ome.zarr"
    convert(np.zeros((4, 8, 8), np.uint8), dst, chunks=(2, 8, 8), progress=False)
    with pytest.raises(
        ValueError, match=r"out.ome.zarr exists and is not an unfinished conversion.*--overwrite"
    ):
        convert(np.zeros((4, 8, 9), np.uint8), dst, chunks=(2, 8, 8), progress=False)
    out = convert(np.ones((4, 8, 9), np.uint8), dst, chunks=(2, 8, 8), overwrite=True, progress=False)
    assert out.shape == (4, 8, 9) and int(out[...].min()) == 1
