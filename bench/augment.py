"""PyTC's default augmentation pipeline on image + label + valid mask, one thread, against a memory copy and MONAI.

    .venv/bin/python -m bench.augment [--samples 40] [--input 8 256 256] [--loader 64] [--batch 4 16 --device cuda]

Reports ms per sample (mean over random draws, each transform with its own probability) of the full
default pipeline built by ``EMAugmentor.from_targets`` (one pass, ``fuse=True``, against the
reference that runs every member one by one, ``fuse=False``; the one pass also with MetaTensor input
and with metadata tracking off, as the bundle trains), a plain copy of the same data, each
transform alone (prob 1), and MONAI built-ins doing the comparable geometric job; with ``--loader``,
samples/s of a MONAI ``DataLoader`` running the one-pass augmentor in 1 and 2 worker processes
(one torch thread each); with ``--batch``, ms per sample and samples/s of ``EMAugmentor.augment_batch``
on collated batches already on ``--device`` (every sample its own draws; one gather per label/mask key
and one ``grid_sample`` per image key for the whole batch). On a GPU::

    python -m bench.augment --samples 64 --pipeline-only --batch 4 16 --device cuda

``--profile N`` prints the torch profiler's N ops with the most own CPU time in the one pass, by op and by
op and input shape (where a sample's time goes, kernel by kernel).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.data import MetaTensor, get_track_meta, set_track_meta

from monai_em.data.synthetic import make_em_volume
from monai_em.transforms.compose import EMAugmentor, default_em_transforms

KEYS = ("image", "label", "valid_mask")
MODES = ("bilinear", "nearest", "nearest")


def _time(fn, samples: int, repeats: int = 3) -> float:
    """ms per call: the median over ``repeats`` rounds of the mean over ``samples`` calls."""
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(samples):
            fn()
        rounds.append((time.perf_counter() - t0) / samples * 1000)
    return float(np.median(rounds))


def _one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)


def _loader_rate(aug, data: dict, workers: int, samples: int) -> float:
    """Samples/s of a MONAI DataLoader (batch 1) over ``samples`` copies of ``data`` through ``aug``,
    timed from the first batch on (worker start-up left out)."""
    from monai.data import DataLoader, Dataset

    loader = DataLoader(
        Dataset([data] * (samples + 1), transform=aug),
        batch_size=1,
        num_workers=workers,
        worker_init_fn=_one_thread,
    )
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = sum(1 for _ in it)
    return n / (time.perf_counter() - t0)


def _data(size) -> dict:
    em = make_em_volume(tuple(size), seed=0)
    return {
        "image": torch.from_numpy(em.image[None].astype(np.float32) / 255.0),
        "label": torch.from_numpy(em.label[None]),
        "valid_mask": torch.from_numpy((em.label[None] > 0).astype(np.uint8)),
    }


def _monai_geometric(size):
    """MONAI built-ins for the geometric part: zoom, flips + quarter turns, and a 3D elastic / rotation."""
    from monai.transforms import Compose, Rand3DElasticd, RandFlipd, RandRotate90d, RandRotated, RandZoomd

    zoom = RandZoomd(KEYS, prob=1.0, min_zoom=0.8, max_zoom=1.25, mode=MODES, keep_size=True)
    flips = Compose([RandFlipd(KEYS, prob=0.5, spatial_axis=a) for a in (0, 1, 2)])
    rot90 = RandRotate90d(KEYS, prob=1.0, spatial_axes=(1, 2))
    rotate = RandRotated(KEYS, range_x=np.pi, prob=1.0, mode=MODES, padding_mode="zeros")
    elastic = Rand3DElasticd(
        KEYS, sigma_range=(4, 4), magnitude_range=(16, 16), prob=1.0, mode=MODES, padding_mode="zeros"
    )
    return {
        "RandZoomd": zoom,
        "RandFlipd x3": flips,
        "RandRotate90d": rot90,
        "RandRotated": rotate,
        "Rand3DElasticd": elastic,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--input", type=int, nargs=3, default=(8, 256, 256))
    parser.add_argument("--no-monai", action="store_true", help="skip the MONAI comparison")
    parser.add_argument("--pipeline-only", action="store_true", help="only the copy and full-pipeline rows")
    parser.add_argument("--loader", type=int, default=0, help="samples per DataLoader run (0: skip)")
    parser.add_argument("--batch", type=int, nargs="*", default=(), help="batch sizes for augment_batch")
    parser.add_argument("--device", default="cpu", help="device of the augment_batch rows")
    parser.add_argument(
        "--profile", type=int, default=0, help="print the torch profiler's top N ops of the one pass"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    targets = dict(zip(KEYS, ("img", "mask", "mask"), strict=True))
    fused = EMAugmentor.from_targets(args.input, targets)
    plain = EMAugmentor.from_targets(args.input, targets, fuse=False)
    size = fused.sample_size
    data = _data(size)
    nbytes = sum(v.numel() * v.element_size() for v in data.values())
    print(
        f"input {tuple(args.input)} -> sample {size}; image float32, label int32, valid mask uint8 ({nbytes / 2**20:.1f} MiB)"
    )
    results: dict[str, float] = {}
    results["memory copy"] = _time(lambda: {k: v.clone() for k, v in data.items()}, args.samples)
    for name, aug in (
        ("pipeline, one pass (fuse=True)", fused),
        ("pipeline, one by one (fuse=False)", plain),
    ):
        aug.set_random_state(0)
        results[name] = _time(lambda aug=aug: aug(data), args.samples)
    # MetaTensor input: the same run plus the affine and applied-operations record of every transform
    tracked = {k: MetaTensor(v) for k, v in data.items()}
    fused.set_random_state(0)
    results["pipeline, one pass, MetaTensor in (tracked)"] = _time(lambda: fused(tracked), args.samples)
    # metadata tracking off (as the bundle trains): plain tensors out, no record
    fused.set_random_state(0)
    was_tracking = get_track_meta()
    set_track_meta(False)
    try:
        results["pipeline, one pass, tracking off"] = _time(lambda: fused(data), args.samples)
    finally:
        set_track_meta(was_tracking)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for size_b in args.batch:
        batch = {k: v[None].expand(size_b, *v.shape).contiguous().to(args.device) for k, v in data.items()}
        fused.set_random_state(0)
        fused.augment_batch(batch)  # warm-up (CUDA context, kernels)
        sync()
        ms = _time(lambda batch=batch: (fused.augment_batch(batch), sync()), max(args.samples // size_b, 2))
        results[f"augment_batch, batch {size_b}, {args.device} (per sample)"] = ms / size_b
    if args.profile:
        _profile(fused, data, args.samples, args.profile)
    loader = {}
    for workers in (1, 2) if args.loader else ():
        loader[workers] = _loader_rate(fused, data, workers, args.loader)
    if args.pipeline_only:
        return _report(results, loader)
    tail = default_em_transforms(targets)[-4:]  # elastic, flip, rescale, rotate: one fused resampling
    tail_data = {k: v[:, :8, 8:-8, 8:-8].contiguous() for k, v in data.items()}  # after mis-alignment
    for name, fuse in (("spatial tail + crop, fused", True), ("spatial tail + crop, unfused", False)):
        aug = EMAugmentor(tail, args.input, fuse=fuse).set_random_state(0)
        results[name] = _time(lambda aug=aug: aug(tail_data), args.samples)
    for t in default_em_transforms(targets):
        t.prob = 1.0
        t.set_random_state(0)
        results[f"  {type(t).__name__} (prob 1)"] = _time(lambda t=t: t(data), max(args.samples // 4, 3))
    rot = default_em_transforms(targets, rotate={"rot90": False, "prob": 1.0})[-1]
    rot.set_random_state(0)
    results["  RandRotateXYd arbitrary angle (prob 1)"] = _time(lambda: rot(data), max(args.samples // 4, 3))
    if not args.no_monai:
        for name, t in _monai_geometric(size).items():
            t.set_random_state(0)
            results[f"  MONAI {name}"] = _time(lambda t=t: t(data), 3, repeats=1)
    return _report(results, loader)


def _profile(aug, data: dict, samples: int, rows: int) -> None:
    """The torch profiler's tables of the ``rows`` ops with the most own CPU time over ``samples`` calls (ms per
    call: divide by ``samples``), by op and by op and input shape, so each kernel's share of a sample can be
    read off."""
    from torch.profiler import ProfilerActivity, profile

    aug.set_random_state(0)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(samples):
            aug(data)
    print(f"torch profiler, one pass, {samples} samples (divide totals by {samples} for ms per sample):")
    for by_shape in (False, True):  # each op in all, then each op and input shape
        averages = prof.key_averages(group_by_input_shape=by_shape)
        print(averages.table(sort_by="self_cpu_time_total", row_limit=rows))


def _report(results: dict[str, float], loader: dict[int, float]) -> dict[str, float]:
    copy = results["memory copy"]
    for name, ms in results.items():
        rate = f"   {1000 / ms:7.1f} samples/s" if name.startswith("augment_batch") else ""
        print(f"{name:45s} {ms:9.2f} ms/sample   {ms / copy:7.1f}x copy{rate}")
    speedup = results["pipeline, one by one (fuse=False)"] / results["pipeline, one pass (fuse=True)"]
    print(f"{'one pass vs one by one (same run)':45s} {speedup:9.2f}x")
    for workers, rate in loader.items():
        print(f"{f'DataLoader, {workers} worker(s), one pass':45s} {rate:9.1f} samples/s")
    return results


if __name__ == "__main__":
    main()
