"""Draw docs/images/chunk_grid.png: training and inference chunk grids on a medulla250 section.

.venv/bin/python docs/chunk_grid.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from monai_em.data.chunks import chunk_boxes
from monai_em.visualize import save_panels

ROOT = Path(__file__).resolve().parent
SECTION = ROOT.parents[1] / "shared" / "data" / "medulla250" / "grayscale_maps" / "iso.2700.png"
SCALE, PAD = 2, 20


def draw_boxes(section, offset, outlined, filled, frame=None):
    """Section scaled by SCALE; ``outlined``: (box, colour) drawn as frames, ``filled``: translucent boxes."""
    img = (
        Image.fromarray(np.repeat(section[..., None], 3, -1))
        .resize((section.shape[1] * SCALE,) * 2)
        .convert("RGBA")
    )
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)

    def rect(box):
        (y0, y1), (x0, x1) = box[-2], box[-1]
        return [
            (x0 + offset) * SCALE,
            (y0 + offset) * SCALE,
            (x1 + offset) * SCALE - 1,
            (y1 + offset) * SCALE - 1,
        ]

    for box, color in filled:
        draw.rectangle(rect(box), fill=color + (70,), outline=color + (255,), width=3)
    if frame is not None:
        draw.rectangle(rect(frame[0]), outline=frame[1] + (255,), width=3)
    for i, (box, color) in enumerate(outlined):
        r = rect(box)
        draw.rectangle(r, outline=color + (255,), width=2)
        draw.text((r[0] + 5, r[1] + 4), str(i), fill=color + (255,))
    return np.asarray(Image.alpha_composite(img, layer).convert("RGB"))


def main():
    section = np.asarray(Image.open(SECTION))
    shape = (1, *section.shape)
    red, blue, white, yellow = (230, 25, 75), (67, 99, 216), (255, 255, 255), (255, 225, 25)
    train = chunk_boxes(shape, (1, 3, 3), train=True)
    a = draw_boxes(section, 0, [(b, white) for b in train], [(train[0], red), (train[4], blue)])
    infer = chunk_boxes(shape, (1, 3, 3), train=False)
    padded0 = chunk_boxes(shape, (1, 3, 3), train=False, pad_size=(0, PAD, PAD))[0]
    whole = ((0, 1), (0, section.shape[0]), (0, section.shape[1]))
    b = draw_boxes(
        np.pad(section, PAD, mode="reflect"),
        PAD,
        [(x, white) for x in infer],
        [(padded0, red)],
        (whole, yellow),
    )
    save_panels(
        [a, b],
        [
            "train, chunk_num (1,3,3): chunks 0 (red) and 4 (blue) overlap by half",
            f"inference: disjoint chunks; chunk 0 with pad_size {PAD} (red), mirrored outside the volume (yellow frame)",
        ],
        ROOT / "images" / "chunk_grid.png",
    )


if __name__ == "__main__":
    main()
