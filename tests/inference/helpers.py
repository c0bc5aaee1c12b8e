"""Analytic networks for inference tests: outputs known in closed form, calls counted."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Pointwise(nn.Module):
    """``(B, 1, ...) -> (B, 2, ...)``: channel 0 = 2x + 0.1, channel 1 = -x. Window placement cannot matter."""

    def __init__(self, dims: int = 3, fail_at_call: int | None = None):
        super().__init__()
        self.dims = dims
        self.calls = 0
        self.fail_at_call = fail_at_call

    def forward(self, x):
        self.calls += 1
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            raise RuntimeError(f"injected failure at call {self.calls}")
        if x.ndim != self.dims + 2 or x.shape[1] != 1:
            raise ValueError(f"Pointwise({self.dims}D) takes (B, 1, ...) windows, got {tuple(x.shape)}")
        return torch.cat([2 * x + 0.1, -x], dim=1)


def reflect_conv(seed: int = 0) -> nn.Module:
    """A 3x3x3 convolution with reflect padding and fixed weights (receptive radius 1)."""
    conv = nn.Conv3d(1, 1, 3, padding=1, padding_mode="reflect")
    w = np.random.default_rng(seed).normal(size=(1, 1, 3, 3, 3)).astype(np.float32)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.zero_()
    return conv


def pointwise_reference(volume: np.ndarray) -> np.ndarray:
    """What :class:`Pointwise` gives for a uint8 ``(Z, Y, X)`` volume scaled by 1/255: ``(2, Z, Y, X)``."""
    x = volume.astype(np.float32) / 255
    return np.stack([2 * x + 0.1, -x])


class Counted(nn.Module):
    """Wraps a module and counts its forward calls (``calls``); records the inputs when ``record``."""

    def __init__(self, inner: nn.Module, record: bool = False):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.inputs = [] if record else None

    def forward(self, x):
        self.calls += 1
        if self.inputs is not None:
            self.inputs.append(x.detach().clone())
        return self.inner(x)
