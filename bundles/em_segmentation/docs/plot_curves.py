"""Training curves of a bundle run (train loss per iteration, validation F1 per epoch) as one PNG.

    python bundles/em_segmentation/docs/plot_curves.py <bundle_root>/eval bundles/em_segmentation/docs/training_curves.png

Reads the TensorBoard event files train.yaml writes (tags ``train_loss`` and ``val_f1``); draws with
Pillow only (no plotting library needed).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] over every event file in ``log_dir``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {k: sorted(v) for k, v in out.items()}


def panel(draw: ImageDraw.ImageDraw, box, points, title: str, xlabel: str, colour) -> None:
    """A line chart of ``points`` in ``box`` (x0, y0, x1, y1) with its title and value range."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline="black")
    draw.text((x0 + 5, y0 - 16), title, fill="black")
    if not points:
        draw.text((x0 + 10, y0 + 10), "no data", fill="black")
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    lo, hi = min(ys), max(ys)
    hi = hi if hi > lo else lo + 1.0
    span = max(max(xs) - min(xs), 1)

    def at(x, y):
        return x0 + 40 + (x - min(xs)) / span * (x1 - x0 - 50), y1 - 25 - (y - lo) / (hi - lo) * (
            y1 - y0 - 40
        )

    coords = [at(x, y) for x, y in points]
    if len(coords) > 1:
        draw.line(coords, fill=colour, width=2)
    for c in coords if len(coords) < 40 else ():
        draw.ellipse((c[0] - 3, c[1] - 3, c[0] + 3, c[1] + 3), fill=colour)
    draw.text((x0 + 2, y0 + 8), f"{hi:.3f}", fill="black")
    draw.text((x0 + 2, y1 - 32), f"{lo:.3f}", fill="black")
    draw.text((x0 + 40, y1 - 16), f"{min(xs)}", fill="black")
    draw.text((x1 - 60, y1 - 16), f"{max(xs)} {xlabel}", fill="black")


def main(log_dir: str, out: str) -> None:
    scalars = read_scalars(log_dir)
    img = Image.new("RGB", (900, 320), "white")
    draw = ImageDraw.Draw(img)
    panel(
        draw,
        (10, 30, 445, 310),
        scalars.get("train_loss", []),
        "train loss (bce + dice)",
        "iter",
        (31, 119, 180),
    )
    panel(draw, (455, 30, 890, 310), scalars.get("val_f1", []), "validation F1 (held-out sections)", "epoch",
          (214, 39, 40))  # fmt: skip
    img.save(out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
