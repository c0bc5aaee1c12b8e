"""Labels -> training targets: boundary maps, affinity maps, masks, distances, classes, and loss weights.

Which target fits which label convention (see docs/segmentation.md): instance ids -> boundary
(:class:`BoundaryTarget`), affinities (:class:`AffinityTarget`) or distance (:class:`DistanceTarget`);
a membrane mask (ISBI 2012: 0 = membrane) or an object mask (mitochondria) -> the mask itself
(:class:`BinaryTarget`, never a contour of it); class ids -> :class:`SemanticTarget`.

Each target transform also knows where its target is *defined*: :meth:`BoundaryTarget.weight` and
:meth:`AffinityTarget.weight` turn a valid mask (non-zero = annotated) into a per-channel loss
weight that is zero wherever the target depends on an unannotated voxel or on a voxel outside the
volume, so partially annotated data never teaches the network anything about its blank parts.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils.enums import TransformBackends
from scipy import ndimage

from .tensors import as_torch, like_input

__all__ = [
    "AffinityTarget",
    "AffinityTargetd",
    "BinaryTarget",
    "BinaryTargetd",
    "BoundaryTarget",
    "BoundaryTargetd",
    "DistanceTarget",
    "DistanceTargetd",
    "SemanticTarget",
    "SemanticTargetd",
    "ValidMaskToWeightd",
    "instance_label_tensor",
]

_BG_MODES = ("include", "exclude")


def instance_label_tensor(label, name: str = "label") -> torch.Tensor:
    """``label`` as a plain ``(1, *spatial)`` int64 tensor on its own device (ids up to 2**63 kept).

    Float labels (``LoadImaged`` loads float32 by default) are accepted when they hold whole numbers.

    Raises:
        ValueError: not channel-first ``(1, Y, X)`` / ``(1, Z, Y, X)``, fractional values, or uint64
            ids that do not fit int64.
    """
    t = as_torch(label)
    if t.ndim not in (3, 4) or t.shape[0] != 1:
        raise ValueError(
            f"{name} must be a channel-first instance label (1, Y, X) or (1, Z, Y, X), got shape {tuple(t.shape)}"
        )
    if t.dtype == torch.bool:
        return t.to(torch.int64)
    if t.is_floating_point():
        if t.numel() and not bool(torch.all(t == torch.round(t))):
            raise ValueError(
                f"{name} must hold integer instance ids, got fractional values (dtype {t.dtype})"
            )
        return t.to(torch.int64)
    out = t.to(torch.int64)
    if t.dtype == torch.uint64 and out.numel() and bool((out < 0).any()):  # wrapped around: id >= 2**63
        raise ValueError(f"{name} has uint64 ids >= 2**63, which the target transforms cannot hold")
    return out


def _valid_tensor(valid, like: torch.Tensor, name: str) -> torch.Tensor:
    """A valid mask as a bool tensor shaped and placed like ``like`` ``(1, *spatial)``."""
    v = as_torch(valid).to(like.device)
    if v.ndim == like.ndim - 1:
        v = v[None]
    if tuple(v.shape) != tuple(like.shape):
        raise ValueError(
            f"{name} has shape {tuple(v.shape)}, the label has {tuple(like.shape)}; they must match"
        )
    return v != 0


def _window_reduce(x: torch.Tensor, axis: int, before: int, after: int, op) -> torch.Tensor:
    """``op`` (max/min) over the offsets ``[-before, after]`` along ``axis``, edges replicated."""
    n = x.shape[axis]
    out = x
    base = torch.arange(n, device=x.device)
    for o in range(-before, after + 1):
        if o != 0:
            out = op(out, x.index_select(axis, (base + o).clamp_(0, n - 1)))
    return out


def _shift(x: torch.Tensor, offset: Sequence[int], fill) -> torch.Tensor:
    """``out[..., p] = x[..., p - offset]`` over the spatial axes, ``fill`` where ``p - offset`` is outside."""
    out = torch.full_like(x, fill)
    src, dst = [slice(None)], [slice(None)]
    for o, n in zip(offset, x.shape[1:], strict=True):
        if abs(o) >= n:
            return out
        src.append(slice(0, n - o) if o >= 0 else slice(-o, n))
        dst.append(slice(o, n) if o >= 0 else slice(0, n + o))
    out[tuple(dst)] = x[tuple(src)]
    return out


class BoundaryTarget(Transform):
    """Instance label -> binary boundary map: 1 on a band along every contour between two instances.

    The boundary target of PyTC (``seg_to_instance_bd``): a voxel is on the boundary when the window
    of offsets ``[-ceil(width/2), floor(width/2)]`` around it (in y and x; also in z unless
    ``in_plane``) holds more than one id, so a straight contour gets a band exactly ``width``
    voxels wide (an odd width puts the extra voxel on the side of the higher coordinate). Volume
    edges are replicated, so they never make a boundary.

    Args:
        width: band width in voxels across a contour, >= 1 (PyTC's default ``tsz_h=1`` is width 2).
        in_plane: windows within each z-section only (default, right for anisotropic serial-section
            EM, as PyTC does); ``False`` uses a cubic window in 3D. 2D labels are always in-plane.
        bg_mode: ``"include"``: 0 is an id like any other, so instance/background contours are
            marked on both sides (PyTC ``do_bg=True``); ``"exclude"``: only contours between two
            non-zero ids count (marked wherever the window holds two different non-zero ids,
            background voxels between them included).

    Input ``(1, Y, X)`` or ``(1, Z, Y, X)`` integer (or whole-number float) ids; output float32 of
    the same shape, values 0 / 1, on the input's device.

    Example:
        >>> import numpy as np
        >>> label = np.zeros((1, 1, 1, 6), dtype=np.int64); label[..., 3:] = 7
        >>> BoundaryTarget(width=2)(label)[0, 0, 0].tolist()
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, width: int = 2, in_plane: bool = True, bg_mode: str = "include"):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        if bg_mode not in _BG_MODES:
            raise ValueError(f"bg_mode must be one of {_BG_MODES}, got {bg_mode!r}")
        self.width = width
        self.in_plane = bool(in_plane)
        self.bg_mode = bg_mode

    def _axes(self, ndim: int) -> tuple[int, ...]:
        return (ndim - 2, ndim - 1) if self.in_plane or ndim == 3 else (1, 2, 3)

    def _window(self, x: torch.Tensor, op) -> torch.Tensor:
        before, after = (self.width + 1) // 2, self.width // 2
        for axis in self._axes(x.ndim):
            x = _window_reduce(x, axis, before, after, op)
        return x

    def boundary(self, label: torch.Tensor) -> torch.Tensor:
        """Bool boundary map of a ``(1, *spatial)`` int64 label tensor."""
        hi = self._window(label, torch.maximum)
        if self.bg_mode == "include":
            return hi != self._window(label, torch.minimum)
        big = torch.iinfo(torch.int64).max
        lo = self._window(torch.where(label == 0, torch.full_like(label, big), label), torch.minimum)
        return (hi != 0) & (lo != big) & (hi != lo)

    def weight(self, valid, like) -> torch.Tensor:
        """Loss weight ``(1, *spatial)`` float32: 1 where the whole window of a voxel is annotated.

        Args:
            valid: valid mask (non-zero = annotated), ``(1, *spatial)`` or ``(*spatial)``; ``None``
                means everything is annotated.
            like: the label (or target) the weight belongs to, for shape and device.
        """
        ref = as_torch(like)
        if valid is None:
            return torch.ones((1, *ref.shape[1:]), dtype=torch.float32, device=ref.device)
        v = _valid_tensor(valid, ref[:1], "valid mask")
        return self._window(v.to(torch.uint8), torch.minimum).to(torch.float32)

    def __call__(self, label):
        lab = instance_label_tensor(label)
        return like_input(self.boundary(lab).to(torch.float32), label)


class AffinityTarget(Transform):
    """Instance label -> affinity map: one channel per neighbour offset, 1 where both voxels share an id.

    The affinity target of PyTC (``seg_to_affgraph``): channel ``c`` at voxel ``p`` is 1 when
    ``label[p] == label[p - offsets[c]]`` and that id is not background (0), else 0. Where
    ``p - offsets[c]`` lies outside the volume the affinity is undefined: it is 0 there and
    :meth:`weight` is 0 there too.

    Args:
        offsets: neighbour offsets, each with one entry per spatial axis; default the direct
            neighbours (z, y, x) for a 3D label (3 channels) and (y, x) for a 2D label (2 channels).
            Long-range affinities: e.g. ``[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 9, 0], [0, 0, 9]]``.
        in_plane: with the default offsets on a 3D label, only (y, x): 2 channels per section (for
            a 2D model run on a 3D volume).

    Input ``(1, Y, X)`` or ``(1, Z, Y, X)`` integer ids; output float32 ``(C, *spatial)``.

    Example:
        >>> import numpy as np
        >>> label = np.array([[[1, 1, 2, 0, 0]]])  # (1, Y=1, X=5)
        >>> AffinityTarget()(label)[1].tolist()  # x channel
        [[0.0, 1.0, 0.0, 0.0, 0.0]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, offsets: Sequence[Sequence[int]] | None = None, in_plane: bool = False):
        if offsets is not None:
            offsets = tuple(tuple(int(o) for o in off) for off in offsets)
            if not offsets or len({len(o) for o in offsets}) != 1 or len(offsets[0]) not in (2, 3):
                raise ValueError(
                    f"offsets must be a non-empty list of 2D or 3D offsets of one length, got {offsets}"
                )
            if any(not any(o) for o in offsets):
                raise ValueError(f"offsets must not contain the zero offset, got {offsets}")
        self.offsets = offsets
        self.in_plane = bool(in_plane)

    def offsets_for(self, spatial_ndim: int) -> tuple[tuple[int, ...], ...]:
        """The offsets used for a label with ``spatial_ndim`` spatial axes."""
        if self.offsets is None:
            if spatial_ndim == 2:
                return ((1, 0), (0, 1))
            return ((0, 1, 0), (0, 0, 1)) if self.in_plane else ((1, 0, 0), (0, 1, 0), (0, 0, 1))
        if len(self.offsets[0]) != spatial_ndim:
            raise ValueError(
                f"offsets {self.offsets} have {len(self.offsets[0])} axes, the label has {spatial_ndim}"
            )
        return self.offsets

    def weight(self, valid, like) -> torch.Tensor:
        """Loss weight ``(C, *spatial)`` float32: 1 where both voxels of an affinity are inside and annotated.

        Args:
            valid: valid mask (non-zero = annotated), ``(1, *spatial)`` or ``(*spatial)``, or ``None``.
            like: the label (or target) the weight belongs to, for shape and device.
        """
        ref = as_torch(like)
        v = (
            torch.ones((1, *ref.shape[1:]), dtype=torch.bool, device=ref.device)
            if valid is None
            else _valid_tensor(valid, ref[:1], "valid mask")
        )
        offsets = self.offsets_for(ref.ndim - 1)
        return torch.cat([v & _shift(v, off, False) for off in offsets]).to(torch.float32)

    def __call__(self, label):
        lab = instance_label_tensor(label)
        offsets = self.offsets_for(lab.ndim - 1)
        aff = torch.cat([(lab == _shift(lab, off, 0)) & (lab != 0) for off in offsets])
        return like_input(aff.to(torch.float32), label)


def _plain_weight(valid, like) -> torch.Tensor:
    """Loss weight ``(1, *spatial)`` float32 of a voxel-wise target: the valid mask itself (``None``: all 1)."""
    ref = as_torch(like)
    if valid is None:
        return torch.ones((1, *ref.shape[1:]), dtype=torch.float32, device=ref.device)
    return _valid_tensor(valid, ref[:1], "valid mask").to(torch.float32)


class BinaryTarget(Transform):
    """Binary or semantic mask -> binary target: the mask itself, 1 where the label is foreground.

    For labels that *are* the mask (PyTC target ``'0'``): mitochondria masks (Lucchi, MitoEM
    semantic: ``label != 0`` is the object) and membrane masks (ISBI 2012: 255 = cell interior,
    0 = membrane; ``invert=True`` makes the membrane the target). A contour of such a mask would
    mark both edges of every membrane (double lines); this target marks each membrane once.

    Args:
        invert: target 1 where the label is background (0), e.g. the membrane of an ISBI mask.
        foreground: the label values that count as foreground; ``None`` (default): every non-zero value.

    Input ``(1, Y, X)`` or ``(1, Z, Y, X)``, any numeric dtype; output float32 of the same shape, 0 / 1.

    Example:
        >>> import numpy as np
        >>> isbi = np.array([[[255, 255, 0, 255]]])  # one membrane pixel
        >>> BinaryTarget(invert=True)(isbi)[0].tolist()
        [[0.0, 0.0, 1.0, 0.0]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, invert: bool = False, foreground: Sequence[float] | None = None):
        if foreground is not None:
            foreground = tuple(float(v) for v in foreground)
            if not foreground:
                raise ValueError("foreground must list at least one label value (or be None: non-zero)")
        self.invert = bool(invert)
        self.foreground = foreground

    def weight(self, valid, like) -> torch.Tensor:
        """Loss weight ``(1, *spatial)`` float32: the valid mask (``None``: everything annotated)."""
        return _plain_weight(valid, like)

    def __call__(self, label):
        t = as_torch(label)
        if t.ndim not in (3, 4) or t.shape[0] != 1:
            raise ValueError(
                f"label must be a channel-first mask (1, Y, X) or (1, Z, Y, X), got shape {tuple(t.shape)}"
            )
        if self.foreground is None:
            fg = t != 0
        else:
            fg = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
            for v in self.foreground:
                fg |= t == v
        return like_input((fg != self.invert).to(torch.float32), label)


class SemanticTarget(Transform):
    """Class ids -> class-index target for cross-entropy (PyTC target ``'9'``), e.g. CellMap organelles.

    Args:
        num_classes: number of classes ``K`` (ids ``0 .. K-1``, 0 = background); a label value outside
            that range is an error.

    Input ``(1, *spatial)`` integer (or whole-number float) ids; output float32 ``(1, *spatial)``
    holding the class index (pair it with ``VoxelWeightedLoss("ce")`` and a ``K``-channel network).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_classes: int):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes

    def weight(self, valid, like) -> torch.Tensor:
        """Loss weight ``(1, *spatial)`` float32: the valid mask (``None``: everything annotated)."""
        return _plain_weight(valid, like)

    def __call__(self, label):
        lab = instance_label_tensor(label)
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
            raise ValueError(
                f"label holds class ids {int(lab.min())}..{int(lab.max())}, outside 0..{self.num_classes - 1} "
                f"(num_classes={self.num_classes})"
            )
        return like_input(lab.to(torch.float32), label)


class DistanceTarget(Transform):
    """Instance label -> distance target: Euclidean distance to the object's edge, scaled to [0, 1] per object.

    monai_em's meaning of PyTC target ``'5'``: inside each object, the distance (in voxels, z
    scaled by ``z_res``) to the nearest voxel of another id, divided by that object's maximum, so
    every object peaks at 1 in its centre and falls towards 0 at its edge; background (0) is 0.
    Seeds for a watershed are then the voxels above a threshold (see ``monai_em.segmentation``).

    Args:
        in_plane: distances within each z-section (default; PyTC's ``'2d'`` mode, for anisotropic
            serial-section EM); ``False``: 3D distances with z voxels ``z_res`` times as long.
        z_res: z voxel size over the in-plane voxel size, for 3D distances.

    Input ``(1, Y, X)`` or ``(1, Z, Y, X)`` ids; output float32 of the same shape in [0, 1].
    Computed with scipy on the CPU (then moved back to the input's device).
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, in_plane: bool = True, z_res: float = 1.0):
        if not float(z_res) > 0:
            raise ValueError(f"z_res must be > 0, got {z_res!r}")
        self.in_plane = bool(in_plane)
        self.z_res = float(z_res)

    def weight(self, valid, like) -> torch.Tensor:
        """Loss weight ``(1, *spatial)`` float32: the valid mask (``None``: everything annotated)."""
        return _plain_weight(valid, like)

    def distance(self, label: np.ndarray) -> np.ndarray:
        """``(*spatial)`` float32 normalised distance of an ``(*spatial)`` int label."""
        if label.ndim == 3 and self.in_plane:
            return np.stack([self.distance(s) for s in label])
        sampling = (self.z_res, 1.0, 1.0) if label.ndim == 3 else (1.0, 1.0)
        # an id edge: a voxel whose neighbour (along any axis) holds another id; the edge voxels get distance 1
        edge = np.zeros(label.shape, bool)
        for axis in range(label.ndim):
            diff = np.diff(label, axis=axis) != 0
            lo = [slice(None)] * label.ndim
            hi = [slice(None)] * label.ndim
            lo[axis], hi[axis] = slice(0, -1), slice(1, None)
            edge[tuple(lo)] |= diff
            edge[tuple(hi)] |= diff
        out = np.zeros(label.shape, np.float32)
        inside = (label != 0) & ~edge
        if not inside.any():
            return out
        dist = ndimage.distance_transform_edt(inside, sampling=sampling).astype(np.float32)
        _, ids = np.unique(label, return_inverse=True)  # compact ids 0..n-1
        ids = ids.reshape(label.shape)
        peak = np.asarray(ndimage.maximum(dist, ids, index=np.arange(int(ids.max()) + 1)), np.float32)
        fg = label != 0
        out[fg] = dist[fg] / np.where(peak > 0, peak, 1.0)[ids[fg]]
        return out

    def __call__(self, label):
        lab = instance_label_tensor(label)
        dist = self.distance(lab[0].cpu().numpy())[None]
        return like_input(torch.from_numpy(dist).to(lab.device), label)


class _TargetDict(MapTransform):
    """Shared dict wrapper: replace ``keys`` by the target, optionally write the loss weight."""

    backend = BoundaryTarget.backend

    def __init__(self, keys, target, valid_key: str | None, weight_key: str | None, allow_missing_keys: bool):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if weight_key is not None and len(self.keys) != 1:
            raise ValueError(f"weight_key needs exactly one label key, got keys {self.keys}")
        self.target = target
        self.valid_key = valid_key
        self.weight_key = weight_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if self.weight_key is not None:
                valid = None
                if self.valid_key is not None:
                    if self.valid_key not in d:
                        raise ValueError(f"valid_key {self.valid_key!r} is not in the data (keys: {list(d)})")
                    valid = d[self.valid_key]
                d[self.weight_key] = like_input(self.target.weight(valid, label), label)
            d[key] = self.target(label)
        return d


class BoundaryTargetd(_TargetDict):
    """Dictionary wrapper of :class:`BoundaryTarget` (same ``width``, ``in_plane``, ``bg_mode``).

    Args:
        keys: instance label key(s), replaced by their boundary maps.
        valid_key: key of the valid mask that feeds the weight (absent: everything is annotated).
        weight_key: when set, also write the per-voxel loss weight (see :meth:`BoundaryTarget.weight`)
            under this key; needs a single label key.
        allow_missing_keys: skip label keys absent from the data instead of raising.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        width: int = 2,
        in_plane: bool = True,
        bg_mode: str = "include",
        valid_key: str | None = None,
        weight_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(
            keys, BoundaryTarget(width, in_plane, bg_mode), valid_key, weight_key, allow_missing_keys
        )


class AffinityTargetd(_TargetDict):
    """Dictionary wrapper of :class:`AffinityTarget` (same ``offsets``, ``in_plane``).

    Args:
        keys: instance label key(s), replaced by their affinity maps.
        valid_key: key of the valid mask that feeds the weight (absent: everything is annotated).
        weight_key: when set, also write the per-channel loss weight (see :meth:`AffinityTarget.weight`)
            under this key; needs a single label key.
        allow_missing_keys: skip label keys absent from the data instead of raising.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        offsets: Sequence[Sequence[int]] | None = None,
        in_plane: bool = False,
        valid_key: str | None = None,
        weight_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, AffinityTarget(offsets, in_plane), valid_key, weight_key, allow_missing_keys)


class BinaryTargetd(_TargetDict):
    """Dictionary wrapper of :class:`BinaryTarget` (same ``invert``, ``foreground``).

    Args:
        keys: mask key(s), replaced by their binary targets.
        valid_key: key of the valid mask that feeds the weight (absent: everything is annotated).
        weight_key: when set, also write the loss weight (the valid mask) under this key.
        allow_missing_keys: skip label keys absent from the data instead of raising.
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        invert: bool = False,
        foreground: Sequence[float] | None = None,
        valid_key: str | None = None,
        weight_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, BinaryTarget(invert, foreground), valid_key, weight_key, allow_missing_keys)


class SemanticTargetd(_TargetDict):
    """Dictionary wrapper of :class:`SemanticTarget` (same ``num_classes``); other arguments as :class:`BinaryTargetd`."""

    def __init__(
        self,
        keys: KeysCollection = "label",
        num_classes: int = 2,
        valid_key: str | None = None,
        weight_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, SemanticTarget(num_classes), valid_key, weight_key, allow_missing_keys)


class DistanceTargetd(_TargetDict):
    """Dictionary wrapper of :class:`DistanceTarget` (same ``in_plane``, ``z_res``); other arguments as :class:`BinaryTargetd`."""

    def __init__(
        self,
        keys: KeysCollection = "label",
        in_plane: bool = True,
        z_res: float = 1.0,
        valid_key: str | None = None,
        weight_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, DistanceTarget(in_plane, z_res), valid_key, weight_key, allow_missing_keys)


class ValidMaskToWeightd(MapTransform):
    """Valid mask -> per-voxel loss weight (1 = annotated, 0 = ignore), written to ``weight_key``.

    Use it when the target is built elsewhere; the target transforms above write their own weight
    via ``weight_key``. With ``target`` (a :class:`BoundaryTarget` or :class:`AffinityTarget`), the
    weight is also zero where that target is undefined (its window touches an unannotated voxel,
    or an affinity's neighbour is outside the volume) and has the target's channels; without it,
    the mask is repeated to ``channels``.

    Args:
        keys: the valid-mask key (one), kept unchanged.
        weight_key: key of the float32 weight written.
        target: optional array target transform whose definition domain is applied.
        channels: channels of the weight when ``target`` is None.
        allow_missing_keys: do nothing when the valid mask is absent instead of raising.
    """

    backend = BoundaryTarget.backend

    def __init__(
        self,
        keys: KeysCollection = "valid_mask",
        weight_key: str = "weight",
        target: BoundaryTarget | AffinityTarget | None = None,
        channels: int = 1,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"ValidMaskToWeightd takes one valid-mask key, got {self.keys}")
        if target is not None and not hasattr(target, "weight"):
            raise TypeError(f"target must be a target transform with a weight(), got {type(target).__name__}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.weight_key = weight_key
        self.target = target
        self.channels = int(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            valid = d[key]
            v = as_torch(valid)
            if v.ndim not in (3, 4):
                raise ValueError(
                    f"{key!r} must be a channel-first mask (1, Y, X) or (1, Z, Y, X), got {tuple(v.shape)}"
                )
            if self.target is not None:
                w = self.target.weight(v, v[:1])
            else:
                w = (v[:1] != 0).to(torch.float32).expand(self.channels, *v.shape[1:]).clone()
            d[self.weight_key] = like_input(w, valid)
        return d
