"""`make demo`: the main job on the embedded default data.

Generates a synthetic EM volume, writes it as {row}_{column} tiles with tile JSONs (image and
label), and saves a preview picture of a section with its labels overlaid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.visualize import overlay, save_panels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)

    vol = make_em_volume(tuple(args.shape), seed=args.seed)
    image_json = write_tiled_volume(vol.image, out / "image", tile_size=args.tile_size, json_name="image.json")
    label_json = write_tiled_volume(vol.label, out / "label", tile_size=args.tile_size, json_name="label.json")
    z = int(np.argmax((vol.mito > 0).sum(axis=(1, 2))))  # the section showing most mitochondria
    preview = out / "preview.png"
    save_panels(
        [vol.image[z], overlay(vol.image[z], vol.label[z]), overlay(vol.image[z], vol.mito[z])],
        [f"synthetic EM, section {z}", "cell instances", "mitochondria"],
        preview,
    )
    print(f"volume {vol.image.shape}: {int(vol.label.max())} cells, {int(vol.mito.max())} mitochondria")
    print(f"tiles: {image_json} and {label_json}")
    print(f"preview: {preview}  (membrane fraction {np.mean(vol.membrane):.3f})")


if __name__ == "__main__":
    main()
