"""`make demo` writes its test input and prediction as OME-Zarr with the tiles' voxel size."""

from __future__ import annotations

import h5py
import numpy as np

from monai_em import demo
from monai_em.data.ome_zarr import open_ome_zarr, read_ngff_transform


def test_demo_writes_ome_zarr_with_voxel_size_and_a_viewer_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "demo"
    prob = np.random.default_rng(0).integers(0, 255, (1, 4, 32, 32), dtype=np.uint8)

    def fake_bundle(configs, bundle_root, log, *overrides):  # no training: the writing is under test
        if configs == ["inference.yaml"]:
            (bundle_root / "prediction").mkdir(parents=True, exist_ok=True)
            with h5py.File(bundle_root / "prediction" / "prediction.h5", "w") as h5:
                h5["main"] = prob

    monkeypatch.setattr(demo, "run_bundle", fake_bundle)
    demo.main(
        ["--out", str(out), "--shape", "8", "32", "32", "--test-shape", "4", "32", "32", "--tile-size", "16"]
    )
    pred = out / "prediction.ome.zarr"
    np.testing.assert_array_equal(open_ome_zarr(pred)[...], prob)
    assert read_ngff_transform(pred) == (demo.VOXEL_SIZE_NM, (0.0, 0.0, 0.0), "nanometer")
    assert read_ngff_transform(out / "test_image.ome.zarr")[0] == demo.VOXEL_SIZE_NM
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "napari" in ln)
    assert str(out / "test_image.ome.zarr") in line and str(pred) in line
