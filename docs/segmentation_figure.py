"""Draw docs/images/segmentation_<name>.png: EM section, predicted boundary, segmentation, ground truth.

Run from the repository root after the evaluate.yaml runs of docs/segmentation.md (it reads their
prediction.h5 and segmentation.h5):

    python docs/segmentation_figure.py NAME IMAGE LABEL BUNDLE_ROOT Z_START SECTION [membrane_mask]

e.g. ``python docs/segmentation_figure.py isbi2012 runs/isbi/image.json runs/isbi/label.json runs/isbi 25 2
membrane_mask``. Segment and ground-truth colours are random per id (a hash), black = 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_em.data.sources import open_volume  # noqa: E402
from monai_em.segmentation import ground_truth  # noqa: E402
from monai_em.visualize import label_colors, save_panels  # noqa: E402


def main(name, image, label, bundle_root, z_start, section, convention="instance") -> None:
    z = int(z_start) + int(section)
    img, lab = open_volume(image), open_volume(label, role="label")
    box = ((z, z + 1), (0, img.shape[1]), (0, img.shape[2]))
    em, gt = np.asarray(img.read(box))[0], np.asarray(lab.read(box))
    gt = ground_truth(gt, convention, in_plane=True)[0][0]
    root = Path(bundle_root) / "eval"
    with h5py.File(root / "prediction" / "prediction.h5", "r") as f:
        pred = f["main"][0, int(section)]
    with h5py.File(root / "segmentation" / "segmentation.h5", "r") as f:
        seg = f["main"][int(section)]
    out = ROOT / "docs" / "images" / f"segmentation_{name}.png"
    save_panels(
        [em, pred, label_colors(seg), label_colors(gt)],
        [f"{name} EM, section {z}", "predicted boundary", "segmentation (model)", "ground truth"],
        out,
    )
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
