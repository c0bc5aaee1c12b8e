"""The training pipelines whose same-seed outputs are pinned by ``test_golden.py``.

Each case maps a seed to the output dict of one full training transform, applied to one synthetic EM
volume: the default augmentor (one pass and one by one), the README's crop + augmentor, PyTC's
``build_train_transform`` and the bundle's ``train#preprocessing``. Regenerate the pinned outputs
only when a change of behaviour is intended::

    python -m tests.golden.pipelines
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from monai_em.data.synthetic import make_em_volume

GOLDEN = Path(__file__).with_name("pipelines.npz")
BUNDLE = Path(__file__).parents[2] / "bundles" / "em_segmentation" / "configs" / "train.yaml"
SEEDS = range(6)
INPUT_SIZE = (4, 40, 40)
TARGETS = {"image": "img", "label": "mask", "valid_mask": "mask"}
PYTC = {
    "MODEL": {"INPUT_SIZE": list(INPUT_SIZE)},
    "DATASET": {"VALID_MASK_NAME": "valid.h5", "REJECT_SAMPLING": {"SIZE_THRES": 200, "P": 0.9}},
}


def _volume() -> dict[str, np.ndarray]:
    em = make_em_volume((12, 110, 110), seed=3)
    valid = np.ones_like(em.label, dtype=np.uint8)
    valid[:, :20] = 0
    return {"image": em.image[None], "label": em.label[None], "valid_mask": valid[None]}


def _augmentor(fuse: bool):
    from monai_em.transforms.compose import EMAugmentor

    aug = EMAugmentor.from_targets(INPUT_SIZE, TARGETS, fuse=fuse)
    size = aug.sample_size
    sample = {k: v[:, : size[0], : size[1], : size[2]] for k, v in _volume().items()}
    sample["image"] = sample["image"].astype(np.float32) / 255  # float, so the image tolerance is tight
    return aug, sample


def _readme():
    from monai.transforms import Compose

    from monai_em.transforms import EMAugmentor, RandRejectionCropd

    aug = EMAugmentor.from_targets(INPUT_SIZE, {"image": "img", "label": "mask"})
    crop = RandRejectionCropd(
        keys=("image", "label"),
        label_key="label",
        spatial_size=aug.sample_size,
        test_size=INPUT_SIZE,
        size_thres=200,
        reject_p=0.95,
    )
    volume = _volume()
    return Compose([crop, aug]), {"image": volume["image"], "label": volume["label"]}


def _pytc():
    from monai_em.config.pytc_build import build_train_transform

    return build_train_transform(PYTC), _volume()


def _bundle():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE))
    parser.update({"input_size": list(INPUT_SIZE), "reject_size_thres": 200})
    transform = parser.get_parsed_content("train#preprocessing")
    volume = {k: v for k, v in _volume().items() if k != "valid_mask"}
    return transform, {**volume, "chunk_id": 0, "chunk_round": 0}


CASES = {"fused": lambda: _augmentor(True), "one_by_one": lambda: _augmentor(False), "readme": _readme}
CASES.update({"pytc": _pytc, "bundle": _bundle})


def run(case: str, seed: int) -> dict[str, np.ndarray]:
    """``{"<sample>/<key>": array}`` of ``case``'s transform with every RNG seeded from ``seed``."""
    transform, data = CASES[case]()
    transform.set_random_state(seed)
    out = transform(
        {
            k: torch.as_tensor(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            for k, v in data.items()
        }
    )
    outs = out if isinstance(out, list) else [out]  # the rejection crop returns a list of one sample
    return {
        f"{n}/{k}": np.asarray(torch.as_tensor(v).cpu())
        for n, o in enumerate(outs)
        for k, v in o.items()
        if isinstance(v, torch.Tensor)
    }


def generate() -> dict[str, np.ndarray]:
    arrays = {}
    for case in CASES:
        for seed in SEEDS:
            for key, value in run(case, seed).items():
                arrays[f"{case}/{seed}/{key}"] = value
    return arrays


if __name__ == "__main__":
    arrays = generate()
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {len(arrays)} arrays to {GOLDEN} ({GOLDEN.stat().st_size / 1024:.0f} KiB)")
