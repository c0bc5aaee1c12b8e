"""Backends that only schedule the blocks of a :class:`~monai_em.inference.blockwise.BlockJob`.

- ``"local"`` (alias ``"torch"``): in this process, one block after another. Under ``torchrun`` / ``torch.distributed``
  (or env ``RANK`` / ``WORLD_SIZE``) each rank takes a contiguous share of the missing blocks,
  listed by every rank before any rank writes (a barrier when torch.distributed is initialised).
- ``"dask"``: one task per missing block on a dask.distributed cluster (a ``Client``, a scheduler
  address, or a ``LocalCluster`` started for the run). The job (with its network) goes to each
  worker once, as a worker plugin (also to workers that join or replace dead ones); a task only
  names its block. A worker that dies loses its running blocks; dask reruns them elsewhere.
- ``"daisy"`` (optional extra): one ``daisy.Task`` whose block grid is the plan's, ``n_workers``
  worker processes, blocks already done passed as daisy's skip mask.
"""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from ..data.chunks import resolve_rank_world, split_rank_world
from .blockwise import BlockJob

__all__ = ["BACKENDS", "run_blocks"]

BACKENDS = ("local", "torch", "dask", "daisy")


def run_blocks(
    job: BlockJob,
    backend: str = "local",
    *,
    client=None,
    scheduler_address: str | None = None,
    n_workers: int | None = None,
    resources: dict | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
) -> list[int]:
    """Run the blocks of ``job`` that are missing or stale; returns the ids computed (by this rank, or the cluster).

    Args:
        backend: ``"local"`` (= ``"torch"``), ``"dask"`` or ``"daisy"`` (see the module docstring).
        client: a ``distributed.Client`` (dask); else ``scheduler_address`` (``"tcp://host:8786"``);
            else a ``LocalCluster(n_workers, threads_per_worker=1)`` for this run (None: dask's default).
            daisy: ``n_workers`` worker processes (default 1).
        resources: dask worker resources each block needs, e.g. ``{"GPU": 1}`` (workers started with
            ``--resources GPU=1`` run one block at a time per GPU).
        rank / world_size: this process's share (local); default :func:`resolve_rank_world`.
        progress: tqdm bar of blocks done / total with blocks/s, on stderr.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "dask":
        from .dask_backend import run_dask

        return run_dask(job, client, scheduler_address, n_workers, resources, _bar, progress)
    if backend == "daisy":
        from .daisy_backend import run_daisy

        return run_daisy(job, n_workers, progress)
    rank, world_size = resolve_rank_world(rank, world_size)
    missing = job.missing()
    dist = torch.distributed
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()  # every rank has listed the missing blocks before any rank writes
    ids = [missing[i] for i in split_rank_world(len(missing), rank, world_size)]
    bar = _bar(len(job.plan), len(job.plan) - len(missing), progress, f"blocks (rank {rank}/{world_size})")
    done = []
    for block_id in ids:
        done.append(job.run(block_id))
        bar.update()
    bar.close()
    return done


def _bar(total: int, initial: int, progress: bool, desc: str):
    return tqdm(total=total, initial=initial, desc=desc, unit="block", disable=not progress, file=sys.stderr)
