"""`make demo`: the main job on the embedded default data, end to end through the em_segmentation bundle.

1. Generate a synthetic EM training volume and a second, held-out test volume (different seed),
   noisy and full of mitochondria (dark, like membranes, but not boundaries), and write both as
   ``{row}_{column}`` PNG tiles with tile JSONs.
2. Train with ``python -m monai.bundle run`` (``train.yaml``) on the training JSONs for a short CPU
   budget: TileDataset -> rejection crop -> EMAugmentor -> boundary target -> anisotropic U-Net.
3. Predict the test volume with the bundle's chunked ``inference.yaml``.
4. Save ``prediction.png`` (input section, ground-truth boundary, prediction, segmentation) and print
   the boundary F1 of the model against two trivial predictors on the test volume.
5. Segment the prediction into cells (seeded watershed) and print VI split / merge and adapted Rand
   error against the ground-truth cells, next to the grey-threshold map segmented the same way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.segmentation import best_grey_threshold, boundary_f1, segment, segmentation_scores
from monai_em.transforms.targets import BoundaryTarget
from monai_em.visualize import label_colors, save_panels, to_uint8

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "em_segmentation"
_ECHO = ("Metrics --", "Train completed", "Error", "error:", "Traceback")


def run_bundle(configs: list[str], bundle_root: Path, log: Path, *overrides) -> None:
    """``python -m monai.bundle run`` in a subprocess; the full log goes to ``log``, key lines to stdout."""
    files = [str(BUNDLE / "configs" / c) for c in configs]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(files),
           "--meta_file", str(BUNDLE / "configs" / "metadata.json"), "--bundle_root", str(bundle_root),
           "--logging_file", str(BUNDLE / "configs" / "logging.conf"), *map(str, overrides)]  # fmt: skip
    with open(log, "w") as out:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
        )
        for line in proc.stdout:
            out.write(line)
            if any(k in line for k in _ECHO):
                print("   ", line.rstrip().split(" - ")[-1][:110], flush=True)
    if proc.wait() != 0:
        raise SystemExit(
            f"bundle run failed (exit {proc.returncode}); full log: {log}\ncommand: {' '.join(cmd)}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--test-shape", type=int, nargs=3, default=(16, 192, 192), metavar=("Z", "Y", "X"))
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--noise", type=float, default=40.0, help="speckle noise (grey levels) of the volumes"
    )
    parser.add_argument("--mito-density", type=float, default=110.0, help="mitochondria per million voxels")
    parser.add_argument("--epochs", type=int, default=8, help="at most this many epochs of --epoch-length")
    parser.add_argument("--epoch-length", type=int, default=50)
    parser.add_argument("--train-seconds", type=int, default=240, help="training time limit")
    parser.add_argument(
        "--seed-distance",
        type=float,
        default=6.0,
        help="watershed seeds: in-plane distance from the boundary",
    )
    args = parser.parse_args(argv)
    if not (BUNDLE / "configs" / "train.yaml").is_file():
        raise SystemExit(
            f"the em_segmentation bundle is not at {BUNDLE}; run the demo from a clone of the repository"
        )
    out = Path(args.out).resolve()
    data = out / "data"
    start = time.time()

    print(
        f"[1/4] synthetic EM: training volume {tuple(args.shape)}, held-out test volume {tuple(args.test_shape)}"
    )

    def volume(shape, seed):  # noisy, with many mitochondria: dark organelles that are not cell boundaries
        n_mito = max(1, round(args.mito_density * np.prod(shape) / 1e6))
        return make_em_volume(tuple(shape), noise=args.noise, n_mito=n_mito, seed=seed)

    train, test = volume(args.shape, args.seed), volume(args.test_shape, args.seed + 1)
    paths = {
        name: write_tiled_volume(array, data / name, tile_size=args.tile_size, json_name=f"{name}.json")
        for name, array in (("image", train.image), ("label", train.label), ("test_image", test.image))
    }
    print(f"    tiles + JSONs in {data} ({int(train.label.max())} training cells)")

    print(
        f"[2/4] training with the bundle (at most {args.epochs} x {args.epoch_length} iterations, {args.train_seconds} s)"
    )
    run_bundle(
        ["train.yaml"], out, out / "train.log", "--image_json", paths["image"], "--label_json", paths["label"],
        "--epochs", args.epochs, "--epoch_length", args.epoch_length, "--time_limit_s", args.train_seconds,
        "--seed", args.seed,
    )  # fmt: skip

    print("[3/4] chunked inference of the test volume with the bundle")
    shutil.rmtree(out / "prediction", ignore_errors=True)  # never score a previous run's chunks
    ckpt = (
        out / "models" / "model.pt"
    )  # best validation F1; absent when the time limit came before any validation
    if not ckpt.is_file() and (out / "models" / "final_model.pt").is_file():
        print("    no validation ran within the time limit: predicting with the final checkpoint")
        ckpt = out / "models" / "final_model.pt"
    run_bundle(
        ["inference.yaml"], out, out / "inference.log", "--image_json", paths["test_image"],
        "--output_dir", out / "prediction", "--infer_chunk_num", "[1, 2, 2]", "--ckpt_path", ckpt,
    )  # fmt: skip
    with h5py.File(out / "prediction" / "prediction.h5", "r") as f:
        prob = f["main"][0]  # uint8, 255 * P(boundary)

    print("[4/4] score, segment and picture")
    truth = BoundaryTarget(width=2)(test.label[None]).numpy()[0] > 0
    f1 = boundary_f1(prob >= 128, truth)
    f1_dark, threshold = best_grey_threshold(test.image, truth)
    f1_all = boundary_f1(np.ones_like(truth), truth)
    # in-plane boundaries of a 3D stack: seeds only from the cores of cells (see docs/segmentation.md)
    params = {"seed_distance": args.seed_distance}
    seg = segment(prob[None], "watershed", params)
    seg_dark = segment((test.image <= threshold)[None].astype(np.float32), "watershed", params)
    scores = {
        "model": segmentation_scores(test.label, seg),
        "grey": segmentation_scores(test.label, seg_dark),
    }
    z = test.image.shape[0] // 2
    picture = out / "prediction.png"
    save_panels(
        [test.image[z], to_uint8(truth[z]), prob[z], label_colors(seg[z]), label_colors(test.label[z])],
        [
            f"test input, section {z}",
            "ground-truth boundary",
            "predicted boundary",
            "segmentation",
            "ground truth",
        ],
        picture,
    )
    print(f"    picture: {picture}")
    print(
        f"boundary F1 (1-px tolerance, held-out volume): model {f1:.3f} | best grey threshold {f1_dark:.3f} "
        f"(<= {threshold}) | all-boundary {f1_all:.3f}"
    )
    print(
        "segmentation (watershed, held-out volume; lower is better): "
        + " | ".join(
            f"{name} VI split {r['vi_split']:.3f} merge {r['vi_merge']:.3f}, adapted Rand {r['arand']:.3f}"
            for name, r in (("model", scores["model"]), ("grey threshold", scores["grey"]))
        )
        + f"   [{time.time() - start:.0f} s]"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
