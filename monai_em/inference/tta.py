"""Test-time augmentation by flips and the yx transpose, merged by mean, min or max."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

__all__ = ["TestTimeFlips"]

_AXES = ("z", "y", "x")
_MERGES = ("mean", "min", "max")


class TestTimeFlips:
    """Predict every combination of flips (and the y/x transpose), undo each, and merge the results.

    PyTC's ``INFERENCE.AUG_MODE`` / ``AUG_NUM``: with flips of z, y, x and the transpose there are
    16 variants (8 without the transpose). Each window is predicted once per variant; the output is
    mapped back to the original orientation and merged voxel-wise. Works for 3D windows
    ``(B, C, Z, Y, X)`` and 2D windows ``(B, C, Y, X)`` (``"z"`` is ignored for those).
    Off by default in the inferers; pass an instance as their ``tta`` argument.

    Note: outputs are flipped back as images. Channels with a direction (affinities, flows)
    are not re-indexed, as in PyTC; a transposed yx window is fed to the network as is, so
    non-square windows need a fully convolutional network.

    Args:
        flip_axes: subset of ``("z", "y", "x")`` to flip; every subset of it is one variant.
        transpose_xy: also predict each variant with y and x swapped (doubles the count).
        merge: ``"mean"``, ``"min"`` or ``"max"`` over variants.

    Example:
        >>> tta = TestTimeFlips(flip_axes=("y", "x"), transpose_xy=False)
        >>> len(tta.variants(3))
        4
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, flip_axes: Sequence[str] = _AXES, transpose_xy: bool = True, merge: str = "mean"):
        axes = [flip_axes] if isinstance(flip_axes, str) else list(flip_axes)
        bad = [a for a in axes if a not in _AXES]
        if bad or len(set(axes)) != len(axes):
            raise ValueError(f"flip_axes must be distinct names from {_AXES}, got {list(flip_axes)}")
        if merge not in _MERGES:
            raise ValueError(f"merge must be one of {_MERGES}, got {merge!r}")
        self.flip_axes = tuple(a for a in _AXES if a in axes)
        self.transpose_xy = bool(transpose_xy)
        self.merge = merge

    def variants(
        self, spatial_dims: int, spatial_shape: Sequence[int] | None = None
    ) -> list[tuple[tuple[int, ...], bool]]:
        """``(flip dims of the (B, C, ...) tensor, transpose)`` for every variant, identity first.

        Axes of extent 1 in ``spatial_shape`` are not flipped (flipping them changes nothing), so
        the 1-section windows of a 2D network over a volume give 8 variants, not 16.
        """
        offset = 2 + spatial_dims - 3  # tensor dim of z (unused for 2D)
        dims = [offset + _AXES.index(a) for a in self.flip_axes if spatial_dims == 3 or a != "z"]
        if spatial_shape is not None:
            dims = [d for d in dims if spatial_shape[d - 2] != 1]
        flips = [c for n in range(len(dims) + 1) for c in itertools.combinations(dims, n)]
        return [(f, t) for t in ((False, True) if self.transpose_xy else (False,)) for f in flips]

    def __call__(self, x: torch.Tensor, predictor: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if x.ndim not in (4, 5):
            raise ValueError(
                f"TestTimeFlips takes (B, C, Y, X) or (B, C, Z, Y, X) windows, got {tuple(x.shape)}"
            )
        out, n = None, 0
        for flips, transpose in self.variants(x.ndim - 2, tuple(x.shape[2:])):
            v = torch.flip(x, flips) if flips else x
            v = v.transpose(-1, -2) if transpose else v
            y = predictor(v)
            y = y.transpose(-1, -2) if transpose else y
            y = torch.flip(y, flips) if flips else y
            if out is None:
                out = y.clone() if self.merge != "mean" else y.to(torch.float32, copy=True)
            elif self.merge == "mean":
                out += y
            elif self.merge == "min":
                out = torch.minimum(out, y)
            else:
                out = torch.maximum(out, y)
            n += 1
        return out / n if self.merge == "mean" else out

    def __repr__(self) -> str:
        return f"TestTimeFlips(flip_axes={self.flip_axes}, transpose_xy={self.transpose_xy}, merge={self.merge!r})"
