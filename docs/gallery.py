"""Draw the transform gallery: one before/after PNG per augmentation, from real EM with labels.

Run from the repository root:  ``.venv/bin/python docs/gallery.py``  (needs ../shared/data, the fib25
crop; set MONAI_EM_SHARED_DATA elsewhere). Writes ``docs/images/<transform>.png``. Seeds are fixed and
the parameters are stronger than the defaults so that each effect is visible at a glance.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_em.data.readers import read_hdf5  # noqa: E402
from monai_em.transforms import (  # noqa: E402
    RandCopyPasted,
    RandCutBlurd,
    RandCutNoised,
    RandGrayscaled,
    RandMisAlignmentd,
    RandMissingPartsd,
    RandMissingSectiond,
    RandMixupd,
    RandMotionBlurd,
)
from monai_em.transforms.spatial import RandFlipTransposed, RandRescaled, RandRotateXYd, RandSectionElasticd  # noqa: E402
from monai_em.visualize import overlay, save_panels  # noqa: E402

DATA = Path(os.environ.get("MONAI_EM_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "docs" / "images"
KEYS, MODES = ["image", "label"], ("bilinear", "nearest")
GRAY_SEED = int(os.environ.get("GALLERY_GRAY_SEED", 5))
ALPHA, SIGMA = float(os.environ.get("GALLERY_ALPHA", 300)), float(os.environ.get("GALLERY_SIGMA", 12))


def load_fib25() -> tuple[np.ndarray, np.ndarray]:
    """fib25 training crop as ``(1, Z, Y, X)`` float32 in [0, 1] and int32 labels."""
    image = read_hdf5(DATA / "fib25_gala" / "train-image.h5", "stack")
    label = read_hdf5(DATA / "fib25_gala" / "train-gt.lzf.h5", "stack")
    return (image[None].astype(np.float32) / 255.0), label[None].astype(np.int32)


def view(volume, plane: str, index: int) -> np.ndarray:
    """A 2D cut of ``(1, Z, Y, X)``: ``xy`` section ``index`` or ``xz`` row ``index`` (z drawn 2x tall)."""
    v = np.asarray(volume.detach().cpu() if isinstance(volume, torch.Tensor) else volume)[0]
    if plane == "xy":
        return v[index]
    return np.repeat(v[:, index, :], 2, axis=0)


def save(
    name: str, before: dict, after: dict, plane: str, index_before: int, index_after: int, note: str, marks=()
) -> Path:
    """Four panels: image and image + label, before and after; palette PNG to stay small.

    ``marks``: rows of the "before" panels to draw red (e.g. the sections that will be deleted).
    """
    img0, img1 = view(before["image"], plane, index_before), view(after["image"], plane, index_after)
    lab0, lab1 = view(before["label"], plane, index_before), view(after["label"], plane, index_after)
    # one fixed grey scale ([0, 1] -> [0, 255]) for both, so intensity changes stay visible
    grey = [np.clip(a * 255, 0, 255).astype(np.uint8) for a in (img0, img1)]
    first = [overlay(grey[0], None), overlay(grey[0], lab0)]
    for panel in first:
        for row in marks:
            panel[2 * row : 2 * row + 2 if plane == "xz" else row + 1, ::2] = (230, 30, 30)
    panels = [*first, grey[1], overlay(grey[1], lab1)]
    path = OUT / f"{name}.png"
    save_panels(panels, ["before", "before + label", f"after: {note}", "after + label"], path)
    Image.open(path).convert("RGB").quantize(colors=96).save(path, optimize=True)
    return path


def gallery() -> list[Path]:
    image, label = load_fib25()
    xy = {"image": image[:, 10:22, :, 36:164], "label": label[:, 10:22, :, 36:164]}  # (1, 12, 100, 128)
    xz = {"image": image[:, :, :, 36:164], "label": label[:, :, :, 36:164]}  # (1, 50, 100, 128) for xz views
    written = []

    def run(name, transform, data, seed, plane="xy", index=6, index_after=None, note="", marks=None):
        transform.set_random_state(seed)
        out = transform(dict(data))
        params = transform.params
        after_index = (
            index_after(params) if callable(index_after) else (index if index_after is None else index_after)
        )
        before_index = index(params) if callable(index) else index
        rows = marks(params) if marks else ()
        written.append(save(name, data, out, plane, before_index, after_index, note, rows))
        return params

    run("rescale", RandRescaled(KEYS, low=1.5, high=1.5, prob=1.0, mode=MODES), xy, 0, note="s=1.5")
    run("flip_transpose", RandFlipTransposed(KEYS, prob=1.0, mode=MODES), xy, 3, note="flips")
    sq = {k: v[:, :, :, 14:114] for k, v in xy.items()}  # square yx for rotation
    run("rotate_xy", RandRotateXYd(KEYS, rot90=False, prob=1.0, mode=MODES), sq, 1, note="any angle")
    run(
        "section_elastic",
        RandSectionElasticd(KEYS, alpha=ALPHA, sigma=SIGMA, prob=1.0, mode=MODES),
        xy,
        0,
        note=f"alpha {ALPHA:g}, sigma {SIGMA:g}",
    )

    run(
        "grayscale",
        RandGrayscaled("image", contrast=0.8, brightness=0.5, grayscale_mode="3D", prob=1.0),
        xy,
        GRAY_SEED,
        note="3D draw",
    )
    run(
        "missing_parts",
        RandMissingPartsd("image", iterations=10, section_prob=1.0, prob=1.0),
        xy,
        0,
        index=lambda p: p.lines[0][0],
        index_after=lambda p: p.lines[0][0],
        note="band",
    )
    run(
        "missing_section",
        RandMissingSectiond(KEYS, num_sections=8, prob=1.0),
        xz,
        2,
        plane="xz",
        index=50,
        note="8 sections cut",
        marks=lambda p: p.sections,
    )
    run(
        "misalignment",
        RandMisAlignmentd(KEYS, displacement=16, prob=1.0, mode=MODES),
        xz,
        14,
        plane="xz",
        index=50,
        index_after=40,
        note="d=16, from z=39",
        marks=lambda p: (p.section,),
    )
    run(
        "misalignment_rotation",
        RandMisAlignmentd(KEYS, 16, rotate_ratio=1.0, prob=1.0, mode=MODES),
        xy,
        0,
        index=lambda p: p.section,
        index_after=lambda p: p.section,
        note="rotated",
    )
    run(
        "motion_blur",
        RandMotionBlurd("image", sections=1, kernel_size=15, prob=1.0),
        xy,
        1,
        index=lambda p: p.sections[0],
        index_after=lambda p: p.sections[0],
        note="k=15",
    )
    run(
        "cut_blur",
        RandCutBlurd("image", length_ratio=0.5, down_ratio_min=6, down_ratio_max=8, prob=1.0),
        xy,
        2,
        note="r 6-8",
    )
    run("cut_noise", RandCutNoised("image", length_ratio=0.5, scale=0.4, prob=1.0), xy, 1, note="scale 0.4")

    # copy-paste: one mid-sized neuron as the only foreground
    lab = xy["label"]
    ids, counts = np.unique(lab[:, 6], return_counts=True)
    ids, counts = ids[ids > 0], counts[ids > 0]
    keep = ids[np.argsort(counts)[-4]]
    one = {"image": xy["image"], "label": np.where(lab == keep, lab, 0)}
    written.append(_copy_paste(one))

    # mixup: a batch of two crops from different places
    batch = {
        "image": np.stack([xy["image"], image[:, 30:42, :, 36:164]]),
        "label": np.stack([xy["label"], label[:, 30:42, :, 36:164]]),
    }
    written.append(_mixup(batch))
    return written


def _copy_paste(data: dict) -> Path:
    t = RandCopyPasted("image", relabel=True, prob=1.0)  # new id: the copy gets its own colour
    out = t(dict(data))
    flip = ", z-flip" if t.params.flip_z else ""
    return save("copy_paste", data, out, "xy", 6, 6, f"{t.params.angle} deg{flip}")


def _mixup(batch: dict) -> Path:
    t = RandMixupd("image", min_ratio=0.5, max_ratio=0.6, num_aug=1).set_random_state(0)
    out = t(dict(batch))
    major = t.params.pairs[0][0]
    before = {k: batch[k][major] for k in batch}
    after = {"image": out["image"][major], "label": batch["label"][major]}
    return save("mixup", before, after, "xy", 6, 6, f"r={t.params.pairs[0][2]:.2f}")


if __name__ == "__main__":
    for p in gallery():
        print(p.relative_to(ROOT), p.stat().st_size // 1024, "KB")
