"""Sliding-window prediction of one in-memory block: the core shared by chunked and 2D inference."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data.utils import compute_importance_map
from monai.inferers import sliding_window_inference

__all__ = [
    "OUTPUT_DTYPES",
    "WindowPredictor",
    "named_error",
    "resolve_rank_world",
    "scale_input",
    "sliding_window_block",
    "to_output_dtype",
    "window_weights",
]

logger = logging.getLogger(__name__)

OUTPUT_DTYPES = ("uint8", "float16", "float32")
_ACTIVATIONS = (None, "sigmoid", "softmax", "tanh")


def resolve_rank_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the arguments, else torch.distributed when initialised, else env RANK/WORLD_SIZE, else 0/1."""
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            auto = dist.get_rank(), dist.get_world_size()
        else:
            auto = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        rank = auto[0] if rank is None else rank
        world_size = auto[1] if world_size is None else world_size
    rank, world_size = int(rank), int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    return rank, world_size


def window_weights(
    roi_size: Sequence[int], mode: str = "gaussian", sigma_scale: float | Sequence[float] = 0.125, device=None
) -> torch.Tensor:
    """The blending weight of every voxel of a window (MONAI ``compute_importance_map``).

    For a 2D model run over a volume the window is ``(1, H, W)``. MONAI's Gaussian stays a real
    Gaussian there: along the 1-voxel axis it is a single constant factor, along y and x it falls
    from the centre to ~1e-3 at the corners (PyTC's collapses to a flat average; see docs/inference.md).
    """
    if mode not in ("gaussian", "constant"):
        raise ValueError(f"blend mode must be 'gaussian' or 'constant', got {mode!r}")
    return compute_importance_map(
        tuple(int(r) for r in roi_size), mode=mode, sigma_scale=sigma_scale, device=device or "cpu"
    )


def named_error(error: Exception, what: str) -> Exception:
    """A new exception saying ``what`` failed and why, of ``error``'s class when that is a plain
    ValueError/TypeError/RuntimeError, else RuntimeError; raise it ``from error``."""
    cls = type(error) if type(error) in (ValueError, TypeError, RuntimeError) else RuntimeError
    return cls(f"{what}: {type(error).__name__}: {error}")


def scale_input(array: np.ndarray, intensity_scale: float | str | None = "auto") -> torch.Tensor:
    """``array`` as a float32 tensor, scaled as training does.

    ``"auto"``: integer images divided by their dtype maximum (uint8 -> /255), floats unchanged;
    a number: multiplied by it and clipped to [0, 1] (training's ``ScaleIntensityRanged(a_max=
    intensity_max, clip=True)`` with ``intensity_scale = 1 / intensity_max``); None: unchanged.
    """
    array = np.asarray(array)
    out = torch.tensor(array, dtype=torch.float32)
    if intensity_scale == "auto":
        if np.issubdtype(array.dtype, np.integer):
            out /= float(np.iinfo(array.dtype).max)
    elif intensity_scale is not None:
        if isinstance(intensity_scale, str):
            raise ValueError(f"intensity_scale must be 'auto', a number or None, got {intensity_scale!r}")
        out *= float(intensity_scale)
        out.clamp_(0.0, 1.0)
    return out


def to_output_dtype(prob: torch.Tensor, dtype: str, what: str = "prediction") -> np.ndarray:
    """Prediction -> numpy in ``dtype``; ``"uint8"`` stores ``round(255 * p)`` of probabilities in [0, 1]."""
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype must be one of {OUTPUT_DTYPES}, got {dtype!r}")
    prob = prob.detach()
    if dtype != "uint8":
        return prob.to(device="cpu", dtype=getattr(torch, dtype)).numpy()
    lo, hi = float(prob.min()), float(prob.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        logger.warning(
            "%s has values in [%.3g, %.3g], outside [0, 1]: clipped before storing as uint8 "
            "(set activation='sigmoid'/'softmax', or output_dtype='float32')",
            what,
            lo,
            hi,
        )
    return torch.round(prob.clamp(0, 1) * 255).to(device="cpu", dtype=torch.uint8).numpy()


class WindowPredictor:
    """Network + output activation + optional test-time augmentation, called on one batch of windows.

    Args:
        network: a torch module (or callable) mapping ``(B, C, *roi)`` to ``(B, C', *roi)``.
        spatial_dims: 3 for a 3D network; 2 for a 2D network fed ``(B, C, 1, H, W)`` windows of a
            volume (the section axis is squeezed before and restored after the network).
        activation: ``None``, ``"sigmoid"``, ``"softmax"`` (over channels) or ``"tanh"``, applied
            per window before TTA merging and blending (as PyTC does).
        tta: ``None`` or a :class:`~monai_em.inference.tta.TestTimeFlips`.
    """

    def __init__(self, network: Callable, spatial_dims: int = 3, activation: str | None = None, tta=None):
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.network = network
        self.spatial_dims = spatial_dims
        self.activation = activation
        self.tta = tta

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = self.spatial_dims == 2 and x.ndim == 5
        if squeeze:
            if x.shape[2] != 1:
                raise ValueError(
                    f"a 2D network takes (B, C, 1, H, W) windows of a volume, got {tuple(x.shape)}"
                )
            x = x[:, :, 0]
        y = self.network(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"the network must return one tensor, got {type(y).__name__}")
        if self.activation == "sigmoid":
            y = torch.sigmoid(y)
        elif self.activation == "softmax":
            y = torch.softmax(y, dim=1)
        elif self.activation == "tanh":
            y = torch.tanh(y)
        return y[:, :, None] if squeeze else y

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x) if self.tta is None else self.tta(x, self._net)


def sliding_window_block(
    block: torch.Tensor,
    predictor: Callable,
    roi_size: Sequence[int],
    overlap: float | Sequence[float] = 0.5,
    weights: torch.Tensor | None = None,
    mode: str = "gaussian",
    sigma_scale: float | Sequence[float] = 0.125,
    sw_batch_size: int = 1,
    device=None,
    progress: bool = False,
) -> torch.Tensor:
    """Sliding-window prediction of one ``(C, *spatial)`` block, blended, returned ``(C', *spatial)`` on the CPU.

    Windows run on ``device`` (default: the network's device, else CPU); the blended output buffer
    stays on the CPU, so device memory holds only ``sw_batch_size`` windows. A block smaller than
    the window along an axis must be enlarged by the caller with real (mirrored) context;
    MONAI would otherwise zero-pad it. ``progress``: a tqdm bar over the windows (for long blocks).
    """
    roi = tuple(int(r) for r in roi_size)
    if len(roi) != block.ndim - 1:
        raise ValueError(f"roi_size {roi} does not match a block of shape {tuple(block.shape)} (C, *spatial)")
    if weights is None:
        weights = window_weights(roi, mode, sigma_scale)
    dev = torch.device(device) if device is not None else _module_device(predictor)
    out = sliding_window_inference(
        block[None],
        roi_size=roi,
        sw_batch_size=int(sw_batch_size),
        predictor=predictor,
        overlap=overlap,
        mode=mode,
        sigma_scale=sigma_scale,
        roi_weight_map=weights.to(dev),
        sw_device=dev,
        device=torch.device("cpu"),
        progress=progress,
    )
    return out[0]


def _module_device(predictor) -> torch.device:
    net = getattr(predictor, "network", predictor)
    if isinstance(net, torch.nn.Module):
        for p in net.parameters():
            return p.device
    return torch.device("cpu")
