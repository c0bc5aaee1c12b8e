"""Shared test helpers: run a check over every array type a transform must accept."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

ARRAY_TYPES = {
    "numpy": np.asarray,
    "torch": torch.as_tensor,
    "metatensor": lambda a: MetaTensor(torch.as_tensor(a)),
}
if torch.cuda.is_available():
    ARRAY_TYPES["cuda"] = lambda a: torch.as_tensor(a, device="cuda")

ARRAY_TYPE_NAMES = tuple(ARRAY_TYPES)


def as_type(array, type_name: str):
    """``array`` converted to the named input type (``numpy``, ``torch``, ``metatensor``, ``cuda``)."""
    return ARRAY_TYPES[type_name](array)


def to_numpy(x) -> np.ndarray:
    """Any array/tensor as a numpy array on the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def same_container(out, ref) -> bool:
    """True when ``out`` is the kind of array MONAI returns for input ``ref`` (type and device kept)."""
    if isinstance(ref, np.ndarray):
        return isinstance(out, (np.ndarray, torch.Tensor))
    return isinstance(out, torch.Tensor) and out.device == ref.device
