"""The optional daisy backend: same output as in-process, and it computes only the blocks not done yet."""

from __future__ import annotations

import numpy as np
import pytest

from monai_em.data.ome_zarr import open_ome_zarr
from monai_em.inference.backends import run_blocks
from monai_em.inference.blockwise import prediction_job
from monai_em.inference.settings import WindowSettings

from .blockfns import CountBlocks
from .helpers import reflect_conv

pytest.importorskip("daisy")

SHAPE = (13, 37, 41)
SETTINGS = WindowSettings((4, 12, 12), overlap=0.5, output_dtype="float32")


@pytest.mark.slow  # daisy's 2 worker processes import torch and MONAI: ~30-70 s on a busy 2-core machine
def test_daisy_resumes_and_equals_in_process(tmp_path):
    import daisy.logging

    basedir = daisy.logging.get_log_basedir()
    daisy.logging.set_log_basedir(tmp_path / "daisy_logs")  # worker logs stay out of the checkout
    try:
        _resume_and_compare(tmp_path)
    finally:
        daisy.logging.set_log_basedir(basedir)


def _resume_and_compare(tmp_path):
    path = tmp_path / "volume.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, size=SHAPE, dtype=np.uint8))

    def job_of(out):
        return prediction_job(reflect_conv(), str(path), out, SETTINGS, (4, 8, 8), (4, 16, 16), (2, 4, 4))

    ref = job_of(tmp_path / "ref.zarr")
    run_blocks(ref, progress=False)
    job = job_of(tmp_path / "p.zarr")
    for i in (0, 3, 7):  # a run stopped after three blocks
        job.run(i)
    job.fn = CountBlocks(job.fn, tmp_path / "count.txt")
    missing = [i for i in range(len(job.plan)) if i not in (0, 3, 7)]
    assert run_blocks(job, "daisy", n_workers=2, progress=False) == missing
    assert job.fn.counted() == missing  # the done blocks were skipped, each missing one ran once
    np.testing.assert_array_equal(
        open_ome_zarr(tmp_path / "p.zarr")[:], open_ome_zarr(tmp_path / "ref.zarr")[:]
    )
