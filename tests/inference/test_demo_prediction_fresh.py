"""`make demo` deletes its prediction folder before inference: a rerun never scores an old model's chunks."""

from __future__ import annotations

import h5py
import numpy as np

from monai_em import demo


def test_demo_inference_starts_from_an_empty_prediction_folder(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    old = out / "prediction"
    old.mkdir(parents=True)
    (old / "0-4-0-32-0-32.h5").write_bytes(b"an old model's chunk")
    seen = {}

    def fake_bundle(configs, bundle_root, log, *overrides):
        if configs == ["inference.yaml"]:
            pred = bundle_root / "prediction"
            seen["left_over"] = sorted(p.name for p in pred.iterdir()) if pred.exists() else []
            pred.mkdir(parents=True, exist_ok=True)
            with h5py.File(pred / "prediction.h5", "w") as h5:
                h5["main"] = np.zeros((1, 4, 32, 32), np.uint8)

    monkeypatch.setattr(demo, "run_bundle", fake_bundle)
    demo.main(
        ["--out", str(out), "--shape", "8", "32", "32", "--test-shape", "4", "32", "32", "--tile-size", "16"]
    )
    assert seen == {"left_over": []}
