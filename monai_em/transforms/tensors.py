"""Tensor and dtype helpers every transform shares: plain views in, the MONAI output type out, and
the unsigned integer dtypes torch has few kernels for.

Inputs are numpy arrays, torch tensors (CPU or CUDA) or MetaTensors. A transform works on
:func:`as_torch` (a plain tensor, no copy where possible) and hands back :func:`like_input` (the
MONAI type, the input's metadata, the result's dtype and device); :func:`as_output` is the untouched
case. ``uint16/32/64`` data goes through :func:`signed_view` or :func:`unsigned_as_signed` where torch
lacks a kernel, and an interpolated float result comes back to its dtype with :func:`cast_back`.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.utils import convert_to_dst_type, convert_to_tensor

__all__ = [
    "as_output",
    "as_torch",
    "cast_back",
    "like_input",
    "max_value",
    "signed_view",
    "unsigned_as_signed",
]


def as_torch(img) -> torch.Tensor:
    """A plain torch tensor view of ``img`` (MetaTensor stripped, numpy wrapped without copy)."""
    if isinstance(img, torch.Tensor):
        return img.as_tensor() if hasattr(img, "as_tensor") else img
    arr = np.ascontiguousarray(img)
    if any(st < 0 for st in arr.strides):  # numpy calls an array with a length-1 axis contiguous
        arr = arr.copy()  # whatever its stride there; torch refuses negative strides
    return torch.as_tensor(arr)


def as_output(img) -> torch.Tensor:
    """``img`` untouched, as the MONAI output type in its own dtype (MONAI's ``convert_to_tensor`` would
    turn numpy uint16 / uint32 / uint64 into int32 / int64, so a skipped transform changed the dtype)."""
    if isinstance(img, np.ndarray):
        img = as_torch(img)
    return convert_to_tensor(img, track_meta=get_track_meta())


_SIGNED_OF = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_WIDER_OF = {torch.uint16: torch.int32, torch.uint32: torch.int64}


def signed_view(t: torch.Tensor) -> torch.Tensor:
    """``t`` as the signed dtype of the same size if it is uint16/32/64 (same bits), else ``t``.

    For kernels that only move voxels (gather, flip, rot90), which torch lacks for those dtypes;
    ``.view(t.dtype)`` on the result gives the original dtype back.
    """
    return t.view(_SIGNED_OF[t.dtype]) if t.dtype in _SIGNED_OF else t


def max_value(t: torch.Tensor) -> int:
    """Largest value of an integer tensor as a Python int, 0 when empty (torch lacks a max kernel for
    uint16/32/64: those are reduced in numpy, exactly)."""
    if not t.numel():
        return 0
    if t.dtype in _SIGNED_OF:
        return int(t.detach().cpu().numpy().max())
    return int(t.max())


def cast_back(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float result (interpolated, averaged) -> ``dtype``: integers rounded and clamped to their
    range, bool thresholded at 0.5, floats converted. May round ``out`` in place."""
    if out.dtype == dtype:
        return out
    if dtype == torch.bool:
        return out > 0.5
    if dtype.is_floating_point:
        return out.to(dtype)
    info = torch.iinfo(dtype)
    return out.round_().clamp_(info.min, info.max).to(dtype)


def unsigned_as_signed(t: torch.Tensor, exact: bool):
    """``(work, back)``: ``t`` in a signed dtype torch has kernels for, and the map of a result back to ``t.dtype``.

    Many torch kernels (index_put, rot90, where, gather, max) do not exist for uint16/uint32/uint64.
    ``exact=True`` (voxels are only moved, never combined): a signed view of the same bits, so every
    id survives; otherwise a value-preserving wider signed copy (uint16 -> int32, uint32 -> int64).

    Raises:
        TypeError: ``exact=False`` on uint64 (its values above 2**63 have no wider signed type).
    """
    if t.dtype not in _SIGNED_OF:
        return t, lambda out: out
    if exact:
        return signed_view(t), lambda out: out.view(t.dtype)
    if t.dtype not in _WIDER_OF:
        raise TypeError(
            f"{t.dtype} images cannot be interpolated or averaged (values above 2**63); "
            "use a float or a narrower integer dtype, or mode='nearest' for labels"
        )
    top = int(torch.iinfo(t.dtype).max)  # float32 work can round past it: clamp, never wrap around
    return t.to(_WIDER_OF[t.dtype]), lambda out: out.clamp(0, top).to(t.dtype)


def like_input(out: torch.Tensor, img) -> torch.Tensor:
    """``out`` (a plain tensor computed from ``img``) as the MONAI output type, keeping its dtype.

    A MetaTensor input gives a MetaTensor carrying the input's metadata; anything else follows
    ``get_track_meta()`` like ``convert_to_tensor``. The device is ``out``'s (the input's).
    """
    if isinstance(img, MetaTensor):
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]
    return convert_to_tensor(out, track_meta=get_track_meta())
