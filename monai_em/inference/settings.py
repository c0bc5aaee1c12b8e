"""The one record of sliding-window settings shared by volume (3D, blockwise) and 2D image inference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .window import (
    OUTPUT_DTYPES,
    WindowPredictor,
    scale_input,
    sliding_window_block,
    to_output_dtype,
    window_weights,
)

__all__ = ["WindowSettings"]


def _triple(value, name: str, cast=int) -> tuple:
    values = np.broadcast_to(np.asarray(value), 3).tolist() if np.ndim(value) == 0 else list(value)
    if len(values) != 3:
        raise ValueError(f"{name} needs 1 or 3 values (z, y, x), got {value!r}")
    return tuple(cast(v) for v in values)


@dataclass(frozen=True)
class WindowSettings:
    """How one block or image is predicted: window, blending, activation, TTA, input scaling, output dtype.

    Args:
        roi_size: window ``(z, y, x)``, or ``(y, x)`` with ``spatial_dims=2`` (a 2D network: over a
            volume its windows are ``(1, y, x)``, section by section).
        spatial_dims: 3 or 2.
        overlap: window overlap fraction in [0, 1), float or per axis (``(y, x)`` or ``(z, y, x)`` in 2D).
        mode: ``"gaussian"`` or ``"constant"`` blending; sigma_scale: Gaussian sigma / window size.
        sw_batch_size: windows per network call.
        activation: ``None``, ``"sigmoid"``, ``"softmax"`` or ``"tanh"`` per window.
        tta: ``None`` or a :class:`~monai_em.inference.tta.TestTimeFlips`.
        output_dtype: ``"uint8"`` (``round(255 * p)``), ``"float16"`` or ``"float32"``.
        intensity_scale: ``"auto"``, a factor (multiply, clip to [0, 1]) or None (see :func:`scale_input`).
        device: device of the windows (default: the network's).
        progress: a tqdm bar over the windows of each block (progress inside long blocks; not in :meth:`as_dict`).

    Attributes ``roi`` and ``overlap3`` are the volume forms ``(z, y, x)`` (2D: ``(1, y, x)``, ``(0, oy, ox)``).
    """

    roi_size: Sequence[int]
    spatial_dims: int = 3
    overlap: float | Sequence[float] = 0.5
    mode: str = "gaussian"
    sigma_scale: float | Sequence[float] = 0.125
    sw_batch_size: int = 1
    activation: str | None = None
    tta: object = None
    output_dtype: str = "uint8"
    intensity_scale: float | str | None = "auto"
    device: str | None = None
    progress: bool = False
    roi: tuple[int, int, int] = field(init=False)
    overlap3: tuple[float, float, float] = field(init=False)
    weights: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        dims = self.spatial_dims
        roi = [int(r) for r in self.roi_size]
        if dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {dims}")
        if len(roi) != dims or min(roi) < 1:
            count, axes = ("3", "(z, y, x)") if dims == 3 else ("two", "(H, W)")
            raise ValueError(
                f"roi_size must be {count} positive sizes {axes} for spatial_dims={dims}, got {self.roi_size}"
            )
        if dims == 3:
            overlap = _triple(self.overlap, "overlap", float)
        else:
            ov = self.overlap
            ov = _triple(ov, "overlap", float) if np.ndim(ov) == 0 or len(ov) == 3 else (0.0, *ov)
            overlap = (0.0, *(float(o) for o in ov[-2:]))
        if not all(0 <= o < 1 for o in overlap):
            raise ValueError(f"overlap must be in [0, 1) per axis, got {self.overlap!r}")
        if self.output_dtype not in OUTPUT_DTYPES:
            raise ValueError(f"output_dtype must be one of {OUTPUT_DTYPES}, got {self.output_dtype!r}")
        WindowPredictor(None, dims, self.activation)  # validates the activation
        roi3 = tuple(roi) if dims == 3 else (1, *roi)
        object.__setattr__(self, "roi", roi3)
        object.__setattr__(self, "overlap3", overlap)
        object.__setattr__(self, "sw_batch_size", int(self.sw_batch_size))
        object.__setattr__(self, "weights", window_weights(roi3, self.mode, self.sigma_scale))

    def predictor(self, network: Callable) -> WindowPredictor:
        """``network`` with this activation and TTA."""
        return WindowPredictor(network, self.spatial_dims, self.activation, self.tta)

    def as_dict(self) -> dict:
        """The settings that change outputs, as JSON (part of every fingerprint)."""
        return {
            "roi": list(self.roi), "overlap": list(self.overlap3), "mode": self.mode,
            "sigma_scale": np.asarray(self.sigma_scale, dtype=float).tolist(), "activation": self.activation,
            "tta": repr(self.tta), "output_dtype": self.output_dtype,
            "intensity_scale": self.intensity_scale if isinstance(self.intensity_scale, (str, type(None)))
            else float(self.intensity_scale),
            "spatial_dims": self.spatial_dims,
        }  # fmt: skip

    def predict(self, predictor: Callable, data: np.ndarray, crop=None, what: str = "block") -> np.ndarray:
        """Blended sliding-window prediction of ``(C, z, y, x)`` data (``(C, y, x)``: one 2D image),
        cropped to ``crop`` (spatial slices), in ``output_dtype``: ``(C', ...)``.

        The data must be at least one window along each axis (enlarge it with real context first).
        """
        image = data.ndim == 3 and self.spatial_dims == 2
        roi, overlap = (self.roi[1:], self.overlap3[1:]) if image else (self.roi, self.overlap3)
        weights = self.weights[0] if image else self.weights
        block = scale_input(data, self.intensity_scale)
        out = sliding_window_block(
            block,
            predictor,
            roi,
            overlap,
            weights,
            self.mode,
            self.sigma_scale,
            self.sw_batch_size,
            self.device,
        )
        del block
        if crop is not None:
            out = out[(slice(None), *crop)]
        return to_output_dtype(out, self.output_dtype, what)
