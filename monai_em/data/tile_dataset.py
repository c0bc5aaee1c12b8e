"""TileDataset: a MONAI IterableDataset that streams chunks of huge (tiled) EM volumes."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from monai.data import IterableDataset
from monai.transforms import apply_transform
from torch.utils.data import get_worker_info

from ..deprecation import renamed_arg, renamed_attribute, renamed_value
from ..roles import role_of_key
from .chunks import chunk_box, chunk_grid, chunk_name, resolve_rank_world, split_rank_world, worker_share
from .sources import open_volume
from .tiles import check_compatible

__all__ = ["TileDataset"]

logger = logging.getLogger(__name__)
STAGES = ("train", "inference")


class TileDataset(IterableDataset):
    """Chunks of large volumes (tile JSONs, whole-volume files or arrays) as a MONAI ``IterableDataset``.

    The volumes are split into a grid of ``chunk_num = (nz, ny, nx)`` chunks (see
    :mod:`monai_em.data.chunks`). Each chunk is read (only the tiles it touches, mirror-padded by
    ``pad_size`` per side) into a dict ``{key: (1, Z, Y, X) array, "chunk_id", "chunk_box",
    "chunk_name", "chunk_round", "worker"}`` (``chunk_box``: the padded box read, flat
    ``[z0, z1, y0, y1, x0, x1]``; ``chunk_name``: the unpadded box as ``z0-z1-y0-y1-x0-x1``).

    - ``stage="train"``: training chunks (neighbours overlap by half). Rounds of chunks without end
      (or ``num_rounds``): in each round every chunk is read by exactly one global worker
      ``g = rank * num_workers + worker_id``, namely the positions ``g, g + G, ...`` of a permutation
      drawn from ``(seed, epoch, round)`` and shared by all ranks and workers, so a worker picks unused
      chunks at random and starts over when its share is used. From each chunk it yields
      ``chunk_iter`` samples: ``transform`` (e.g. a rejection crop plus the augmentor) applied to the
      chunk dict, whose arrays stay the same objects for all samples of a chunk; a transform returning
      a list (``num_samples``) is flattened. With more global workers than chunks, a worker without
      a chunk re-reads one of the round's chunks.
    - ``stage="inference"``: disjoint chunks covering the volume, each once, in id order; global worker
      ``g`` of ``G`` takes the contiguous share ``split_rank_world(n_chunks, g, G)`` (so rank ``r``
      gets the ``rank-world`` split). ``transform`` (optional) is applied to each chunk dict.

    Chunks are assigned before anything is read, and the next chunk is read by a background thread
    while the current one is sampled (``prefetch``; two chunks in memory). Random streams: at the
    start of each iteration the dataset seeds ``transform`` from ``SeedSequence([seed, epoch, rank,
    worker_id])``, so every worker and rank draws differently and runs are reproducible from
    ``seed``. ``epoch`` advances by one per iteration in the process that iterates (num_workers=0,
    or ``persistent_workers=True``); with non-persistent workers call :meth:`set_epoch` each epoch.

    Use with ``monai.data.DataLoader(ds, batch_size=..., num_workers=...)``; training streams are
    endless, so ``SupervisedTrainer`` needs ``epoch_length``.

    Args:
        volumes: ``{key: source}``; a source is anything :func:`~monai_em.data.sources.open_volume`
            takes: a tile JSON path, an HDF5 path (read box by box from disk), a zarr / OME-Zarr / N5 /
            precomputed path or URL (read chunk by chunk), a TIFF/NIfTI path, ``{"path": ...,
            "dataset": ..., "level": ...}``, an array ``(Z, Y, X)`` or a VolumeSource. All must cover
            the same voxels (shape, voxel size, offset; and tile_ratio), checked up front.
        chunk_num: chunks per axis ``(nz, ny, nx)``; ``(1, 1, 1)`` samples whole volumes.
        chunk_iter: samples drawn per chunk in training (PyTC ``DATA_CHUNK_ITER``).
        stage: ``"train"`` or ``"inference"`` (the old name ``mode`` is accepted with a
            DeprecationWarning, and refused from version 0.3).
        pad_size: voxels added on each side of every chunk (int or per axis ``(z, y, x)``).
        transform: MONAI transform / Compose applied to each chunk dict.
        seed: base seed of the chunk order and the augmentation streams.
        rank, world_size: this process and the number of processes; default from
            ``torch.distributed`` when initialised, else 0 and 1.
        prefetch: read the next chunk in a background thread.
        threads: tile decode threads per volume read.
        fill_value: value for missing image tiles (labels and masks: 0).
        strict: raise on a missing tile instead of filling it.
        roles: ``{key: "image" | "label" | "mask"}``; default by key name ("mask"/"valid" -> mask,
            "label"/"seg" -> label, "image"/"img"/"raw" -> image; any other name -> image, with a warning).
        num_rounds: stop training after this many rounds (default: endless).
        skip_if_exists: inference only: a path template with ``{name}`` (the chunk name); chunks whose
            file exists are skipped before reading (resumable inference).

    Example:
        >>> ds = TileDataset({"image": "im.json", "label": "seg.json"}, chunk_num=(2, 4, 4), chunk_iter=500,
        ...                  transform=RandSpatialCropd(["image", "label"], (17, 129, 129)))  # doctest: +SKIP
        >>> loader = monai.data.DataLoader(ds, batch_size=4, num_workers=2)  # doctest: +SKIP
    """

    @renamed_arg("mode", "stage")
    def __init__(
        self,
        volumes: Mapping,
        chunk_num: Sequence[int] = (1, 1, 1),
        chunk_iter: int = 100,
        stage: str = "train",
        pad_size: int | Sequence[int] = 0,
        transform=None,
        seed: int | None = 0,
        rank: int | None = None,
        world_size: int | None = None,
        prefetch: bool = True,
        threads: int = 2,
        fill_value: float = 128,
        strict: bool = False,
        roles: Mapping[str, str] | None = None,
        num_rounds: int | None = None,
        skip_if_exists: str | None = None,
        *,
        mode: str | None = None,
    ):
        super().__init__(data=[], transform=transform)
        stage, name = renamed_value("mode", mode, "stage", stage)
        if stage not in STAGES:
            raise ValueError(f"{name} must be one of {STAGES}, got {stage!r}")
        if not isinstance(volumes, Mapping) or not volumes:
            raise ValueError(f"volumes must be a non-empty dict {{key: source}}, got {volumes!r}")
        if int(chunk_iter) < 1:
            raise ValueError(f"chunk_iter must be >= 1, got {chunk_iter}")
        if num_rounds is not None and int(num_rounds) < 1:
            raise ValueError(f"num_rounds must be >= 1 or None, got {num_rounds}")
        roles = dict(roles or {})
        self.volumes = {
            k: open_volume(
                v,
                role=roles[k] if k in roles else role_of_key(k),
                fill_value=fill_value,
                strict=strict,
                threads=threads,
            )
            for k, v in volumes.items()
        }
        check_compatible(self.volumes)
        self.shape = tuple(next(iter(self.volumes.values())).shape)
        self.chunk_num = tuple(int(n) for n in chunk_num)
        self.n_chunks = chunk_grid(self.chunk_num)
        self.stage = stage
        self.pad_size = pad_size
        for i in range(self.n_chunks):  # validates chunk_num against the shape up front
            chunk_box(self.shape, self.chunk_num, i, stage == "train", pad_size)
        self.chunk_iter = int(chunk_iter)
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.prefetch = bool(prefetch)
        self.num_rounds = None if num_rounds is None else int(num_rounds)
        self.skip_if_exists = skip_if_exists
        self.epoch = 0
        self._loader_seed = 0
        # seconds the consumer waited for each chunk read (in this process)
        self.load_wait_s: list[float] = []

    # seeding ----------------------------------------------------------------------------------
    def set_random_state(self, seed: int | None = None, state=None) -> TileDataset:
        """Called by MONAI's DataLoader (``set_rnd``) with a per-worker seed.

        With an int ``seed`` given at construction it is ignored: streams depend only on ``(seed, epoch,
        rank, worker)`` and runs are reproducible from the config. With ``seed=None`` the value given here
        (the DataLoader's torch-derived seed) drives the augmentation streams. It is not passed on to
        ``transform``: the dataset seeds its transform itself at the start of each iteration.
        """
        if seed is not None:
            self._loader_seed = int(seed)
        return self

    mode = renamed_attribute("mode", "stage")

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that keys chunk orders and augmentation streams (like ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def _rank_world(self) -> tuple[int, int]:
        return resolve_rank_world(self.rank, self.world_size, env=False)

    # chunks -----------------------------------------------------------------------------------
    def chunk_box(self, chunk_id: int, padded: bool = True) -> tuple[tuple[int, int], ...]:
        """Box of chunk ``chunk_id`` in this dataset's stage (with or without ``pad_size``)."""
        return chunk_box(
            self.shape, self.chunk_num, chunk_id, self.stage == "train", self.pad_size if padded else 0
        )

    def load_chunk(self, chunk_id: int) -> dict:
        """Read one chunk of every volume: ``{key: (1, Z, Y, X) numpy array, "chunk_id", ...}``."""
        box = self.chunk_box(chunk_id)
        out: dict = {}
        for key, vol in self.volumes.items():
            arr = vol.read(box)
            out[key] = arr[None] if arr.ndim == 3 else arr
        out["chunk_id"] = int(chunk_id)
        out["chunk_box"] = np.array([v for ab in box for v in ab], dtype=np.int64)
        out["chunk_name"] = chunk_name(self.chunk_box(chunk_id, padded=False))
        return out

    def _skipped(self, chunk_id: int) -> bool:
        if self.skip_if_exists is None:
            return False
        return os.path.exists(
            self.skip_if_exists.format(name=chunk_name(self.chunk_box(chunk_id, padded=False)))
        )

    def _schedule(self, g: int, n_global: int, epoch: int) -> Iterator[tuple[int, int]]:
        """``(round, chunk_id)`` this global worker reads, in order."""
        if self.stage == "inference":
            for cid in split_rank_world(self.n_chunks, g, n_global):
                if not self._skipped(cid):
                    yield 0, cid
            return
        seed = 0 if self.seed is None else int(self.seed)
        k = 0
        while self.num_rounds is None or k < self.num_rounds:
            for cid in worker_share(self.n_chunks, g, n_global, seed, (epoch, k)):
                yield k, cid
            k += 1

    def _chunks(self, schedule: Iterator[tuple[int, int]]) -> Iterator[tuple[int, dict]]:
        """Loaded chunks in schedule order; with prefetch the next one is read while this one is used."""
        if not self.prefetch:
            for k, cid in schedule:
                t0 = time.perf_counter()
                data = self.load_chunk(cid)
                self.load_wait_s.append(time.perf_counter() - t0)
                yield k, data
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="chunk-prefetch")
        try:
            nxt = next(schedule, None)
            fut = pool.submit(self.load_chunk, nxt[1]) if nxt is not None else None
            while fut is not None:
                t0 = time.perf_counter()
                data = fut.result()
                self.load_wait_s.append(time.perf_counter() - t0)
                k = nxt[0]
                nxt = next(schedule, None)
                fut = pool.submit(self.load_chunk, nxt[1]) if nxt is not None else None
                yield k, data
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def __iter__(self):
        info = get_worker_info()
        n_workers, worker_id = (info.num_workers, info.id) if info is not None else (1, 0)
        rank, world = self._rank_world()
        g, n_global = rank * n_workers + worker_id, world * n_workers
        epoch = self.epoch
        self.epoch += 1
        base = self._loader_seed if self.seed is None else int(self.seed)
        rng = np.random.default_rng(np.random.SeedSequence([base, epoch, rank, worker_id]))
        if self.transform is not None and hasattr(self.transform, "set_random_state"):
            self.transform.set_random_state(seed=int(rng.integers(2**31 - 1)))
        n_samples = self.chunk_iter if self.stage == "train" else 1
        for k, chunk in self._chunks(self._schedule(g, n_global, epoch)):
            chunk.update(chunk_round=k, worker=g)
            for _ in range(n_samples):
                out = dict(chunk)
                if self.transform is not None:
                    out = apply_transform(self.transform, out)
                if isinstance(out, (list, tuple)):
                    yield from out
                else:
                    yield out
