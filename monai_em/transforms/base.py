"""What every monai_em transform shares: margins for the planner, the draw/apply split, the dict wrapper.

An array transform subclasses :class:`RandEMTransform`: ``draw(spatial_shape)`` is the only code
that touches ``self.R`` and returns a small frozen params record; ``apply(img, params, mode)`` is a
pure function of its arguments. The dictionary wrapper :class:`RandEMDictTransform` draws ONCE per
call and applies the same params to every key with that key's ``mode``, so image, label and valid
mask stay aligned.

Thread safety: a call keeps what it drew in local variables (``sample`` returns the params record,
``None`` when the ``prob`` coin says no) and changes no process-global state, so one instance may
serve several threads (``ThreadDataLoader(use_thread_workers=True)``). ``params`` is a per-thread
record of the calling thread's last draw, for inspection only. The RNG ``self.R`` is shared: each
call's draws come from it under numpy's lock, so every call gets a valid, consistent draw, but which
call gets which part of the stream depends on thread timing (a run is reproducible with one thread).

Geometric transforms (:class:`RandEMSpatialDictTransform`) record each call in a MetaTensor's
``applied_operations`` and update its ``affine`` (``affine @ A``, ``A`` the map from output to input
voxel indices); the exact ones (flips, transposes, quarter turns) have an ``inverse``, the others
raise ``NotImplementedError`` when asked for one.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import InvertibleTransform, MapTransform, RandomizableTransform
from monai.transforms.inverse import TraceableTransform
from monai.utils import TraceKeys
from monai.utils.enums import TransformBackends

from ..roles import ROLES, resolve_roles

# re-exported: ``from monai_em.transforms.base import as_torch`` (and the others) keeps working
from .tensors import as_output, as_torch, cast_back, like_input, signed_view, unsigned_as_signed

__all__ = [
    "PATCHES",
    "POINTS",
    "SECTIONS",
    "SECTION_WINDOW",
    "WINDOW",
    "Margin",
    "RandEMDictTransform",
    "RandEMSpatialDictTransform",
    "RandEMTransform",
    "as_output",
    "as_torch",
    "cast_back",
    "check_int",
    "check_number",
    "check_axis_order",
    "check_unit",
    "keys_and_modes",
    "like_input",
    "shift_affine",
    "signed_view",
    "spatial_shape_of",
    "track_call",
    "translation",
    "uncrop",
    "undo_crop",
    "unsigned_as_signed",
]

# What a transform can contribute to EMAugmentor's one-pass fusion (transforms/fusion.py plans from these):
#: a point map ``source_points(params, shape, z, yx) -> (z, yx)`` shared by every section
POINTS = "points"
#: a section map ``section_map(params, shape) -> (sources, origins, size, angles) | None`` (None: apply
#: directly): output section k is input section ``sources[k]``, turned by ``angles[k]`` degrees about its
#: centre as ``resample.rotate_xy`` does (``angles`` None: no turns; only nearest keys compose a turn),
#: then cut at ``origins[k]`` (y, x) to ``size``
SECTIONS = "sections"
#: a pointwise image operation ``apply_window(window, params, mode, start, section)`` on any window
#: (``start``: its first (z,) y, x in the whole image; ``section(z)``: the whole image's section z); it may
#: write into ``window`` (the caller's own copy) and returns the result
WINDOW = "window"
#: as WINDOW, but reading whole sections of its own input (first of a window group only)
SECTION_WINDOW = "section_window"
#: an image operation that rewrites only boxes: ``patches(params, shape, read) -> [(box, values)]``, each
#: ``box`` ((z0, z1), (y0, y1), (x0, x1)) with its new ``values`` (C, dz, dy, dx); ``read(box)`` gives its input there
PATCHES = "patches"


@dataclass(frozen=True)
class Margin:
    """Context a geometric transform needs around its output, per axis (z, y, x).

    The planner grows a size as ``ceil(size * ratio) + 2 * add`` (spec: augmentations.md, section 1).
    """

    ratio: tuple[float, float, float] = (1.0, 1.0, 1.0)
    add: tuple[int, int, int] = (0, 0, 0)

    def grow(self, size: Sequence[int]) -> tuple[int, ...]:
        return tuple(
            int(math.ceil(round(s * r, 6))) + 2 * int(a)
            for s, r, a in zip(size, self.ratio, self.add, strict=True)
        )


def check_number(name: str, value: Any) -> float:
    """``value`` as a float; TypeError naming ``name`` for a string, bool, range or other non-number (no parsing)."""
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_unit(name: str, value: float) -> float:
    """``value`` as a float if it lies in [0, 1] (a probability or a ratio), else ValueError naming ``name``."""
    value = check_number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (integral floats pass) of at least ``minimum``; else an error naming ``name``.

    PyTC takes one integer for these parameters (``sections``, ``displacement``, ``iterations``, ...),
    so a range such as ``(1, 3)`` is refused with a TypeError rather than drawn from.
    """
    if isinstance(value, (tuple, list)):
        raise TypeError(
            f"{name} must be one int, got the range {value!r} (PyTC takes one int; no range is drawn)"
        )
    number = check_number(name, value)
    if not number.is_integer():
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(number)


# meta keys of MONAI readers that index a file x first (ITKReader by default, NibabelReader, PILReader)
_X_FIRST_READERS = {"spacing": "ITKReader", "pixdim": "NibabelReader", "width": "PILReader"}


def check_axis_order(img, key: Hashable) -> None:
    """Warn when ``img`` looks X-first: a MetaTensor from MONAI's ``LoadImage`` with an ITK / NIfTI /
    PIL reader, whose axes still follow the file's (x, y[, z]) order (``meta["spatial_shape"]``).

    monai_em transforms take ``(C, Z, Y, X)`` (2D ``(C, Y, X)``), Z the section axis; those readers
    return x first, so a section transform would act along X. Silent when the order cannot be told
    (other readers, a symmetric shape, or after the array was cropped or transposed).
    """
    if not isinstance(img, MetaTensor):
        return
    meta = img.meta
    reader = next((name for k, name in _X_FIRST_READERS.items() if k in meta), None)
    if reader is None or "spatial_shape" not in meta:
        return
    file_order = tuple(int(s) for s in np.asarray(meta["spatial_shape"]).reshape(-1))
    shape = tuple(int(s) for s in img.shape[1:])
    if len(shape) < 2 or shape != file_order or shape == shape[::-1]:
        return
    axes = ("X", "Y", "Z")[: len(shape)]
    fix = (0, *range(len(shape), 0, -1))
    warnings.warn(
        f"key {key!r}: {meta.get('filename_or_obj', 'the data')} arrives from {reader} as "
        f"({', '.join(axes)}) = {shape}, but monai_em transforms take (C, {', '.join(axes[::-1])}) with Z the "
        f"section axis; add Transposed(keys, indices={fix}) after LoadImaged (or read it with "
        "monai_em.data.open_volume)",
        UserWarning,
        stacklevel=3,
    )


def keys_and_modes(targets: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """PyTC target types (or roles, see :func:`~monai_em.roles.resolve_roles`) -> MONAI ``keys`` and per-key ``mode``.

    Example:
        >>> keys_and_modes({"image": "img", "label": "mask", "valid_mask": "mask"})
        (('image', 'label', 'valid_mask'), ('bilinear', 'nearest', 'nearest'))
    """
    roles = resolve_roles(targets)
    return tuple(roles), tuple(ROLES[r].interpolation for r in roles.values())


def spatial_shape_of(data: Mapping[Hashable, Any], keys: Sequence[Hashable]) -> tuple[int, ...]:
    """The common spatial shape (all but the channel axis) of ``keys`` present in ``data``.

    Raises:
        ValueError: naming every key and its shape when they disagree, when one has a spatial axis
            of size 0, or when no key is present.
    """
    shapes = {k: tuple(data[k].shape[1:]) for k in keys if k in data}
    if not shapes:
        raise ValueError(f"none of the keys {list(keys)} is in the data (keys present: {list(data)})")
    if len(set(shapes.values())) > 1:
        raise ValueError(f"keys must share one spatial shape to move together, got {shapes}")
    empty = {k: s for k, s in shapes.items() if 0 in s}
    if empty:
        raise ValueError(f"keys {list(empty)} have a spatial axis of size 0: shapes {empty}")
    return next(iter(shapes.values()))


class _LastDraw:
    """``params``: the calling thread's last draw (inspection only; a call never reads it back)."""

    def _remember(self, params: Any) -> None:
        local = self.__dict__.get("_last_draw")
        if local is None:
            local = self.__dict__.setdefault("_last_draw", threading.local())
        local.params = params

    @property
    def params(self) -> Any:
        """What this thread's last call drew (``None`` when the ``prob`` coin said no)."""
        return getattr(self.__dict__.get("_last_draw"), "params", None)

    def __getstate__(self):  # thread-locals do not pickle (process DataLoader workers, deepcopy)
        return {k: v for k, v in self.__dict__.items() if k not in ("_last_draw", "_tracing")}


class RandEMTransform(_LastDraw, RandomizableTransform):
    """Base of the array transforms: ``prob`` gate, ``draw`` -> params, pure ``apply``.

    Subclasses implement ``draw(spatial_shape) -> params`` (all randomness from ``self.R``) and
    ``apply(img, params, mode) -> img`` (input ``(C, Z, Y, X)``, numpy or torch; output the MONAI
    type on the input's device). Geometric subclasses override ``margin``, and ``index_affine``
    (and ``invert``, ``trace_info``, ``from_trace`` where the move is exact) for MetaTensor tracking.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]
    default_mode: str = "bilinear"
    #: moves voxels (interpolates): integer keys without an explicit mode are moved with nearest
    geometric: bool = False

    def __init__(self, prob: float = 1.0, mode: str | None = None):
        RandomizableTransform.__init__(self, check_unit("prob", prob))
        self.mode = mode or self.default_mode

    def margin(self) -> Margin:
        """Context needed around the output (identity for non-geometric transforms)."""
        return Margin()

    def contribution(self) -> str | None:
        """What this transform can contribute to a fused pass: :data:`POINTS`, :data:`SECTIONS`,
        :data:`WINDOW`, :data:`SECTION_WINDOW`, :data:`PATCHES`, or ``None`` (it runs on its own, as in
        ``Compose``)."""
        return None

    def output_shape(self, params: Any, spatial_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The spatial shape ``apply(img, params)`` returns for input ``spatial_shape`` (kept by default)."""
        return tuple(spatial_shape)

    def draw(self, spatial_shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def apply(self, img, params: Any, mode: str):
        raise NotImplementedError

    def index_affine(self, params: Any, spatial_shape: tuple[int, ...]) -> np.ndarray | None:
        """``(n + 1, n + 1)`` map from output to input voxel indices, ``None`` if not affine (affine kept)."""
        return None

    def trace_info(self, params: Any) -> dict:
        """What :meth:`from_trace` needs to rebuild ``params`` (numbers only: it is collated)."""
        return {}

    def from_trace(self, info: Mapping) -> Any:
        raise NotImplementedError(self._no_inverse())

    def invert(self, img, params: Any):
        """The input of ``apply(img, params)`` back from its output (exact transforms only)."""
        raise NotImplementedError(self._no_inverse())

    def _no_inverse(self) -> str:
        return (
            f"{type(self).__name__} has no exact inverse (it interpolates, warps, shifts or drops voxels); "
            "leave it out of the transforms you invert (Invertd, Compose.inverse, test-time augmentation)"
        )

    def sample(self, spatial_shape: tuple[int, ...]) -> Any:
        """One call's draw: the ``prob`` coin, then ``draw`` if it says yes, else ``None``."""
        params = self.draw(tuple(spatial_shape)) if self.R.rand() < self.prob else None
        self._remember(params)
        return params

    def randomize(self, spatial_shape: tuple[int, ...]) -> None:  # type: ignore[override]
        self.sample(spatial_shape)

    def draw_shape(self, img) -> tuple[int, ...]:
        """The shape ``draw`` sees for ``img``: its spatial shape (a batch transform takes the whole shape)."""
        return tuple(img.shape[1:])

    def __call__(self, img, mode: str | None = None, randomize: bool = True):
        params = self.sample(self.draw_shape(img)) if randomize else self.params
        if params is None:
            return as_output(img)
        return self.apply(img, params, mode or self.mode)


class RandEMDictTransform(_LastDraw, RandomizableTransform, MapTransform):
    """Dictionary wrapper: one draw per call from the inner array transform, applied to every key.

    Args:
        keys: keys to transform; geometric transforms move all of them together.
        transform: the array transform (its own ``prob`` should be 1; the gate is here).
        prob: probability of transforming at all.
        mode: interpolation per key (``"bilinear"`` for images, ``"nearest"`` for labels and
            masks), one value for all keys or a sequence matching ``keys``. Left out (None), a key
            whose array has an integer or bool dtype is moved with ``"nearest"`` (label values are
            never invented), others get the transform's default. An explicit non-nearest mode on
            integer data wider than 8 bits (label ids; uint8 is the usual EM image type) warns once.
            Both apply to geometric transforms (``transform.geometric``) only.
        allow_missing_keys: skip keys absent from the data instead of raising.
    """

    backend = RandEMTransform.backend

    def __init__(
        self,
        keys: KeysCollection,
        transform: RandEMTransform,
        prob: float = 1.0,
        mode: str | Sequence[str] | None = None,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_unit("prob", prob))
        self.transform = transform
        self.explicit_mode = mode is not None
        self._warned: set[Hashable] = set()
        mode = transform.mode if mode is None else mode
        modes = (mode,) * len(self.keys) if isinstance(mode, str) else tuple(mode)
        if len(modes) != len(self.keys):
            raise ValueError(f"mode has {len(modes)} entries for {len(self.keys)} keys {self.keys}")
        self.mode = modes
        self.transform.set_random_state(state=self.R)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(state=self.R)  # one stream shared with the array transform
        return self

    def key_mode(self, key: Hashable, img: Any, mode: str) -> str:
        """The interpolation for ``key``'s array ``img``: integer data without an explicit mode -> nearest."""
        dtype = img.dtype
        integer = (not dtype.is_floating_point and not dtype.is_complex) if isinstance(dtype, torch.dtype) else (
            np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)
        )  # fmt: skip
        if mode == "nearest" or not integer or not self.transform.geometric:
            return mode
        if not self.explicit_mode:
            return "nearest"
        size = dtype.itemsize if isinstance(dtype, torch.dtype) else np.dtype(dtype).itemsize
        if size > 1 and key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"{type(self).__name__}: key {key!r} holds {str(dtype).replace('torch.', '')} data but mode "
                f"{mode!r} blends values (label ids get invented in between); use mode 'nearest' for labels",
                UserWarning,
                stacklevel=3,
            )
        return mode

    def margin(self) -> Margin:
        return self.transform.margin()

    def contribution(self) -> str | None:
        """What the inner transform contributes to a fused pass (see :meth:`RandEMTransform.contribution`)."""
        return self.transform.contribution()

    def sample(self, spatial_shape: tuple[int, ...]) -> Any:
        """One call's draw for every key: this wrapper's ``prob`` coin, then the inner ``draw``."""
        params = self.transform.draw(tuple(spatial_shape)) if self.R.rand() < self.prob else None
        self._remember(params)
        self.transform._remember(params)
        return params

    def randomize(self, spatial_shape: tuple[int, ...]) -> None:  # type: ignore[override]
        self.sample(spatial_shape)

    def draw_shape(self, data: Mapping[Hashable, Any], keys: Sequence[Hashable]) -> tuple[int, ...]:
        """The shape the inner ``draw`` sees: the spatial shape all ``keys`` share."""
        return spatial_shape_of(data, keys)

    def apply_key(self, img, params: Any, mode: str):
        """One key's output for one call's ``params`` (``None``: untouched, as the MONAI type)."""
        return as_output(img) if params is None else self.transform.apply(img, params, mode)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        for key in keys:
            check_axis_order(d[key], key)
        params = self.sample(self.draw_shape(d, keys))
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.apply_key(d[key], params, self.key_mode(key, d[key], mode))
        return d


class RandEMSpatialDictTransform(RandEMDictTransform, InvertibleTransform):
    """A geometric :class:`RandEMDictTransform`: MetaTensor keys get their affine updated and the call
    recorded in ``applied_operations`` (also when the coin says no), so MONAI's ``Invertd`` and
    ``Compose.inverse`` can undo the exact ones and stop with a clear error at the others."""

    def apply_key(self, img, params: Any, mode: str):
        # a skipped call still gets a new MetaTensor: the record must not reach the caller's input
        out = like_input(as_torch(img), img) if params is None else self.transform.apply(img, params, mode)
        return self.track(out, params, tuple(img.shape[1:]))

    def track(self, out, params: Any, spatial_shape: tuple[int, ...]):
        """``out`` with this call recorded (MetaTensor only; ``params`` None: a skipped call)."""
        if not isinstance(out, MetaTensor) or not get_track_meta():
            return out  # nothing to record: skip building the affine
        if params is None:
            return track_call(self, out, spatial_shape)
        affine = self.transform.index_affine(params, spatial_shape)
        return track_call(self, out, spatial_shape, affine, self.transform.trace_info(params))

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            xform = self.pop_transform(d[key])
            if not xform[TraceKeys.DO_TRANSFORM]:
                continue
            params = self.transform.from_trace(xform[TraceKeys.EXTRA_INFO])
            shape = tuple(int(s) for s in xform[TraceKeys.ORIG_SIZE])
            out = self.transform.invert(d[key], params)
            affine = self.transform.index_affine(params, shape)
            d[key] = out if affine is None else shift_affine(out, np.linalg.inv(affine))
        return d


def track_call(transform, out, orig_size: Sequence[int], affine=None, extra: dict | None = None):
    """Record one call of ``transform`` (an ``InvertibleTransform``) on MetaTensor ``out``: its affine
    becomes ``affine_in @ affine`` (``affine``: output -> input voxel indices, ``None`` = identity) and the
    call joins ``applied_operations`` (``extra`` None: a skipped call). Other types pass through."""
    if not isinstance(out, MetaTensor) or not get_track_meta():
        return out
    info = transform.get_transform_info()
    info[TraceKeys.DO_TRANSFORM] = extra is not None
    orig = tuple(int(s) for s in orig_size)
    meta = TraceableTransform.track_transform_meta(
        out, affine=affine, extra_info=dict(extra or {}), orig_size=orig, transform_info=info
    )
    return out.copy_meta_from(meta)


def shift_affine(img, affine):
    """``img`` with its MetaTensor affine multiplied by ``affine`` on the right (nothing recorded)."""
    if not isinstance(img, MetaTensor):
        return img
    meta = TraceableTransform.track_transform_meta(img, affine=torch.as_tensor(affine, dtype=torch.float64))
    return img.copy_meta_from(meta)


def translation(start: Sequence[int]) -> np.ndarray:
    """The index map of a crop at ``start``: output index ``i`` reads input index ``i + start``."""
    n = len(start)
    out = np.eye(n + 1)
    out[:n, n] = np.asarray(start, dtype=np.float64)
    return out


def uncrop(img, start: Sequence[int], orig_size: Sequence[int]):
    """A crop ``img`` ``(C, *size)`` taken at ``start`` put back into zeros of spatial shape ``orig_size``
    (the inverse of a crop, as MONAI's; parts of a mirrored crop outside the volume are dropped)."""
    t = as_torch(img)
    out = t.new_zeros((t.shape[0], *(int(n) for n in orig_size)))
    dst, src = [slice(None)], [slice(None)]
    for a, n, size in zip(start, orig_size, t.shape[1:], strict=True):
        lo, hi = max(int(a), 0), min(int(a) + int(size), int(n))
        dst.append(slice(lo, max(hi, lo)))
        src.append(slice(lo - int(a), max(hi, lo) - int(a)))
    out[tuple(dst)] = t[tuple(src)]
    return like_input(out, img)


def undo_crop(transform, img):
    """``img`` with the last crop ``transform`` recorded on it undone: :func:`uncrop` at the recorded
    ``start`` and the affine shifted back (the inverse of a crop recorded by :func:`track_call`)."""
    xform = transform.pop_transform(img)
    start = [int(s) for s in xform[TraceKeys.EXTRA_INFO]["start"]]
    out = uncrop(img, start, [int(s) for s in xform[TraceKeys.ORIG_SIZE]])
    return shift_affine(out, np.linalg.inv(translation(start)))
