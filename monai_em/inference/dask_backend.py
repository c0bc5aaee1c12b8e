"""The dask.distributed backend: one task per missing block; the job reaches each worker once, as a plugin."""

from __future__ import annotations

import time

from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from .blockwise import BlockJob

__all__ = ["WORKER_ENV", "BlockJobPlugin", "run_dask"]

# dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold at
# 128 KiB: every window buffer is then mmapped and page-faulted afresh, ~3x slower blocks here
# (docs/benchmarks.md). Large allocations stay on the heap with this (trimming still returns memory).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 * 2**20)}


class BlockJobPlugin(WorkerPlugin):
    """Holds one :class:`BlockJob` (and so one network) per worker process, also on workers that join later."""

    def __init__(self, job: BlockJob, name: str):
        self.job, self.name = job, name

    def setup(self, worker) -> None:
        on_worker = getattr(self.job.fn, "on_worker", None)
        if on_worker is not None:
            on_worker()  # e.g. the network moves to this worker's GPU, once


def run_block_on_worker(plugin_name: str, block_id: int) -> int:
    """Task body: run block ``block_id`` of the job registered as ``plugin_name`` on this worker."""
    return get_worker().plugins[plugin_name].job.run(block_id)


def run_dask(job: BlockJob, client, scheduler_address, n_workers, resources, make_bar, progress) -> list[int]:
    """Submit every missing block of ``job``; wait for all (dask reruns blocks of dead workers). Returns ids."""
    owned = []
    if client is None:
        if scheduler_address:
            client = Client(scheduler_address)
        else:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, env=WORKER_ENV)  # fmt: skip
            owned.append(cluster)
            client = Client(cluster)
        owned.insert(0, client)
    try:
        missing = job.missing()
        if not missing:
            return []
        name = f"monai_em-blocks-{job.fingerprint[:12]}-{time.time_ns()}"
        client.register_plugin(BlockJobPlugin(job, name), name=name)
        try:
            futures = [
                client.submit(
                    run_block_on_worker, name, i, key=f"{name}-{i}", pure=False, resources=resources
                )
                for i in missing
            ]
            bar = make_bar(len(job.plan), len(job.plan) - len(missing), progress, "blocks (dask)")
            done = []
            for future in as_completed(futures):
                done.append(future.result())
                bar.update()
            bar.close()
        finally:
            client.unregister_worker_plugin(name)
        return sorted(done)
    finally:
        for thing in owned:
            thing.close()
