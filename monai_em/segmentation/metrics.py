"""The field's scores of a segmentation: VI split / merge, adapted Rand error, and boundary F1.

VI and adapted Rand follow the CREMI / SNEMI conventions (spec/segmentation.md) through
scikit-image: ground-truth voxels with id 0 are unlabelled and left out; VI is in bits, split =
``H(seg | gt)`` (one true object cut into several), merge = ``H(gt | seg)`` (several true objects in
one). Lower is better for both. Boundary F1 is the pixel-level companion the bundle validates on.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import adapted_rand_error as _adapted_rand_error
from skimage.metrics import variation_of_information as _variation_of_information

__all__ = [
    "adapted_rand",
    "best_grey_threshold",
    "boundary_f1",
    "segmentation_scores",
    "variation_of_information",
]


def _pair(gt, seg) -> tuple[np.ndarray, np.ndarray]:
    gt, seg = np.asarray(gt), np.asarray(seg)
    if gt.shape != seg.shape:
        raise ValueError(f"segmentation shape {seg.shape} differs from ground truth {gt.shape}")
    for name, a in (("ground truth", gt), ("segmentation", seg)):
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name} must hold integer ids, got dtype {a.dtype}")
    return gt, seg


def variation_of_information(gt, seg, ignore_gt: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """``(split, merge)`` in bits: ``H(seg | gt)`` and ``H(gt | seg)`` over voxels whose gt id is not ignored.

    Args:
        gt, seg: integer ids of the same shape (any dimension).
        ignore_gt: ground-truth ids left out (default 0 = unlabelled); ``()`` scores every voxel.
    """
    gt, seg = _pair(gt, seg)
    split, merge = _variation_of_information(gt, seg, ignore_labels=tuple(ignore_gt))
    return float(split), float(merge)


def adapted_rand(gt, seg, ignore_gt: tuple[int, ...] = (0,)) -> tuple[float, float, float]:
    """``(error, precision, recall)`` of the adapted Rand index (SNEMI3D), gt ids in ``ignore_gt`` left out.

    ``precision`` and ``recall`` are scikit-image's (its ``adapted_rand_error``): error = 1 - their
    harmonic mean.
    """
    gt, seg = _pair(gt, seg)
    error, precision, recall = _adapted_rand_error(gt, seg, ignore_labels=tuple(ignore_gt))
    return float(error), float(precision), float(recall)


def boundary_f1(pred, truth, tolerance: int = 1) -> float:
    """F1 of two boolean ``(Z, Y, X)`` boundary maps, matching within ``tolerance`` pixels in-plane.

    Precision: predicted boundary pixels within ``tolerance`` (chessboard, per section) of a true
    one; recall: true boundary pixels within ``tolerance`` of a predicted one.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    if pred.ndim != 3:
        raise ValueError(f"boundary maps must be (Z, Y, X), got shape {pred.shape}")
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = True  # in-plane 3x3
    grow_pred = ndimage.binary_dilation(pred, struct, iterations=tolerance) if tolerance else pred
    grow_truth = ndimage.binary_dilation(truth, struct, iterations=tolerance) if tolerance else truth
    precision = (pred & grow_truth).sum() / max(pred.sum(), 1)
    recall = (truth & grow_pred).sum() / max(truth.sum(), 1)
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def best_grey_threshold(image, truth, tolerance: int = 1) -> tuple[float, int]:
    """``(F1, t)`` of the grey-value threshold ``image <= t`` (dark = boundary) with the best boundary F1.

    ``t`` runs over the 2nd..58th percentiles of ``image`` and is tuned on the scored voxels themselves:
    a baseline that flatters itself.
    """
    image = np.asarray(image)
    best = (0.0, 0)
    for t in np.unique(np.percentile(image, np.arange(2, 60, 2)).astype(int)):
        best = max(best, (boundary_f1(image <= t, truth, tolerance), int(t)))
    return best


def segmentation_scores(gt, seg, ignore_gt: tuple[int, ...] = (0,)) -> dict[str, float]:
    """VI split / merge / total and adapted Rand error / precision / recall of ``seg`` against ``gt``, as a dict."""
    split, merge = variation_of_information(gt, seg, ignore_gt)
    error, precision, recall = adapted_rand(gt, seg, ignore_gt)
    return {
        "vi_split": split,
        "vi_merge": merge,
        "vi": split + merge,
        "arand": error,
        "arand_precision": precision,
        "arand_recall": recall,
        "segments": int(len(np.unique(np.asarray(seg)))),
    }
