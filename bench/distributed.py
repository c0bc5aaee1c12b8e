"""Blockwise inference on dask.distributed: blocks/s with 1 vs 2 workers, and peak memory per worker as the volume grows 16x.

Baseline in the same run: the in-process backend on the same job (torch on 1 thread, as each dask
worker is). Workers are started and warmed (imports done) before timing; each timed run writes a
fresh OME-Zarr. Peak memory per worker = VmHWM minus the RSS after warm-up, read on each worker.
Run: ``python -m bench.distributed`` (``--quick``: smaller volumes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

BLOCK, CHUNKS = (16, 256, 256), (16, 128, 128)
ROI, HALO, OVERLAP = (8, 64, 64), (2, 16, 16), (0.25, 0.25, 0.25)
SCALES = {1: (16, 256, 256), 4: (32, 512, 256), 16: (64, 512, 512)}


def _network():
    import torch

    torch.manual_seed(0)  # fixed weights for a benchmark network (not a transform)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 1), torch.nn.Sigmoid()
    )
    return net.eval()


def _volume(folder: Path, shape) -> Path:
    import numpy as np

    path = folder / f"volume_{'x'.join(map(str, shape))}.npy"
    if not path.exists():
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        rng = np.random.default_rng(0)
        for z in range(shape[0]):
            arr[z] = rng.integers(0, 256, size=shape[1:], dtype=np.uint8)
        arr.flush()
    return path


def _job(volume: Path, out: Path):
    from monai_em.inference.blockwise import prediction_job
    from monai_em.inference.settings import WindowSettings

    settings = WindowSettings(ROI, overlap=OVERLAP, activation=None)
    return prediction_job(_network(), str(volume), out, settings, CHUNKS, BLOCK, HALO)


def _kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def _reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    return _kib("VmRSS")


def _peak() -> int:
    return _kib("VmHWM")


def _warm() -> int:
    import monai_em.inference.blockwise  # noqa: F401  (imports torch, monai)

    return os.getpid()


def _timed(job, backend: str, client=None) -> float:
    from monai_em.inference.backends import run_blocks

    t0 = time.perf_counter()
    done = run_blocks(job, backend, client=client, progress=False)
    seconds = time.perf_counter() - t0
    assert len(done) == len(job.plan), (len(done), len(job.plan))
    return seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="volumes 4x smaller along y and x")
    args = parser.parse_args(argv)
    import torch
    from distributed import Client, LocalCluster

    from monai_em.inference.dask_backend import WORKER_ENV

    torch.set_num_threads(1)  # the baseline runs like one dask worker (OMP_NUM_THREADS=1)
    scales = {k: (s[0], s[1] // 2, s[2] // 2) if args.quick else s for k, s in SCALES.items()}
    results: dict = {"throughput": {}, "memory": {}}
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        folder = Path(tmp)
        vol = _volume(folder, scales[16])
        job = _job(vol, folder / "local.ome.zarr")
        n_blocks = len(job.plan)
        local = _timed(job, "local")
        results["throughput"]["in-process"] = n_blocks / local
        for n in (1, 2):
            with (
                LocalCluster(
                    n_workers=n, threads_per_worker=1, dashboard_address=None, env=WORKER_ENV
                ) as cluster,
                Client(cluster) as client,
            ):
                client.run(_warm)
                seconds = _timed(_job(vol, folder / f"dask{n}.ome.zarr"), "dask", client)
                results["throughput"][f"dask {n} worker(s)"] = n_blocks / seconds
        r = results["throughput"]
        results["scaling_efficiency"] = r["dask 2 worker(s)"] / (2 * r["dask 1 worker(s)"])
        results["n_blocks"] = n_blocks
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, dashboard_address=None, env=WORKER_ENV
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_warm)
            for scale, shape in scales.items():
                vol = _volume(folder, shape)
                job = _job(vol, folder / f"mem{scale}.ome.zarr")
                base = client.run(_reset_peak)
                _timed(job, "dask", client)
                peak = client.run(_peak)
                results["memory"][f"{scale}x {shape}"] = {
                    "blocks": len(job.plan),
                    "peak_mib_per_worker": [round((peak[w] - base[w]) / 1024, 1) for w in sorted(base)],
                }
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
