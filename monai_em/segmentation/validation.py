"""Validation during training on a segmentation score (VI or adapted Rand error) instead of pixel F1.

``train.yaml`` with ``val_metric: vi`` (or ``arand``) keeps the ground-truth instances of the held-out
sections next to the target (``CopyItemsd`` to ``instances``), segments each validation prediction
with the method its target needs and scores it; the best checkpoint is the one with the lowest score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ignite.metrics import Metric

from .instances import segment
from .metrics import adapted_rand, variation_of_information

__all__ = ["SegmentationMetric"]

_METRICS = ("vi", "arand")


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class SegmentationMetric(Metric):
    """Mean VI (split + merge, bits) or adapted Rand error of segmented predictions over a validation run.

    Args:
        metric: ``"vi"`` or ``"arand"`` (lower is better: pair it with ``key_metric_negative_sign``).
        method: segmentation method (``monai_em.segmentation.segment``), e.g. ``"watershed"``.
        params: segmentation parameters (``in_plane`` for 2D models).
        pred_key, gt_key: keys of the prediction ``(C, Z, Y, X)`` probabilities (or a binarised map) in
            the engine's output, and of the ground-truth instances ``(1, Z, Y, X)`` in its batch.

    Reads ``engine.state.output`` and ``engine.state.batch`` (MONAI's decollated lists of dicts) at
    every iteration; single-process (not reduced across DDP ranks).
    """

    def __init__(
        self,
        metric: str = "vi",
        method: str = "watershed",
        params: Mapping[str, Any] | None = None,
        pred_key: str = "pred",
        gt_key: str = "instances",
    ):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        self.metric = metric
        self.method = method
        self.params = dict(params or {})
        self.pred_key = pred_key
        self.gt_key = gt_key
        super().__init__(output_transform=lambda out: out)

    def reset(self) -> None:
        self._scores: list[float] = []

    def update(self, output) -> None:
        """``output``: ``(pred (C, Z, Y, X), instances (1, Z, Y, X))``."""
        pred, gt = (_numpy(o) for o in output)
        prob = np.clip(pred.astype(np.float32), 0, 1)
        seg = segment(prob, self.method, self.params)
        ids = gt[0].astype(np.int64)
        if self.metric == "vi":
            self._scores.append(float(sum(variation_of_information(ids, seg))))
        else:
            self._scores.append(adapted_rand(ids, seg)[0])

    def iteration_completed(self, engine) -> None:
        outputs, batches = engine.state.output, engine.state.batch
        if isinstance(outputs, dict):
            outputs, batches = [outputs], [batches]
        for out, batch in zip(outputs, batches, strict=True):
            if self.gt_key not in batch:
                raise KeyError(
                    f"SegmentationMetric needs the ground-truth instances under {self.gt_key!r} in the batch"
                )
            gt = _numpy(batch[self.gt_key])
            self.update((out[self.pred_key], gt if gt.ndim == 4 else gt[None]))

    def compute(self) -> float:
        if not self._scores:
            raise RuntimeError("SegmentationMetric: no validation item was scored")
        return float(np.mean(self._scores))
