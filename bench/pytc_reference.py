"""PyTC v1's own default train augmentor against monai_em's one pass, one thread, timed in one process.

    python -m bench.pytc_reference --pytc-src PATH (or $PYTC_SRC) [--runs 3] [--samples 30] [--rounds 3] [--smooth] [--per-transform 20]

Optional: needs a checkout of PyTorch Connectomics (v1.0.0: ``git clone
https://github.com/zudi-lin/pytorch_connectomics && git -C pytorch_connectomics checkout v1.0.0``) and what
its augmentation code imports beside this project's environment (``pip install opencv-python-headless
yacs``). PyTC is not installed and not a dependency: its ``connectomics.config`` and
``connectomics.data.augmentation`` modules are loaded from the source tree without running the package
``__init__`` files (they import PyTC's datasets and models). PyTC's ``copy_paste`` module imports
torchvision at load time; where torchvision can't be imported, a module that raises on any use stands in
for it (copy-paste is off in PyTC's defaults, so a run that touched it would fail, not mislead).

PyTC's augmentor is built by ``build_train_augmentor`` from ``get_cfg_defaults()`` (input 8 x 256 x 256,
no label smoothing, its defaults) with the label and a valid mask as ``mask`` targets, and gets what
PyTC's ``VolumeDataset`` hands it: float32 image in [0, 1], label and valid mask as float32, a fresh copy
per call (its transforms write into their input). monai_em's ``EMAugmentor.from_targets`` gets the same
synthetic volume as channel-first tensors (image float32, label int32, valid mask uint8), as
``bench.augment`` does. Each run times 3 rounds of PyTC, then 3 of monai_em; reports the median of the
round means and the ratio per run.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import warnings

import numpy as np
import torch

from bench.augment import _data, _time
from monai_em.transforms.compose import EMAugmentor

INPUT = (8, 256, 256)
TARGETS = {"image": "img", "label": "mask", "valid_mask": "mask"}


class _Unavailable(types.ModuleType):
    """A stand-in for a module PyTC imports but the measured code never uses: any use raises."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(
            f"{self.__name__}.{name} was used: this measurement needs the real {self.__name__}"
        )


def _import_pytc(src: str):
    """PyTC's ``get_cfg_defaults`` and ``build_train_augmentor`` from the source tree ``src``."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or built for another torch
        names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
        tv, tvt, tvf = (_Unavailable(n) for n in names)
        tv.transforms, tvt.functional = tvt, tvf
        sys.modules.update({m.__name__: m for m in (tv, tvt, tvf)})
    for name in ("connectomics", "connectomics.data", "connectomics.data.augmentation"):
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(src, *name.split("."))]
        sys.modules[name] = package
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.filters / morphology names
        from connectomics.config.defaults import get_cfg_defaults
        from connectomics.data.augmentation.build import build_train_augmentor
    return get_cfg_defaults, build_train_augmentor


def _pytc_augmentor(src: str, smooth: bool = False):
    get_cfg_defaults, build_train_augmentor = _import_pytc(src)
    cfg = get_cfg_defaults()
    cfg.MODEL.INPUT_SIZE = list(INPUT)
    cfg.AUGMENTOR.SMOOTH = smooth  # PyTC's default: False; monai_em's one pass doesn't smooth either
    # what PyTC's config update adds when DATASET.VALID_MASK_NAME is set: the valid mask as a mask target
    cfg.AUGMENTOR.ADDITIONAL_TARGETS_NAME = [*cfg.AUGMENTOR.ADDITIONAL_TARGETS_NAME, "valid_mask"]
    cfg.AUGMENTOR.ADDITIONAL_TARGETS_TYPE = [*cfg.AUGMENTOR.ADDITIONAL_TARGETS_TYPE, "mask"]
    return build_train_augmentor(cfg, keep_uncropped=False, keep_non_smoothed=False)


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pytc-src",
        default=os.environ.get("PYTC_SRC"),
        help="a PyTorch Connectomics checkout (or $PYTC_SRC)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smooth", action="store_true", help="also time PyTC with AUGMENTOR.SMOOTH=True")
    parser.add_argument("--per-transform", type=int, default=0, help="calls per PyTC member alone (0: skip)")
    args = parser.parse_args(argv)
    if not args.pytc_src:  # optional: `python -m bench` runs every bench
        print("bench.pytc_reference: skipped (give --pytc-src or $PYTC_SRC, a PyTorch Connectomics checkout)")
        return []
    try:
        import cv2
        import yacs  # noqa: F401  (PyTC's config)
    except ImportError as e:
        raise SystemExit(
            f"bench.pytc_reference needs PyTC's own dependencies: {e}; pip install opencv-python-headless yacs"
        ) from e

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    pytc = _pytc_augmentor(os.path.abspath(args.pytc_src))
    ours = EMAugmentor.from_targets(INPUT, TARGETS).set_random_state(0)
    size = tuple(int(s) for s in pytc.sample_size)
    if size != ours.sample_size:
        raise RuntimeError(
            f"PyTC asks for samples of {size}, monai_em for {ours.sample_size}: not comparable"
        )
    our_data = _data(size)  # bench.augment's sample: channel-first tensors
    label = our_data["label"][0].numpy()
    pytc_data = {  # what PyTC's VolumeDataset hands its augmentor: float32 arrays without a channel
        "image": our_data["image"][0].numpy(),
        "label": label.astype(np.float32),
        "valid_mask": (label != 0).astype(np.float32),
    }
    rng = np.random.RandomState(0)
    fresh = lambda: {k: v.copy() for k, v in pytc_data.items()}  # noqa: E731  (PyTC writes into its input)
    run_pytc = lambda: pytc(fresh(), rng)  # noqa: E731
    run_ours = lambda: ours(our_data)  # noqa: E731
    print(f"sample {size}; PyTC's members: {[type(t).__name__ for t in [*pytc.transforms, pytc.flip_aug]]}")
    for _ in range(3):  # warm-up
        run_pytc(), run_ours()
    ratios = []
    for run in range(1, args.runs + 1):
        theirs = _time(run_pytc, args.samples, args.rounds)
        mine = _time(run_ours, args.samples, args.rounds)
        ratios.append(theirs / mine)
        print(
            f"run {run}: PyTC {theirs:6.2f} ms/sample   monai_em one pass {mine:6.2f} ms/sample   {ratios[-1]:.2f}x"
        )
    if args.smooth:
        smoothing = _pytc_augmentor(os.path.abspath(args.pytc_src), smooth=True)
        ms = _time(lambda: smoothing(fresh(), rng), args.samples, args.rounds)
        print(f"PyTC with AUGMENTOR.SMOOTH=True: {ms:6.2f} ms/sample")
    if args.per_transform:
        copy = _time(fresh, args.per_transform, args.rounds)
        print(f"PyTC's members alone (prob 1, on {size}; each time includes the {copy:.2f} ms input copy):")
        for t in [*pytc.transforms, pytc.flip_aug]:
            ms = _time(lambda t=t: t(fresh(), rng), args.per_transform, args.rounds)
            print(f"  {type(t).__name__:15s} {ms:7.2f} ms   (fires with p={t.p})")
    return ratios


if __name__ == "__main__":
    main()
