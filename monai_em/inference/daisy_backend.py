"""The daisy backend: one daisy task whose block grid is the plan's; done blocks are skipped by a skip mask."""

from __future__ import annotations

import daisy
import numpy as np

from .blockwise import BlockJob

__all__ = ["DaisyBlock", "run_daisy"]


class DaisyBlock:
    """daisy process function: maps a daisy block (its write ROI) to the plan's block id and runs it."""

    def __init__(self, job: BlockJob):
        self.job = job

    def __call__(self, block) -> None:
        start = np.asarray(tuple(block.write_roi.offset), dtype=np.int64)
        zyx = start // np.asarray(self.job.plan.block_shape)
        nz, ny, nx = self.job.plan.grid
        self.job.run(int((zyx[0] * ny + zyx[1]) * nx + zyx[2]))


def run_daisy(job: BlockJob, n_workers: int | None, progress: bool) -> list[int]:
    """Run the missing blocks of ``job`` with ``daisy.run_blockwise`` (worker processes); returns their ids.

    daisy's read ROI equals the write ROI: the halo is read by the block function itself (mirrored),
    and aligned write boxes never conflict, so every block is independent.
    """
    missing = job.missing()
    if not missing:
        return []
    plan = job.plan
    skip = np.ones(plan.grid, dtype=np.uint8)
    skip.reshape(-1)[missing] = 0
    roi = daisy.Roi((0, 0, 0), plan.block_shape)
    task = daisy.Task(
        f"monai_em_{job.fingerprint[:12]}",
        total_roi=daisy.Roi((0, 0, 0), plan.shape),
        read_roi=roi,
        write_roi=roi,
        process_function=DaisyBlock(job),
        read_write_conflict=False,
        fit="shrink",
        max_workers=int(n_workers or 1),
        max_retries=2,
        tracking_path=False,
        skip_mask=skip,
    )
    ok = daisy.run_blockwise([task], multiprocessing=True, progress=progress, summary=False)
    still = set(job.missing())
    if not ok or still:
        raise RuntimeError(
            f"daisy run of {job.output} failed: {len(still)} of {len(missing)} blocks not done, "
            f"e.g. block {sorted(still)[0] if still else '?'}"
        )
    return sorted(missing)
