"""VI split / merge and adapted Rand error against their formulas computed by hand with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from monai_em.segmentation import adapted_rand, boundary_f1, segmentation_scores, variation_of_information


def entropy_given(a: np.ndarray, b: np.ndarray) -> float:
    """H(a | b) in bits from the joint histogram: -sum p(a, b) log2(p(a, b) / p(b))."""
    pairs, counts = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_counts=True)
    p_ab = counts / counts.sum()
    p_b = {v: (b == v).sum() / b.size for v in np.unique(b)}
    return float(-sum(p * np.log2(p / p_b[bv]) for p, bv in zip(p_ab, pairs[1], strict=True)))


def rand_pairs(gt: np.ndarray, seg: np.ndarray) -> float:
    """Adapted Rand error by counting voxel pairs: 1 - 2 TP / (pairs in gt + pairs in seg)."""
    n = gt.size
    same_gt = gt.ravel()[:, None] == gt.ravel()[None]
    same_seg = seg.ravel()[:, None] == seg.ravel()[None]
    off = ~np.eye(n, dtype=bool)
    tp = (same_gt & same_seg & off).sum()
    return float(1 - 2 * tp / ((same_gt & off).sum() + (same_seg & off).sum()))


def test_split_only_and_merge_only():
    gt = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    split = np.array([1, 1, 3, 3, 2, 2, 2, 2])  # object 1 cut in two halves
    s, m = variation_of_information(gt, split, ignore_gt=())
    assert s == pytest.approx(0.5) and m == pytest.approx(0.0, abs=1e-12)  # half the voxels, 1 bit each
    merged = np.ones(8, int)
    s, m = variation_of_information(gt, merged, ignore_gt=())
    assert s == pytest.approx(0.0, abs=1e-12) and m == pytest.approx(1.0)


def test_vi_equals_conditional_entropies_by_hand(rng):
    gt = rng.integers(1, 5, size=(3, 7, 6))
    seg = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(1, 7, size=gt.shape))
    split, merge = variation_of_information(gt, seg, ignore_gt=())
    assert split == pytest.approx(entropy_given(seg, gt))
    assert merge == pytest.approx(entropy_given(gt, seg))


def test_gt_zero_is_left_out():
    gt = np.array([0, 0, 0, 1, 1, 2, 2])
    seg = np.array([5, 6, 7, 1, 1, 2, 2])  # the unlabelled voxels are cut up: no penalty
    assert variation_of_information(gt, seg) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert adapted_rand(gt, seg)[0] == pytest.approx(0.0)
    keep = gt != 0
    seg2 = np.array([1, 1, 1, 1, 3, 2, 2])
    assert variation_of_information(gt, seg2) == pytest.approx(
        (entropy_given(seg2[keep], gt[keep]), entropy_given(gt[keep], seg2[keep]))
    )


def test_adapted_rand_equals_pair_counting(rng):
    gt = rng.integers(1, 4, size=40)
    seg = np.where(rng.random(40) < 0.6, gt, rng.integers(1, 6, size=40))
    assert adapted_rand(gt, seg, ignore_gt=())[0] == pytest.approx(rand_pairs(gt, seg))


def test_scores_dict_and_errors():
    gt = np.array([[1, 1, 2, 2]])
    scores = segmentation_scores(gt, gt)
    assert scores["vi"] == pytest.approx(0.0, abs=1e-12) and scores["arand"] == pytest.approx(0.0)
    assert scores["segments"] == 2
    with pytest.raises(ValueError, match=r"segmentation shape \(1, 3\) differs from ground truth \(1, 4\)"):
        segmentation_scores(gt, gt[:, :3])
    with pytest.raises(TypeError, match="segmentation must hold integer ids"):
        segmentation_scores(gt, gt.astype(float))


def test_boundary_f1_tolerance():
    truth = np.zeros((1, 5, 8), bool)
    truth[0, :, 3] = True
    shifted = np.roll(truth, 1, axis=2)
    assert boundary_f1(truth, truth, tolerance=0) == 1.0
    assert boundary_f1(shifted, truth, tolerance=0) == 0.0
    assert boundary_f1(shifted, truth, tolerance=1) == 1.0
    half = truth.copy()
    half[0, :, :] = False
    half[0, :2, 3] = True  # 2 of 5 found, all correct: P = 1, R = 0.4
    assert boundary_f1(half, truth, tolerance=0) == pytest.approx(2 * 0.4 / 1.4)
