"""Instances from ground-truth boundary / affinity / distance / mask maps recover the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from monai_em.segmentation import (
    agglomerate,
    connected_components,
    relabel_sequential,
    seeded_watershed,
    segment,
    variation_of_information,
)
from monai_em.transforms.targets import AffinityTarget, BoundaryTarget, DistanceTarget


def cubes(n: int = 2, size: int = 12) -> np.ndarray:
    """(n*size)^3 label of n^3 touching cubes, ids 1..n^3 (every voxel labelled)."""
    lab = np.zeros((n * size,) * 3, np.int64)
    for i, (z, y, x) in enumerate(np.ndindex(n, n, n)):
        lab[z * size : (z + 1) * size, y * size : (y + 1) * size, x * size : (x + 1) * size] = i + 1
    return lab


def assert_same_partition(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to renumbering: VI 0 with every voxel counted."""
    assert variation_of_information(a, b, ignore_gt=()) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_watershed_of_ground_truth_boundary_recovers_the_instances():
    gt = cubes()
    boundary = BoundaryTarget(width=2, in_plane=False)(gt[None]).numpy()[0]
    seg = seeded_watershed(boundary)
    assert seg.dtype == np.uint64 and seg.shape == gt.shape and seg.min() == 1
    assert_same_partition(gt, seg)
    # uint8 maps as the inference bundle writes them give the same result
    assert_same_partition(gt, seeded_watershed((boundary * 255).astype(np.uint8)))


def test_in_plane_watershed_numbers_sections_apart():
    gt = np.zeros((3, 16, 16), np.int64)
    gt[:, :, :8], gt[:, :, 8:] = 1, 2
    boundary = BoundaryTarget(width=2)(gt[None]).numpy()[0]
    seg = seeded_watershed(boundary, in_plane=True, min_size=1)
    assert len(np.unique(seg)) == 6  # 2 per section, never shared across sections
    for z in range(3):
        assert_same_partition(gt[z], seg[z])


def test_foreground_contour_watershed_keeps_background_and_splits_touching_objects():
    yy, xx = np.mgrid[:32, :48]
    gt = np.zeros((1, 32, 48), np.int64)
    gt[0][(yy - 16) ** 2 + (xx - 14) ** 2 < 100] = 1
    gt[0][(yy - 16) ** 2 + (xx - 32) ** 2 < 100] = 2  # two touching discs
    fg = (gt > 0).astype(np.float32)
    contour = BoundaryTarget(width=2)(gt[None]).numpy()[0]
    seg = seeded_watershed(contour, foreground=fg, min_size=1)
    assert np.all(seg[gt == 0] == 0)
    assert_same_partition(gt, seg)
    dist = DistanceTarget()(gt[None]).numpy()
    from_dist = segment(dist, "distance_watershed", {"min_size": 1})
    inside = dist[0] > 0  # the distance target is 0 on object edges: those voxels read as background
    assert np.all(from_dist[gt == 0] == 0)
    assert_same_partition(gt[inside], from_dist[inside])


def test_agglomeration_of_ground_truth_affinities():
    gt = cubes()
    aff = AffinityTarget()(gt[None]).numpy()
    assert_same_partition(gt, agglomerate(aff))
    assert_same_partition(gt, segment(aff, "agglomeration"))
    aff2d = AffinityTarget()(gt[None, 0]).numpy()  # one image: (2, Y, X)
    assert_same_partition(gt[0], agglomerate(aff2d))


def test_connected_components_match_scipy(rng):
    mask = ndimage.gaussian_filter(rng.random((12, 30, 30)), 2) > 0.5
    ref, n = ndimage.label(mask)
    cc = connected_components(mask)
    assert cc.max() == n
    assert_same_partition(ref, cc)
    assert_same_partition(ref, connected_components(mask.astype(np.float32)))  # thresholded at 0.5
    classes = np.array([[1, 1, 2, 2, 0, 1]])
    assert connected_components(classes).tolist() == [[1, 1, 2, 2, 0, 3]]
    with pytest.raises(ValueError, match="connectivity must be one of"):
        connected_components(mask, connectivity=8)


def test_segment_semantic_probabilities_and_errors():
    prob = np.zeros((3, 1, 4, 6), np.float32)
    prob[0] = 1
    prob[0, :, :, 2:4], prob[1, :, :, 2:4] = 0, 1  # class 1 in the middle column band
    prob[0, :, :, 5], prob[2, :, :, 5] = 0, 1
    seg = segment(prob, "components")
    assert len(np.unique(seg)) == 3 and np.all(seg[:, :, :2] == seg[0, 0, 0])
    with pytest.raises(ValueError, match="method must be one of"):
        segment(prob, "magic")
    with pytest.raises(ValueError, match="watershed needs a 1-channel prediction, got 3"):
        segment(prob, "watershed")
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        seeded_watershed(prob[0] + 2)


def test_relabel_sequential():
    assert relabel_sequential(np.array([7, 0, 3, 7])).tolist() == [2, 0, 1, 2]
    assert relabel_sequential(np.array([5, 9])).tolist() == [1, 2]


def test_seed_distance_splits_cells_joined_by_a_thin_gap():
    boundary = np.ones((1, 20, 41), np.float32)
    boundary[0, 2:18, 2:19] = 0  # cell A
    boundary[0, 2:18, 22:39] = 0  # cell B
    boundary[0, 9:11, 19:22] = 0  # a 2-pixel-wide gap in the membrane between them
    assert len(np.unique(seeded_watershed(boundary, min_size=1))) == 1  # one seed leaks through the gap
    seg = seeded_watershed(boundary, min_size=1, seed_distance=2)
    assert len(np.unique(seg)) == 2 and seg[0, 10, 5] != seg[0, 10, 35]
