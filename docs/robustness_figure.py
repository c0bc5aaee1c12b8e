"""Draw docs/images/robustness_defects.png: one held-out medulla250 section under each test defect.

    python docs/robustness_figure.py [DATA_ROOT]

Each panel is the same section (the 9th of the ablation's test box) with one defect of
``monai_em.robustness.defects`` at mid-range parameters; the slip panel overlays the section's
clean ground truth in colour, so the shift of the image against it shows.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_em.robustness.ablation import DATASETS, load_dataset  # noqa: E402
from monai_em.robustness.defects import BLUR_SIGMA, PART_AREA, SLIP_PX, Defect, apply_defects  # noqa: E402
from monai_em.visualize import overlay, save_panels  # noqa: E402


def main(data_root=None) -> None:
    image, label = load_dataset("medulla250", data_root)
    box = tuple(slice(a, b) for a, b in DATASETS["medulla250"][1])
    image, label = image[box], label[box]
    z = 8
    mid = sum(SLIP_PX) / 2 / math.sqrt(2)
    cases = {
        "slip": Defect("slip", z, shift=(round(mid), round(mid))),
        "missing_section": Defect("missing_section", z),
        "missing_part": Defect("missing_part", z, angle=0.6, area=sum(PART_AREA) / 2),
        "blur": Defect("blur", z, sigma=sum(BLUR_SIGMA) / 2),
        "contrast (gain 0.55)": Defect("contrast", z, gain=0.55, offset=0.08),
        "contrast (gain 1.8)": Defect("contrast", z, gain=1.8, offset=-0.08),
    }
    panels, titles = [image[z]], ["clean"]
    for title, defect in cases.items():
        section = apply_defects(image, label, [defect]).image[z]
        panels.append(overlay(section, label[z]) if defect.kind == "slip" else section)
        titles.append(title + (" + clean labels" if defect.kind == "slip" else ""))
    save_panels(panels, titles, ROOT / "docs" / "images" / "robustness_defects.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
