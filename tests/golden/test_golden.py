"""Same-seed outputs of every way the training pipeline is assembled stay as pinned.

The pinned arrays (``pipelines.npz``) were written by ``python -m tests.golden.pipelines`` from the
tree before issue 18's refactor. Labels, masks and targets must match bit for bit; images within
float rounding (one grey level for integer images, which bilinear interpolation rounds).
"""

from __future__ import annotations

import numpy as np
import pytest

from .pipelines import CASES, GOLDEN, SEEDS, run


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_outputs_equal_the_pinned_ones(case, golden):
    for seed in SEEDS:
        out = run(case, seed)
        prefix = f"{case}/{seed}/"
        pinned = {k[len(prefix) :]: v for k, v in golden.items() if k.startswith(prefix)}
        assert sorted(out) == sorted(pinned), f"{case} seed {seed}: keys changed"
        for key, expected in pinned.items():
            got = out[key]
            assert got.dtype == expected.dtype and got.shape == expected.shape, f"{case} seed {seed} {key}"
            if key.endswith("/image"):
                atol = 1 if np.issubdtype(expected.dtype, np.integer) else 1e-5
                np.testing.assert_allclose(
                    got.astype(np.float64), expected, atol=atol, err_msg=f"{case} {seed} {key}"
                )
            else:
                np.testing.assert_array_equal(got, expected, err_msg=f"{case} seed {seed} {key}")


def test_the_pinned_seeds_differ(golden):
    """The pins could catch a lost draw: each case's seeds give different samples."""
    for case in CASES:
        images = [golden[f"{case}/{seed}/0/image"] for seed in SEEDS]
        assert all(not np.array_equal(images[0], other) for other in images[1:]), case
