"""Do EM defect augmentations make models robust to real EM defects? Train, corrupt, segment, score.

For every training regime and seed the ``em_segmentation`` bundle trains (``python -m monai.bundle
run`` in a subprocess, so its ``set_determinism`` and thread settings stay in that process) for the
same number of ITERATIONS on the training sections of a real EM volume; its final weights then
predict boundaries on the held-out sections, clean and corrupted by :mod:`.defects` at each rate;
the predictions are segmented and scored by :func:`monai_em.segmentation.evaluate_segmentation`
(VI split / merge, adapted Rand error, boundary F1). Every regime sees the identical corrupted test
sets (one corruption seed), so regimes are compared pairwise on the same voxels.

Regimes (:func:`regime_overrides`): ``none`` (no augmentation); ``generic`` (stock MONAI only:
flips in y and x, rot90 in-plane, intensity scale and shift); ``em`` (monai_em's full default list);
``em-<name>`` (that list without one augmentation, e.g. ``em-misalignment``).

    python -m monai_em.robustness.ablation --out ablation_runs --iterations 300 --seeds 0 1

writes ``results.csv`` / ``results.json`` (one row per regime, seed, test set, defect, rate),
``summary.csv`` (mean and standard deviation over seeds), ``summary.md`` and ``robustness_<metric>.png``
(:mod:`.report`). A trained run is reused when its ``final_model.pt`` exists, so a stopped ablation resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from PIL import Image

from ..data.readers import read_hdf5
from ..data.synthetic import make_em_volume
from ..segmentation import evaluate_segmentation
from ..training import build_network, load_weights, network_of
from ..transforms.presets import default_em_transforms
from .defects import KINDS, corrupt
from .report import write_report

__all__ = [
    "DATASETS",
    "METRICS",
    "REGIMES",
    "held_out_sets",
    "load_dataset",
    "predict",
    "regime_overrides",
    "run_ablation",
    "train_regime",
]

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "em_segmentation"
METRICS = ("vi_split", "vi_merge", "vi", "arand", "boundary_f1")
#: the default regimes: (a) none, (b) generic MONAI, (c) full EM list, (d) two leave-one-defect-out variants
REGIMES = ("none", "generic", "em", "em-misalignment", "em-missingsection")
#: name -> (training sections or None, held-out test box ((z0, z1), (y0, y1), (x0, x1)), watershed parameters).
#: The test boxes are small so that a CPU rerun stays under an hour; fib25 is test-only (its own test crop).
#: Watershed parameters: those docs/segmentation.md chose outside the scored sections (the defaults merge
#: nearly everything on these volumes, which would hide any difference between regimes).
DATASETS = {
    "medulla250": ((0, 200), ((218, 250), (25, 225), (25, 225)), {"seed_threshold": 0.1, "seed_distance": 2}),
    "fib25": (None, ((0, 24), (0, 100), (0, 200)), {"seed_threshold": 0.1, "seed_distance": 4}),
    "synthetic": ((0, 24), ((24, 36), (0, 96), (0, 96)), {}),
}

# stock MONAI augmentations (b): applied to image and label alike where geometric, image only for intensity
_GENERIC = (
    "$[monai.transforms.RandFlipd(keys=@volume_keys, prob=0.5, spatial_axis=1),"
    " monai.transforms.RandFlipd(keys=@volume_keys, prob=0.5, spatial_axis=2),"
    " monai.transforms.RandRotate90d(keys=@volume_keys, prob=0.75, spatial_axes=(1, 2)),"
    " monai.transforms.RandScaleIntensityd(keys='image', factors=0.2, prob=0.5),"
    " monai.transforms.RandShiftIntensityd(keys='image', offsets=0.1, prob=0.5)]"
)


def regime_overrides(regime: str) -> dict[str, Any]:
    """Bundle overrides (``train.yaml`` ids) that select a training regime (see the module docstring)."""
    if regime == "none":
        return {"augment": False}
    if regime == "generic":
        return {"augment": True, "train#preprocessing#transforms": _GENERIC}
    if regime == "em":
        return {"augment": True}
    if regime.startswith("em-"):
        default_em_transforms(disabled=[regime[3:]])  # ValueError naming the valid names
        return {"augment": True, "aug_disabled": [regime[3:]]}
    raise ValueError(f"unknown regime {regime!r}: use none, generic, em or em-<augmentation name>")


def _data_root(data_root: str | os.PathLike | None) -> Path:
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    root = Path(data_root or os.environ.get("MONAI_EM_SHARED_DATA", default))
    if not root.is_dir():
        raise FileNotFoundError(f"shared EM data folder not found: {root} (pass --data_root)")
    return root


def load_dataset(name: str, data_root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8, label)`` ``(Z, Y, X)`` of a test volume in :data:`DATASETS` (fib25: its test crop)."""
    if name == "synthetic":
        vol = make_em_volume((36, 96, 96), seed=0)
        return np.asarray(vol.image), np.asarray(vol.label)
    root = _data_root(data_root)
    if name == "medulla250":
        sections = sorted((root / "medulla250" / "grayscale_maps").glob("*.png"))
        if len(sections) != 250:
            raise FileNotFoundError(
                f"{root / 'medulla250' / 'grayscale_maps'}: expected 250 PNGs, got {len(sections)}"
            )
        image = np.stack([np.asarray(Image.open(p)) for p in sections])
        return image, read_hdf5(root / "medulla250" / "labels.h5", "main")
    if name == "fib25":
        folder = root / "fib25_gala"
        return read_hdf5(folder / "test-image.h5", "stack"), read_hdf5(folder / "test-gt.lzf.h5", "stack")
    raise ValueError(f"unknown dataset {name!r}; datasets are {list(DATASETS)}")


def _cli(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def train_regime(
    run_dir: Path,
    train_files: Mapping[str, Path],
    regime: str,
    seed: int,
    budget: Mapping[str, Any],
    timeout: int,
) -> Path:
    """Train the bundle for one regime and seed in ``run_dir`` (its bundle root); returns ``final_model.pt``."""
    final = run_dir / "models" / "final_model.pt"
    if final.is_file():
        return final
    overrides = {
        "image_json": str(train_files["image"]),
        "label_json": str(train_files["label"]),
        "val_sections": 0,  # equal budgets: the final weights after `iterations` steps, no model selection
        "seed": seed,
        "epochs": 1,
        "epoch_length": budget["iterations"],
        "input_size": list(budget["input_size"]),
        "net_filters": list(budget["net_filters"]),
        "batch_size": budget["batch_size"],
        "boundary_in_plane": False,  # 3D contours: isotropic FIB-SEM, segmented by a 3D watershed
        "num_threads": budget["threads"],
        **regime_overrides(regime),
    }
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "train.yaml"),
           "--meta_file", str(BUNDLE / "configs" / "metadata.json"), "--bundle_root", str(run_dir)]  # fmt: skip
    for key, value in overrides.items():
        cmd += [f"--{key}", _cli(value)]
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(budget["threads"]), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    (run_dir / "train.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not final.is_file():
        raise RuntimeError(
            f"training {regime!r} seed {seed} failed ({proc.returncode}); log: {run_dir / 'train.log'}"
        )
    return final


def _network(weights: Path) -> torch.nn.Module:
    """The trained network, rebuilt from the checkpoint alone (it carries its network spec)."""
    net = build_network(network_of(weights))
    load_weights(net, weights)
    return net.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def predict(net: torch.nn.Module, image: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Boundary probabilities ``(1, Z, Y, X)`` float32 of a uint8 ``(Z, Y, X)`` image (as the bundle validates),
    on the network's device."""
    device = next(net.parameters()).device
    x = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None].to(device)
    inferer = SlidingWindowInferer(roi_size=tuple(input_size), sw_batch_size=4, overlap=0.25, mode="gaussian")
    with torch.no_grad():
        return torch.sigmoid(inferer(x, net))[0].cpu().numpy()


def held_out_sets(
    datasets: Sequence[str], kinds: Sequence[str], rates: Sequence[float], corruption_seed: int, data_root
) -> dict[tuple[str, str, float], tuple[np.ndarray, np.ndarray]]:
    """(dataset, defect, rate) -> corrupted held-out ``(image, label)``; ``("clean", 0.0)`` is the clean set."""
    out = {}
    for name in datasets:
        image, label = load_dataset(name, data_root)
        box = tuple(slice(a, b) for a, b in DATASETS[name][1])
        image, label = image[box], label[box]
        out[(name, "clean", 0.0)] = (image, label)
        for kind in kinds:
            for rate in rates:
                if rate > 0:
                    c = corrupt(image, label, kind, rate, seed=corruption_seed)
                    out[(name, kind, float(rate))] = (c.image, c.label)
    return out


def _write_training_volume(dataset: str, out: Path, data_root) -> dict[str, Path]:
    image, label = load_dataset(dataset, data_root)
    span = DATASETS[dataset][0]
    if span is None:
        raise ValueError(f"dataset {dataset!r} has no training sections; train on one of "
                         f"{[k for k, v in DATASETS.items() if v[0]]}")  # fmt: skip
    files = {"image": out / f"{dataset}_train_image.h5", "label": out / f"{dataset}_train_label.h5"}
    # signed ids: torch has no flip / rot90 for uint32, which stock MONAI geometric transforms need
    label = label.astype(np.int32 if label.max() < 2**31 else np.int64)
    for key, array in (("image", image), ("label", label)):
        if not files[key].is_file():
            with h5py.File(files[key], "w") as f:
                f.create_dataset("main", data=array[span[0] : span[1]])
    return files


def run_ablation(
    out: str | os.PathLike,
    regimes: Sequence[str] = REGIMES,
    seeds: Sequence[int] = (0, 1),
    train_on: str = "medulla250",
    test_on: Sequence[str] = ("medulla250",),
    kinds: Sequence[str] = KINDS,
    rates: Sequence[float] = (0.2, 0.5),
    iterations: int = 300,
    input_size: Sequence[int] = (8, 64, 64),
    net_filters: Sequence[int] = (8, 16, 32, 64),
    batch_size: int = 2,
    threads: int = 1,
    corruption_seed: int = 0,
    data_root: str | os.PathLike | None = None,
    train_timeout: int = 3600,
) -> list[dict[str, Any]]:
    """Train every (regime, seed), score it on every test set; write results and the report into ``out``.

    Returns one row per (regime, seed, dataset, defect, rate) with :data:`METRICS`, ``iterations``
    and ``train_s`` (wall seconds of training, for the record only: budgets are iterations).
    """
    for r in regimes:
        regime_overrides(r)  # fail before any training on a misspelt regime
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown defect kinds {bad}; kinds are {KINDS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = {"iterations": int(iterations), "input_size": tuple(input_size), "net_filters": tuple(net_filters),
              "batch_size": int(batch_size), "threads": int(threads)}  # fmt: skip
    train_files = _write_training_volume(train_on, out, data_root)
    sets = held_out_sets(test_on, kinds, rates, corruption_seed, data_root)
    rows = []
    for seed in seeds:  # seed-major: a stopped run still has every regime for its first seeds
        for regime in regimes:
            rows += _scored_run(out / "runs" / regime / f"seed{seed}", train_files, regime, int(seed), budget, sets,
                                corruption_seed, train_timeout)  # fmt: skip
            _write_rows(out, rows)
            write_report(rows, out, METRICS)  # after every run: a stopped ablation still has its report
    return rows


def _scored_run(
    run_dir: Path, train_files, regime: str, seed: int, budget, sets, corruption_seed: int, timeout: int
):
    """Train (or reuse) one run and score it on ``sets``; the scores are kept in ``scores.json`` and reused
    while the test sets (keys and corruption seed) and the budget are the same."""
    cache = run_dir / "scores.json"
    key = {
        "sets": [list(k) for k in sets],
        "corruption_seed": corruption_seed,
        "budget": json.loads(json.dumps(budget)),
    }
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored["key"] == key:
            return stored["rows"]
    start = time.perf_counter()
    weights = train_regime(run_dir, train_files, regime, seed, budget, timeout)
    train_s = time.perf_counter() - start
    net, rows = _network(weights), []
    for (dataset, kind, rate), (image, label) in sets.items():
        pred = predict(net, image, budget["input_size"])
        params = DATASETS[dataset][2]
        score = evaluate_segmentation(pred, label, target="boundary", params=params, baselines=False)[0]
        rows.append({"regime": regime, "seed": seed, "dataset": dataset, "defect": kind, "rate": rate,
                     **{m: score[m] for m in METRICS}, "iterations": budget["iterations"],
                     "train_s": round(train_s, 1)})  # fmt: skip
    print(f"{regime} seed {seed}: trained in {train_s:.0f} s, scored {len(sets)} test sets", flush=True)
    cache.write_text(json.dumps({"key": key, "rows": rows}))
    return rows


def _write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--out", required=True, help="output folder (runs, results, report)")
    p.add_argument("--regimes", nargs="+", default=list(REGIMES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--train_on", default="medulla250", choices=[k for k, v in DATASETS.items() if v[0]])
    p.add_argument("--test_on", nargs="+", default=["medulla250"], choices=list(DATASETS))
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--rates", nargs="+", type=float, default=[0.2, 0.5])
    p.add_argument(
        "--iterations", type=int, default=300, help="training iterations per run (the equal budget)"
    )
    p.add_argument("--input_size", nargs=3, type=int, default=[8, 64, 64])
    p.add_argument("--net_filters", nargs=4, type=int, default=[8, 16, 32, 64])
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    p.add_argument("--corruption_seed", type=int, default=0)
    p.add_argument("--data_root", default=None, help="the shared EM data folder (default ../shared/data)")
    a = p.parse_args(argv)
    run_ablation(a.out, a.regimes, a.seeds, a.train_on, a.test_on, a.kinds, a.rates, a.iterations, a.input_size,
                 a.net_filters, a.batch_size, a.threads, a.corruption_seed, a.data_root)  # fmt: skip


if __name__ == "__main__":
    main()
