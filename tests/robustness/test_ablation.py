"""The augmentation ablation: regimes select what the bundle trains with; the driver runs end to end at toy scale."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from monai.bundle import ConfigParser
from PIL import Image

from monai_em.robustness.ablation import BUNDLE, METRICS, held_out_sets, regime_overrides, run_ablation
from monai_em.robustness.report import markdown_table, regime_table, summarise
from monai_em.transforms.base import RandEMDictTransform


def augmentations(regime: str) -> list:
    """The training augmentations train.yaml builds under a regime's overrides (nothing is trained)."""
    parser = ConfigParser()
    parser.read_config(BUNDLE / "configs" / "train.yaml")
    for key, value in regime_overrides(regime).items():
        parser[key] = value
    return parser.get_parsed_content("train#augmentor").augmentations


def test_regimes_select_the_training_augmentations():
    assert augmentations("none") == []
    generic = augmentations("generic")
    assert generic and all(type(t).__module__.startswith("monai.transforms") for t in generic)
    assert {type(t).__name__ for t in generic} >= {"RandFlipd", "RandRotate90d", "RandScaleIntensityd"}
    em = {type(t).__name__ for t in augmentations("em")}
    assert {"RandMisAlignmentd", "RandMissingSectiond", "RandMissingPartsd", "RandMotionBlurd"} <= em
    assert all(isinstance(t, RandEMDictTransform) for t in augmentations("em"))
    assert em - {type(t).__name__ for t in augmentations("em-misalignment")} == {"RandMisAlignmentd"}
    assert em - {type(t).__name__ for t in augmentations("em-missingsection")} == {"RandMissingSectiond"}


def test_unknown_regimes_are_named():
    with pytest.raises(ValueError, match="unknown regime 'flips'"):
        regime_overrides("flips")
    with pytest.raises(ValueError, match="unknown augmentation 'fold'"):
        regime_overrides("em-fold")
    with pytest.raises(ValueError, match="unknown regime 'nope'"):
        run_ablation("unused", regimes=["nope"])


def test_summary_means_and_spreads_over_seeds():
    rows = [
        {"dataset": "d", "regime": r, "seed": s, "defect": "blur", "rate": 0.5, "vi": v, "arand": v / 10}
        for r, s, v in (("em", 0, 1.0), ("em", 1, 3.0), ("none", 0, 2.0))
    ]
    summary = {s["regime"]: s for s in summarise(rows, ["vi", "arand"])}
    assert summary["em"]["vi_mean"] == 2.0 and summary["em"]["vi_std"] == 1.0 and summary["em"]["seeds"] == 2
    assert summary["none"]["vi_std"] == 0.0
    table = markdown_table(list(summary.values()), "vi", "d")
    assert table.splitlines()[0] == "| defect | rate | em | none |"
    assert "| blur | 0.5 | 2.000 ± 1.000 | 2.000 ± 0.000 |" in table


def test_regime_table_averages_corrupted_sets_per_seed_first():
    def row(seed, defect, rate, vi):
        return {"dataset": "d", "regime": "em", "seed": seed, "defect": defect, "rate": rate, "vi": vi}

    rows = [row(0, "clean", 0.0, 1.0), row(0, "blur", 0.2, 2.0), row(0, "blur", 0.5, 4.0), row(0, "slip", 0.5, 6.0),
            row(1, "clean", 0.0, 3.0), row(1, "blur", 0.2, 2.0), row(1, "blur", 0.5, 2.0), row(1, "slip", 0.5, 2.0)]  # fmt: skip
    lines = regime_table(rows, "vi", "d").splitlines()
    assert lines[0] == "| regime | clean | blur 0.5 | slip 0.5 | all corrupted (mean) |"
    # blur at its highest rate: seeds 4 and 2; all corrupted: seed 0 mean 4, seed 1 mean 2 -> 3 ± 1
    assert lines[2] == "| em | 2.000 ± 1.000 | 3.000 ± 1.000 | 4.000 ± 2.000 | 3.000 ± 1.000 |"


@pytest.mark.slow  # 1-4 min on a busy 2-core machine: four tiny bundle trainings in subprocesses
def test_ablation_runs_end_to_end_at_toy_scale(tmp_path):
    regimes, seeds, kinds, rates = (
        ["generic", "em-missingsection"],
        [0, 1],
        ["slip", "missing_section"],
        [0.25, 0.5],
    )
    rows = run_ablation(
        tmp_path, regimes=regimes, seeds=seeds, train_on="synthetic", test_on=["synthetic"], kinds=kinds,
        rates=rates, iterations=3, input_size=(4, 32, 32), net_filters=(4, 8, 16, 32), batch_size=1,
    )  # fmt: skip
    cases = 1 + len(kinds) * len(rates)  # the clean set and every (defect, rate)
    assert len(rows) == len(regimes) * len(seeds) * cases
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and json.loads((tmp_path / "results.json").read_text()) == rows
    assert set(table[0]) >= {"regime", "seed", "dataset", "defect", "rate", *METRICS, "iterations"}
    assert {(r["regime"], int(r["seed"])) for r in table} == {(g, s) for g in regimes for s in seeds}
    assert {(r["defect"], float(r["rate"])) for r in table} == {("clean", 0.0)} | {
        (k, r) for k in kinds for r in rates
    }
    assert all(int(r["iterations"]) == 3 for r in table)
    for r in rows:
        assert r["vi"] == pytest.approx(r["vi_split"] + r["vi_merge"]) and 0 <= r["arand"] <= 1
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == len(regimes) * cases and all(int(s["seeds"]) == len(seeds) for s in summary)
    for regime in regimes:  # two seeds really trained two different networks
        a, b = (tmp_path / "runs" / regime / f"seed{s}" / "models" / "final_model.pt" for s in seeds)
        assert a.read_bytes() != b.read_bytes()
    assert "| defect | rate | generic | em-missingsection |" in (tmp_path / "summary.md").read_text()
    plot = Image.open(tmp_path / "robustness_synthetic_vi.png")
    assert (
        plot.size[0] > 500 and len(np.unique(np.asarray(plot).reshape(-1, 3), axis=0)) > 3
    )  # drawn, not blank
    # the test sets the rows were scored on: corrupted exactly at the stated rates, clean ones left alone
    sets = held_out_sets(["synthetic"], kinds, rates, 0, None)
    clean, _ = sets[("synthetic", "clean", 0.0)]
    for rate in rates:
        image, _ = sets[("synthetic", "missing_section", rate)]
        changed = (image != clean).any(axis=(1, 2)).sum()
        assert changed == round(rate * len(clean))
        assert (image == 0).all(axis=(1, 2)).sum() == changed
