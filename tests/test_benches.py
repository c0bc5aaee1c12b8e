"""The benches run: a quick smoke run of each on a small input (their numbers go to docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util

import pytest
from monai.data import get_track_meta

from bench import augment, pytc_reference


def test_augment_bench_reports_every_pipeline_row_and_the_profile(capsys):
    results = augment.main(
        ["--samples", "1", "--input", "4", "32", "32", "--pipeline-only", "--profile", "3"]
    )
    rows = [
        "memory copy",
        "pipeline, one pass (fuse=True)",
        "pipeline, one by one (fuse=False)",
        "pipeline, one pass, MetaTensor in (tracked)",
        "pipeline, one pass, tracking off",
    ]
    assert list(results) == rows and all(ms > 0 for ms in results.values())
    assert get_track_meta()  # the tracking-off row restores MONAI's setting
    printed = capsys.readouterr().out
    assert "aten::" in printed and "one pass vs one by one" in printed


def test_pytc_reference_stand_in_refuses_any_use():
    stand_in = pytc_reference._Unavailable("torchvision")
    with pytest.raises(RuntimeError, match="torchvision.nms was used"):
        stand_in.nms  # noqa: B018
    with pytest.raises(AttributeError):
        stand_in.__wrapped__  # noqa: B018  (import machinery probes dunders: no error raised there)


@pytest.mark.skipif(importlib.util.find_spec("cv2") is not None, reason="opencv is installed here")
def test_pytc_reference_names_what_it_needs(tmp_path):
    with pytest.raises(SystemExit, match="opencv-python-headless yacs"):
        pytc_reference.main(["--pytc-src", str(tmp_path)])


def test_pytc_reference_is_skipped_without_a_checkout(monkeypatch, capsys):
    monkeypatch.delenv("PYTC_SRC", raising=False)
    assert pytc_reference.main([]) == []  # `python -m bench` runs every bench: this one needs PyTC
    assert "skipped" in capsys.readouterr().out
