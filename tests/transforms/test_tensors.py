"""Tensor/dtype helpers: one home (transforms/tensors.py), the old import path still works."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_em.transforms import tensors
from monai_em.transforms.tensors import (
    as_output,
    as_torch,
    cast_back,
    like_input,
    max_value,
    signed_view,
    unsigned_as_signed,
)

PACKAGE = Path(tensors.__file__).parent


def test_old_import_path_gives_the_same_functions():
    from monai_em.transforms import base

    for name in ["as_output", "as_torch", "cast_back", "like_input", "signed_view", "unsigned_as_signed"]:
        assert getattr(base, name) is getattr(tensors, name)


@pytest.mark.parametrize("module", ["tensors.py", "targets.py", "resample.py"])
def test_helper_users_do_not_import_the_augmentation_base(module):
    tree = ast.parse((PACKAGE / module).read_text())
    sources = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
    assert "base" not in sources


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64, np.int8, np.float16])
def test_as_output_and_as_torch_keep_the_dtype_and_values(dtype):
    a = np.arange(24, dtype=dtype).reshape(1, 2, 3, 4)[..., ::-1]  # negative stride too
    out = as_output(a)
    assert isinstance(out, torch.Tensor) and str(out.dtype) == f"torch.{np.dtype(dtype).name}"
    np.testing.assert_array_equal(out.numpy(), a)
    meta = MetaTensor(torch.ones(1, 2, 2), meta={"tag": 7})
    assert type(as_torch(meta)) is torch.Tensor


def test_like_input_keeps_the_result_dtype_and_the_input_meta():
    img = MetaTensor(torch.zeros(1, 2, 2), meta={"tag": 7})
    out = like_input(torch.ones(1, 2, 2, dtype=torch.int64), img)
    assert isinstance(out, MetaTensor) and out.dtype == torch.int64 and out.meta["tag"] == 7


def test_cast_back_rounds_clamps_and_thresholds():
    x = torch.tensor([-3.0, 0.4, 0.6, 254.6, 300.0])
    assert cast_back(x.clone(), torch.uint8).tolist() == [0, 0, 1, 255, 255]
    assert cast_back(x.clone(), torch.bool).tolist() == [False, False, True, True, True]
    assert cast_back(x.clone(), torch.float16).dtype == torch.float16


def test_unsigned_helpers_keep_every_value():
    top = np.iinfo(np.uint64).max
    t = torch.from_numpy(np.array([0, 1, 2**63, top], np.uint64))
    assert signed_view(t).dtype == torch.int64 and signed_view(t).view(torch.uint64).equal(t)
    work, back = unsigned_as_signed(t, exact=True)
    assert back(work.flip(0)).numpy().tolist() == [top, 2**63, 1, 0]
    with pytest.raises(TypeError, match="uint64 images cannot be interpolated"):
        unsigned_as_signed(t, exact=False)
    u32 = torch.from_numpy(np.array([0, 2**32 - 1], np.uint32))
    work, back = unsigned_as_signed(u32, exact=False)
    assert work.dtype == torch.int64 and back(work + 100).numpy().tolist() == [
        100,
        2**32 - 1,
    ]  # clamped, no wrap


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64, np.int8, np.int64])
def test_max_value_is_exact_for_every_integer_dtype(dtype):
    top = np.iinfo(dtype).max
    t = torch.from_numpy(np.array([[3, top], [0, 1]], dtype))
    assert max_value(t) == top and max_value(t[:0]) == 0
