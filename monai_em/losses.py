"""A loss with a per-voxel weight that fits MONAI's two-argument ``loss(pred, target)`` engines.

MONAI's ``MaskedLoss`` multiplies prediction and target by a mask before the loss: for logits fed
to BCE that still charges ``log 2`` per masked voxel, and it needs a third argument that
``SupervisedTrainer`` never passes. Here the weight travels inside the target instead: the target
holds the target channels followed by as many weight channels (``ConcatItemsd(keys=["label",
"weight"], name="label")``), and voxels with weight 0 contribute nothing, whatever is predicted there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VoxelWeightedLoss"]

_LOSSES = ("bce", "mse", "dice", "bce+dice", "ce")


class VoxelWeightedLoss(nn.Module):
    """Weighted BCE / MSE / soft Dice / cross-entropy over voxels, the weight given per voxel and channel.

    Args:
        loss: ``"bce"`` (logits in, the default), ``"mse"`` (on ``sigmoid(pred)`` if ``sigmoid``
            else raw), ``"dice"`` (soft Dice of ``sigmoid(pred)`` with weighted sums, over the whole
            batch per channel), ``"bce+dice"`` (their sum) or ``"ce"`` (softmax cross-entropy over the
            ``K`` prediction channels; the target is one class-index channel, its weight one more).
        sigmoid: apply a sigmoid to the prediction before MSE / Dice (BCE always takes logits).
        smooth: Dice smoothing term.

    ``forward(pred, target, weight=None)``: ``pred`` is ``(B, C, *spatial)``. With ``weight`` None,
    ``target`` must have ``2 * C`` channels: the target, then its weight. The weighted BCE / MSE is
    ``sum(w * l) / sum(w)`` (0 when every weight is 0), i.e. the mean over annotated voxels.
    With ``"ce"`` the target is ``(B, 1, *spatial)`` class indices (and ``weight`` ``(B, 1, ...)``),
    or ``(B, 2, *spatial)`` indices then weight.

    Example:
        >>> import torch
        >>> loss = VoxelWeightedLoss("bce")
        >>> pred, target = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
        >>> weight = torch.zeros(1, 1, 4, 4); weight[..., :2] = 1
        >>> bool(torch.isclose(loss(pred, torch.cat([target, weight], 1)), torch.log(torch.tensor(2.0))))
        True
    """

    def __init__(self, loss: str = "bce", sigmoid: bool = True, smooth: float = 1e-5):
        super().__init__()
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        self.loss = loss
        self.sigmoid = bool(sigmoid)
        self.smooth = float(smooth)

    def _split_ce(self, pred: torch.Tensor, target: torch.Tensor, weight):
        if weight is None:
            if target.shape[1] != 2:
                raise ValueError(
                    f"ce: target must hold a class-index channel and a weight channel, got shape {tuple(target.shape)}"
                )
            target, weight = target[:, :1], target[:, 1:]
        if target.shape[0] != pred.shape[0] or target.shape[2:] != pred.shape[2:] or target.shape[1] != 1:
            raise ValueError(
                f"ce: class-index target {tuple(target.shape)} does not fit prediction {tuple(pred.shape)}"
            )
        index = target[:, 0].round().long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= pred.shape[1]):
            raise ValueError(
                f"ce: class indices {int(index.min())}..{int(index.max())} outside the {pred.shape[1]} predicted classes"
            )
        return index, weight[:, 0].to(pred.dtype)

    def _split(self, pred: torch.Tensor, target: torch.Tensor, weight):
        if weight is None:
            if target.shape[1] != 2 * pred.shape[1]:
                raise ValueError(
                    f"target must hold {pred.shape[1]} target + {pred.shape[1]} weight channels for a prediction "
                    f"of shape {tuple(pred.shape)}, got target shape {tuple(target.shape)}"
                )
            target, weight = target[:, : pred.shape[1]], target[:, pred.shape[1] :]
        if target.shape != pred.shape:
            raise ValueError(
                f"target shape {tuple(target.shape)} differs from prediction {tuple(pred.shape)}"
            )
        weight = weight.to(pred.dtype).expand_as(pred)
        return target.to(pred.dtype), weight

    def _mean(self, per_voxel: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (per_voxel * weight).sum() / weight.sum().clamp_min(1e-8)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.loss == "ce":
            index, weight = self._split_ce(pred, target, weight)
            return self._mean(F.cross_entropy(pred, index, reduction="none"), weight)
        target, weight = self._split(pred, target, weight)
        total = pred.new_zeros(())
        if self.loss in ("bce", "bce+dice"):
            total = total + self._mean(
                F.binary_cross_entropy_with_logits(pred, target, reduction="none"), weight
            )
        prob = torch.sigmoid(pred) if self.sigmoid else pred
        if self.loss == "mse":
            total = total + self._mean((prob - target) ** 2, weight)
        if self.loss in ("dice", "bce+dice"):
            dims = [0, *range(2, pred.ndim)]
            inter = (weight * prob * target).sum(dims)
            denom = (weight * prob).sum(dims) + (weight * target).sum(dims)
            total = total + (1 - (2 * inter + self.smooth) / (denom + self.smooth)).mean()
        return total
