"""The dask.distributed backend on a real LocalCluster (2 worker processes): equal to in-process, survives
a SIGKILLed worker, resumes after the whole cluster stops."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import monai_em
from monai_em.data.ome_zarr import open_ome_zarr
from monai_em.inference.backends import run_blocks
from monai_em.inference.blockwise import prediction_job
from monai_em.inference.dask_backend import WORKER_ENV
from monai_em.inference.settings import WindowSettings

from .blockfns import CountBlocks, KillWorkerOnce, StallAt
from .helpers import reflect_conv

distributed = pytest.importorskip("distributed")

SHAPE = (13, 37, 41)  # not a multiple of the chunks (4, 8, 8) nor of the blocks (4, 16, 16)
SETTINGS = WindowSettings((4, 12, 12), overlap=0.5, output_dtype="float32")
REPO = str(Path(monai_em.__file__).resolve().parents[1])


def local_cluster():
    """Two spawned worker processes that import this checkout of monai_em and tests/ (not an installed copy)."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p), **WORKER_ENV}
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                    env=env)  # fmt: skip


@pytest.fixture(scope="module")
def volume_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("vol") / "volume.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, size=SHAPE, dtype=np.uint8))
    return path


@pytest.fixture(scope="module")
def reference(volume_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    run_blocks(job_of(volume_path, out), progress=False)
    return open_ome_zarr(out)[:]


def job_of(volume_path, out):
    return prediction_job(reflect_conv(), str(volume_path), out, SETTINGS, (4, 8, 8), (4, 16, 16), (2, 4, 4))


def test_local_cluster_equals_in_process_bit_for_bit(volume_path, reference, tmp_path):
    job = job_of(volume_path, tmp_path / "p.zarr")
    job.fn = CountBlocks(job.fn, tmp_path / "count.txt")
    with local_cluster() as cluster, distributed.Client(cluster) as client:
        done = run_blocks(job, "dask", client=client, progress=False)

    n = len(job.plan)
    assert done == list(range(n)) and job.fn.counted() == list(range(n))  # each block once
    out = open_ome_zarr(tmp_path / "p.zarr")[:]
    assert out.shape == (1, *SHAPE)
    np.testing.assert_array_equal(out, reference)


@pytest.mark.slow
def test_sigkilled_worker_is_replaced_and_output_identical(volume_path, reference, tmp_path):
    job = job_of(volume_path, tmp_path / "p.zarr")
    job.fn = KillWorkerOnce(job.fn, block_id=7, flag=tmp_path / "killed")
    with local_cluster() as cluster, distributed.Client(cluster) as client:
        done = run_blocks(job, "dask", client=client, progress=False)
    assert (tmp_path / "killed").exists()  # a worker really died inside block 7
    assert done == list(range(len(job.plan))) and job.missing() == []
    np.testing.assert_array_equal(open_ome_zarr(tmp_path / "p.zarr")[:], reference)


@pytest.mark.slow
def test_stopped_cluster_rerun_computes_only_missing_blocks(volume_path, reference, tmp_path):
    out = tmp_path / "p.zarr"
    job = job_of(volume_path, out)
    n = len(job.plan)
    job.fn = StallAt(job.fn, block_id=n // 2, flag=tmp_path / "stalled")
    errors = []
    with local_cluster() as cluster:
        client = distributed.Client(cluster)

        def run():
            try:
                run_blocks(job, "dask", client=client, progress=False)
            except Exception as e:  # the cluster goes away under the run
                errors.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        while not (tmp_path / "stalled").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        client.close()
        cluster.close()
        thread.join(60)
    before = job_of(volume_path, out).missing()
    assert errors and 0 < len(before) < n  # stopped mid-run: some blocks done, some not
    rerun = job_of(volume_path, out)
    rerun.fn = CountBlocks(rerun.fn, tmp_path / "count.txt")
    with local_cluster() as cluster, distributed.Client(cluster) as client:
        done = run_blocks(rerun, "dask", client=client, progress=False)
    assert done == before and rerun.fn.counted() == before  # only the missing blocks were computed
    np.testing.assert_array_equal(open_ome_zarr(out)[:], reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_workers_with_resources_match_the_cpu_run(volume_path, reference, tmp_path):
    settings = WindowSettings((4, 12, 12), overlap=0.5, output_dtype="float32", device="cuda")
    job = prediction_job(reflect_conv(), str(volume_path), tmp_path / "p.zarr", settings, (4, 8, 8), (4, 16, 16),
                         (2, 4, 4))  # fmt: skip
    env = {"PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, resources={"GPU": 1}, dashboard_address=None,
                                  env=env) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        done = run_blocks(job, "dask", client=client, resources={"GPU": 1}, progress=False)
        assert client.run(torch.cuda.is_initialized) == {w: True for w in client.scheduler_info()["workers"]}
    assert done == list(range(len(job.plan)))
    np.testing.assert_allclose(open_ome_zarr(tmp_path / "p.zarr")[:], reference, atol=1e-5)
