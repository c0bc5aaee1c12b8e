"""Blockwise work, engine-free: a job = a volume, a block plan, a block function, an output array, done-markers.

:meth:`BlockJob.run` does one block: read its read box (mirrored at the volume borders by the
source's own ``read``), apply the block function, write exactly the block's aligned write box into
the output array, then mark the block done with the job's fingerprint. Backends
(:mod:`monai_em.inference.backends`) only decide which process runs which block, so every backend
gives the in-process result bit for bit, and a rerun computes only missing or stale blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zarr

from ..data.chunks import Block, BlockPlan
from ..data.ome_zarr import open_ome_zarr
from ..data.sources import open_volume
from ..data.volume import geometry
from .settings import WindowSettings
from .window import named_error
from .writers import DoneMarkers, create_output, fingerprint_of

__all__ = ["BlockJob", "PredictBlock", "markers_folder", "prediction_job"]


class PredictBlock:
    """Block function of inference: ``(C, *read)`` data -> ``(C', *write)`` prediction in ``output_dtype``.

    Gaussian-blended sliding windows (and TTA) over the whole read box, cropped to the write box.
    The read box must be at least one window (plan with ``min_read=settings.roi``).
    """

    def __init__(self, network: Callable, settings: WindowSettings):
        self.network, self.settings = network, settings
        self.predictor = settings.predictor(network)

    def __call__(self, data: np.ndarray, block: Block) -> np.ndarray:
        data = data[None] if data.ndim == 3 else data
        return self.settings.predict(self.predictor, data, block.crop, f"block {block.name}")

    def on_worker(self) -> None:
        """Called once in each worker process that receives this function: a module moves to ``settings.device``
        there (e.g. a dask worker's GPU), never in the process that built it."""
        if self.settings.device is not None and isinstance(self.network, torch.nn.Module):
            self.network.to(self.settings.device)

    def out_channels(self, in_channels: int = 1) -> int:
        """Output channels, from one network call on a zero window."""
        dev = self.settings.device or next(
            (p.device for p in getattr(self.network, "parameters", lambda: [])()), "cpu"
        )
        with torch.no_grad():
            return int(self.predictor(torch.zeros((1, in_channels, *self.settings.roi), device=dev)).shape[1])


def markers_folder(output: str | os.PathLike) -> Path:
    """Done-markers of the blocks of ``output``: the sibling folder ``<output stem>.blocks``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.blocks")


class BlockJob:
    """Everything a process needs to run any block of one blockwise job; picklable (sent once per worker).

    Args:
        source: the input volume: anything :func:`~monai_em.data.sources.open_volume` takes. Give a
            path (or a small picklable source) when blocks run on other processes; each opens it itself.
        plan: the :class:`~monai_em.data.chunks.BlockPlan` (write boxes aligned to ``output``'s chunks).
        fn: block function ``fn(data (C, *read_shape), block) -> (C', *write_shape)`` (e.g. :class:`PredictBlock`).
        output: path of the ``(C', Z, Y, X)`` output array (made by :meth:`create`).
        fingerprint: identifies ``fn`` and its settings; a block is done when its marker holds it.
        input_dataset: HDF5 dataset name when ``source`` is an HDF5 path.
    """

    def __init__(self, source, plan: BlockPlan, fn: Callable, output, fingerprint: str, input_dataset=None):
        self.source, self.plan, self.fn = source, plan, fn
        self.output, self.fingerprint, self.input_dataset = Path(output), str(fingerprint), input_dataset
        self.markers = DoneMarkers(markers_folder(self.output))
        self._opened = None

    def __getstate__(self):
        return {**self.__dict__, "_opened": None}  # open handles stay in their process

    def _open(self):
        if self._opened is None or self._opened[0] != os.getpid():
            source = open_volume(self.source, dataset=self.input_dataset)
            self._opened = (os.getpid(), source, open_ome_zarr(self.output, mode="r+"))
        return self._opened[1:]

    def create(
        self, channels: int, dtype, chunks, attrs: dict | None = None, geometry=None, shards=None
    ) -> zarr.Array:
        """Create (or reopen, when it matches) the OME-Zarr output; a replaced output loses its markers.

        ``geometry``: the input's ``(voxel_size, offset, unit)`` (:func:`~monai_em.data.volume.geometry`).
        ``shards``: ``(z, y, x)`` shards of the output (then blocks must be whole shards).
        """
        chunks = (int(channels), *(int(c) for c in chunks))
        unit_of_writing = chunks[1:] if shards is None else tuple(int(s) for s in shards)
        if any(b % c for b, c in zip(self.plan.block_shape, unit_of_writing, strict=True)):
            what = "chunks" if shards is None else "shards"
            raise ValueError(f"block shape {self.plan.block_shape} is not a multiple of the output {what} "
                             f"{unit_of_writing} of {self.output}: concurrent writers would share them")  # fmt: skip
        voxel_size, offset, unit = geometry or ((1, 1, 1), (0, 0, 0), None)
        arr, reused = create_output(
            self.output, (int(channels), *self.plan.shape), dtype, chunks, voxel_size=voxel_size, offset=offset,
            unit=unit, attrs={**(attrs or {}), "fingerprint": self.fingerprint}, shards=shards,
        )  # fmt: skip
        if not reused:
            self.markers.clear()  # a new (empty) output: no block is done
        return arr

    def missing(self) -> list[int]:
        """Ids of the blocks without a marker holding this job's fingerprint, in plan order."""
        return [b.id for b in self.plan if self.markers.fingerprint(b.name) != self.fingerprint]

    def run(self, block_id: int) -> int:
        """Compute, write and mark one block; returns its id."""
        block = self.plan.block(block_id)
        source, out = self._open()
        try:
            data = source.read(block.read_box)
            result = np.asarray(self.fn(data, block))
        except Exception as e:
            raise named_error(e, f"block {block_id} ({block.name}) of {self.output} failed") from e
        want = (out.shape[0], *(b - a for a, b in block.write_box))
        if result.shape != want or result.dtype != out.dtype:
            raise ValueError(f"block function returned {result.shape} {result.dtype} for block {block.name} "
                             f"of {self.output}, expected {want} {out.dtype}")  # fmt: skip
        out[(slice(None), *(slice(a, b) for a, b in block.write_box))] = result
        self.markers.mark(block.name, self.fingerprint, block.write_box)  # after the data: marked == written
        return block_id


def prediction_job(
    network: Callable,
    source,
    output: str | os.PathLike,
    settings: WindowSettings,
    chunks,
    block_shape=None,
    halo=0,
    input_dataset: str | None = None,
    attrs: dict | None = None,
    shards=None,
) -> BlockJob:
    """The blockwise inference job of ``network`` over ``source``, its output array created (or reopened).

    Args:
        chunks: output chunks ``(z, y, x)``; blocks are ``block_shape`` (default ``chunks``) rounded up
            to a multiple of them.
        halo: mirrored context read around each block per side (use at least half the window, or the
            network's receptive radius); a block plus halo smaller than a window is enlarged to it.
        attrs: extra JSON attributes of the output (the settings and fingerprint are always stored).
        shards: ``(z, y, x)`` shards of the output (zarr v3, multiples of ``chunks``): blocks are then
            rounded up to whole shards, since a shard is one file that only one writer may touch.
    """
    opened = open_volume(source, dataset=input_dataset)
    plan = BlockPlan.aligned(
        opened.shape, chunks if shards is None else shards, block_shape, halo, settings.roi
    )
    fn = PredictBlock(network, settings)
    layout = {"block_shape": list(plan.block_shape), "halo": list(plan.halo)}
    fingerprint = fingerprint_of(network, {**settings.as_dict(), **layout})
    job = BlockJob(source, plan, fn, output, fingerprint, input_dataset)
    meta = {"settings": {**settings.as_dict(), **layout}, **(attrs or {})}
    probe = opened.read(((0, 1), (0, 1), (0, 1)))
    channels = fn.out_channels(1 if probe.ndim == 3 else probe.shape[0])
    job.create(channels, settings.output_dtype, chunks, meta, geometry(opened), shards)
    return job
