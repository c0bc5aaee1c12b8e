"""Integral volumes: box counts equal brute-force counts; the cache reuses tables only while valid."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_em.transforms.integral import (
    IntegralCache,
    _table_dtype,
    box_counts,
    integral_volume,
    nonzero_mask,
)


@st.composite
def volume_and_boxes(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    values = np.where(mask, rng.integers(-5, 6, shape), 0)  # negative ids count as non-zero too
    boxes = []
    for _ in range(draw(st.integers(1, 6))):
        start = [draw(st.integers(0, n)) for n in shape]
        size = [draw(st.integers(0, n - a)) for a, n in zip(start, shape, strict=True)]
        boxes.append((start, size))
    return values, boxes


@settings(max_examples=50, deadline=None)
@given(volume_and_boxes())
def test_box_counts_equal_brute_force(case):
    values, boxes = case
    table = integral_volume(values)
    assert table.shape == tuple(n + 1 for n in values.shape)
    for start, size in boxes:
        region = values[tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))]
        assert int(box_counts(table, start, size)) == int(np.count_nonzero(region))
    starts = np.asarray([b[0] for b in boxes])
    sizes = np.asarray([b[1] for b in boxes])
    brute = [
        np.count_nonzero(values[tuple(slice(a, a + s) for a, s in zip(b0, b1, strict=True))])
        for b0, b1 in boxes
    ]
    np.testing.assert_array_equal(box_counts(table, starts, sizes), brute)


def test_table_dtype_int32_only_when_it_fits():
    assert _table_dtype(2**31 - 1) == np.int32
    assert _table_dtype(2**31) == np.int64
    assert integral_volume(np.ones((2, 2), bool)).dtype == np.int32


def test_box_outside_the_volume_is_an_error():
    table = integral_volume(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="inside the volume of shape"):
        box_counts(table, [3, 0], [2, 2])
    with pytest.raises(ValueError, match="3 axes, the table has 2"):
        box_counts(table, [0, 0, 0], [1, 1, 1])


def test_long_axis_counts_use_int64_coordinates():
    mask = np.zeros((1, 2, 70_000), bool)
    mask[0, 1, [66_000, 69_999]] = True
    table = integral_volume(mask)
    assert int(box_counts(table, [0, 0, 65_990], [1, 2, 4_010])) == 2
    assert int(box_counts(table, [0, 0, 66_001], [1, 2, 3_998])) == 0


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_nonzero_mask_any_channel(kind):
    a = np.zeros((2, 3, 4), np.int64)
    a[0, 0, 0] = 2**40  # beyond float32 / int32: must still count
    a[1, 2, 3] = -1
    mask = nonzero_mask(torch.as_tensor(a) if kind == "torch" else a)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (3, 4)
    assert mask.sum() == 2 and mask[0, 0] and mask[2, 3]


def test_cache_reuses_table_for_same_array_and_rebuilds_after_change():
    cache = IntegralCache(size=2)
    a = np.zeros((1, 4, 4, 4), np.int32)
    t = torch.zeros((1, 4, 4, 4), dtype=torch.int32)
    build = lambda x: lambda: integral_volume(nonzero_mask(x))  # noqa: E731
    cache.get(a, build(a))
    cache.get(a, build(a))
    assert cache.builds == 1
    a[0, 0, 0, 0] = 1  # a sampled voxel (index 0) changed: the numpy fingerprint sees it
    assert int(cache.get(a, build(a))[-1, -1, -1]) == 1 and cache.builds == 2
    cache.get(t, build(t))
    t[0, 3, 3, 3] = 5  # any in-place edit bumps torch's version counter
    assert int(cache.get(t, build(t))[-1, -1, -1]) == 1 and cache.builds == 4
    # a different array with equal content is a different object: no false sharing
    b = a.copy()
    cache.get(b, build(b))
    assert cache.builds == 5


def test_cache_forgets_dead_arrays():
    cache = IntegralCache(size=4)
    a = np.ones((3, 3), bool)
    cache.get(a, lambda a=a: integral_volume(a))
    assert len(cache._entries) == 1
    del a
    gc.collect()
    assert len(cache._entries) == 0
