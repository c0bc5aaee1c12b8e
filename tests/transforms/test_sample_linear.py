"""sample_linear (the bilinear read of every image resampling) against a float64 loop over the four neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_em.transforms.resample import sample_linear


def _bilinear_oracle(x: np.ndarray, yx: np.ndarray) -> np.ndarray:
    """(N, H, W) sampled at (Ho, Wo, 2) pixel positions, zero outside: each in-bounds neighbour weighted."""
    n, h, w = x.shape
    out = np.zeros((n, *yx.shape[:2]))
    for i, j in np.ndindex(*yx.shape[:2]):
        y, xx = yx[i, j]
        y0, x0 = int(np.floor(y)), int(np.floor(xx))
        for dy in (0, 1):
            for dx in (0, 1):
                r, c = y0 + dy, x0 + dx
                weight = (1 - abs(y - r)) * (1 - abs(xx - c))
                if 0 <= r < h and 0 <= c < w:
                    out[:, i, j] += weight * x[:, r, c]
    return out


@pytest.mark.parametrize("shape", [(3, 9, 14), (2, 2, 7), (1, 6, 2)])
def test_sample_linear_matches_the_four_neighbour_sum(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g)
    _, h, w = shape
    # points inside, between pixels, on the last row / column and outside on every side
    yx = torch.rand((5, 6, 2), generator=g) * torch.tensor([h + 3.0, w + 3.0]) - 1.5
    yx[0, 0], yx[0, 1] = torch.tensor([h - 1.0, w - 1.0]), torch.tensor([0.0, 0.0])
    got = sample_linear(x[None], yx)
    expected = _bilinear_oracle(x.double().numpy(), yx.double().numpy())
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    # a batch of two: each sample read at its own points
    batch = sample_linear(torch.stack([x, 1 - x]), torch.stack([yx, yx.flip(0)]))
    np.testing.assert_allclose(batch[0].numpy(), got.numpy(), atol=1e-6)
    flipped = _bilinear_oracle(1 - x.double().numpy(), yx.flip(0).double().numpy())
    np.testing.assert_allclose(batch[1].numpy(), flipped, atol=1e-5)


@pytest.mark.parametrize("points", [torch.float32, torch.float64])
@pytest.mark.parametrize("batched", [False, True])
def test_sample_linear_grid_is_the_per_axis_normalisation(points, batched):
    """The grid handed to grid_sample is exactly ``x * 2 / (W - 1) - 1`` and ``y * 2 / (H - 1) - 1`` per axis,
    computed in the points' dtype (positions feed label rounding elsewhere: not an ulp may move)."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand((2, 3, 11, 17), generator=g)[: 2 if batched else 1]
    yx = (torch.rand((2, 7, 5, 2), generator=g, dtype=points) * 20 - 2)[: 2 if batched else 1]
    grid = torch.stack((yx[..., 1] * (2.0 / 16) - 1.0, yx[..., 0] * (2.0 / 10) - 1.0), -1).to(x.dtype)
    want = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    got = sample_linear(x, yx) if batched else sample_linear(x, yx[0])[None]
    assert torch.equal(got, want)
