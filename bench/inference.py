"""Chunked inference: peak RSS stays flat as the volume grows (1x, 4x, 16x the chunk), and voxels/s.

Baseline in the same run: MONAI's ``sliding_window_inference`` over the whole volume loaded in
memory (what you would do without chunking), whose peak grows with the volume.
Each measurement runs in a fresh subprocess and reports its peak RSS (VmHWM) above the RSS it had
after imports and model set-up. Run: ``.venv/bin/python -m bench.inference``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = (16, 256, 256)
GRIDS = {1: (1, 1, 1), 4: (1, 2, 2), 16: (4, 2, 2)}
ROI, PAD, OVERLAP = (8, 64, 64), (2, 16, 16), (0.25, 0.25, 0.25)


def _kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def _network():
    import torch

    torch.manual_seed(0)  # fixed weights for a benchmark network (not a transform)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 1), torch.nn.Sigmoid()
    )
    return net.eval()


def _worker(mode: str, scale: int, folder: Path) -> dict:
    import numpy as np
    import torch

    from monai_em.data.tiles import TileVolume
    from monai_em.inference import ChunkedInference

    torch.set_num_threads(1)
    net = _network()
    vol = TileVolume(folder / "volume.json", threads=0)
    shape = vol.shape
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _kib("VmRSS")
    t0 = time.perf_counter()
    if mode == "chunked":
        out = Path(tempfile.mkdtemp(dir=folder, prefix="chunks_"))  # fresh: a rerun would resume (skip all)
        ChunkedInference(
            net, ROI, out, chunk_num=GRIDS[scale], pad_size=PAD, overlap=OVERLAP, progress=False
        )(vol)
    else:
        from monai.inferers import sliding_window_inference

        x = torch.from_numpy(vol.read(tuple((0, s) for s in shape)).astype(np.float32) / 255)[None, None]
        with torch.no_grad():
            y = sliding_window_inference(x, ROI, 1, net, overlap=OVERLAP, mode="gaussian", device="cpu")
        np.save(folder / "whole.npy", (y[0].numpy() * 255).round().astype(np.uint8))
    seconds = time.perf_counter() - t0
    return {"peak_mib": (_kib("VmHWM") - base) / 1024, "seconds": seconds, "voxels": int(np.prod(shape))}


def _run(mode: str, scale: int, folder: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.inference",
        "--worker",
        mode,
        "--scale",
        str(scale),
        "--folder",
        str(folder),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"benchmark worker failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", choices=("chunked", "whole"))
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.scale, args.folder)))
        return
    import numpy as np

    from monai_em.data.synthetic import make_em_volume
    from monai_em.data.tile_format import write_tiled_volume

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            shape = tuple(c * g for c, g in zip(CHUNK, GRIDS[scale], strict=True))
            folder = Path(tmp) / f"x{scale}"
            write_tiled_volume(make_em_volume(shape, seed=0).image, folder, tile_size=256)
            res = {m: [_run(m, scale, folder) for _ in range(args.repeat)] for m in ("chunked", "whole")}
            med = {m: {k: float(np.median([d[k] for d in r])) for k in r[0]} for m, r in res.items()}
            med["chunked"]["max_mib"] = max(d["peak_mib"] for d in res["chunked"])
            rows.append((scale, shape, med["chunked"], med["whole"]))
    print(
        f"chunk {CHUNK}, roi {ROI}, pad {PAD}, overlap {OVERLAP}, 1 thread; medians of {args.repeat} runs; "
        "peak RSS above post-import RSS"
    )
    print(
        "| volume (x chunk) | shape | chunked peak MiB (max) | whole-volume peak MiB | chunked / whole "
        "| chunked Mvox/s | whole Mvox/s | speed chunked / whole |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scale, shape, c, w in rows:
        cv, wv = c["voxels"] / c["seconds"] / 1e6, w["voxels"] / w["seconds"] / 1e6
        print(
            f"| {scale}x | {shape} | {c['peak_mib']:.0f} ({c['max_mib']:.0f}) | {w['peak_mib']:.0f} "
            f"| {c['peak_mib'] / w['peak_mib']:.2f} | {cv:.2f} | {wv:.2f} | {cv / wv:.2f} |"
        )


if __name__ == "__main__":
    main()
