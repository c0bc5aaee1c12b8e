"""PyTC ``MODEL.TARGET_OPT`` strings and bundle target names -> monai_em target transforms and losses.

One table, :data:`TARGETS`, says for each target what it is built from, how many channels the
network predicts, which loss fits and how predictions become instances (``monai_em.segmentation``).

| PyTC option | name | monai_em target | loss |
|---|---|---|---|
| ``'0'`` | ``binary`` | :class:`BinaryTargetd` (``label != 0``) | BCE + Dice |
| (none) | ``membrane`` | :class:`BinaryTargetd` ``invert=True`` (ISBI: 0 = membrane) | BCE + Dice |
| ``'2'`` | ``affinity`` | :class:`AffinityTargetd` (direct neighbours) | BCE + Dice |
| ``'4'``, ``'4-<h>-<bg>'`` | ``boundary`` | :class:`BoundaryTargetd`, width ``2 * h`` (default 1), ``bg`` 1 = include | BCE + Dice |
| ``'5'``, ``'5-<2d|3d>...'`` | ``distance`` | :class:`DistanceTargetd` | MSE on the sigmoid |
| ``'9'``, ``'9-<K>'`` | ``semantic`` | :class:`SemanticTargetd` with K classes (default 2) | cross-entropy |

PyTC's ``'1'`` (synaptic polarity), ``'3'`` (small objects) and ``'6'`` (skeleton-aware distance)
have no monai_em meaning yet: asking for them is an error that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..losses import VoxelWeightedLoss
from .targets import AffinityTargetd, BinaryTargetd, BoundaryTargetd, DistanceTargetd, SemanticTargetd

__all__ = [
    "TARGETS",
    "TargetSpec",
    "loss_for_target",
    "loss_name_for",
    "parse_target",
    "target_channels",
    "target_from_pytc_option",
]


@dataclass(frozen=True)
class TargetSpec:
    """What a target name means: its PyTC option, loss, and the segmentation that turns it into instances."""

    name: str
    pytc: str | None
    loss: str
    segmentation: str  # a method of monai_em.segmentation.segment


TARGETS: dict[str, TargetSpec] = {
    t.name: t
    for t in (
        TargetSpec("binary", "0", "bce+dice", "components"),
        TargetSpec("membrane", None, "bce+dice", "watershed"),
        TargetSpec("affinity", "2", "bce+dice", "agglomeration"),
        TargetSpec("boundary", "4", "bce+dice", "watershed"),
        TargetSpec("distance", "5", "mse", "distance_watershed"),
        TargetSpec("semantic", "9", "ce", "components"),
    )
}
_BY_OPTION = {t.pytc: t.name for t in TARGETS.values() if t.pytc}
_UNSUPPORTED = {"1": "synaptic polarity", "3": "small-object mask", "6": "skeleton-aware distance"}


def parse_target(target: str) -> tuple[str, list[str]]:
    """A target name (``'boundary'``) or PyTC option (``'4-2-1'``) -> (name, option fields after the first).

    Raises:
        ValueError: an unknown name or option, or an option monai_em has no meaning for.
    """
    text = str(target).strip()
    if text in TARGETS:
        return text, []
    head, *fields = text.split("-")
    if head in _BY_OPTION:
        return _BY_OPTION[head], fields
    if head in _UNSUPPORTED:
        raise ValueError(f"PyTC target option {text!r} ({_UNSUPPORTED[head]}) has no monai_em target yet")
    raise ValueError(
        f"unknown target {text!r}: use one of {sorted(TARGETS)} or a PyTC MODEL.TARGET_OPT option "
        f"starting with one of {sorted(_BY_OPTION)}"
    )


def _ints(option: str, fields: Sequence[str], names: Sequence[str]) -> list[int]:
    if len(fields) > len(names):
        raise ValueError(
            f"target option {option!r} has {len(fields)} fields after the first, at most {len(names)} ({names})"
        )
    try:
        return [int(f) for f in fields]
    except ValueError:
        raise ValueError(
            f"target option {option!r}: fields {list(fields)} must be integers ({names})"
        ) from None


def target_from_pytc_option(
    opt: str,
    keys: KeysCollection = "label",
    valid_key: str | None = None,
    weight_key: str | None = "weight",
    do_2d: bool = False,
) -> MapTransform:
    """The dictionary target transform for a PyTC option (``'0'``, ``'2'``, ``'4-2-1'``, ``'5'``, ``'9-3'``) or a name.

    Args:
        opt: PyTC ``MODEL.TARGET_OPT`` entry or a name of :data:`TARGETS` (see the module table).
        keys: label key(s) replaced by the target.
        valid_key: valid-mask key feeding the weight.
        weight_key: where the loss weight goes (``None``: no weight).
        do_2d: 2D labels / 2D model: affinities get 2 channels (y, x).

    Example:
        >>> t = target_from_pytc_option("4-2-1")
        >>> type(t).__name__, t.target.width, t.target.bg_mode
        ('BoundaryTargetd', 4, 'include')
    """
    name, fields = parse_target(opt)
    common = {"keys": keys, "valid_key": valid_key, "weight_key": weight_key}
    if name == "binary":
        _ints(opt, fields, [])
        return BinaryTargetd(**common)
    if name == "membrane":
        return BinaryTargetd(invert=True, **common)
    if name == "affinity":
        _ints(opt, fields, [])
        return AffinityTargetd(in_plane=do_2d, **common)
    if name == "boundary":
        half, bg = (_ints(opt, fields, ["half width", "background contours"]) + [1, 1][len(fields) :])[:2]
        if half < 1 or bg not in (0, 1):
            raise ValueError(f"target option {opt!r}: half width must be >= 1 and background 0 or 1")
        return BoundaryTargetd(width=2 * half, bg_mode="include" if bg else "exclude", **common)
    if name == "distance":
        mode = fields[0] if fields else "2d"
        if mode not in ("2d", "3d"):
            raise ValueError(f"target option {opt!r}: distance mode must be '2d' or '3d', got {mode!r}")
        z_res = (
            float(fields[3]) if len(fields) >= 4 else 1.0
        )  # PyTC's '5-<mode>-<padding>-<quantize>-<z_res>'
        return DistanceTargetd(in_plane=mode == "2d", z_res=z_res, **common)
    (classes,) = _ints(opt, fields, ["classes"]) or [2]
    return SemanticTargetd(num_classes=classes, **common)


def target_channels(target: str, do_2d: bool = False) -> int:
    """Output channels a network needs for a target name or PyTC option (affinity: 3, or 2 in 2D)."""
    name, fields = parse_target(target)
    if name == "affinity":
        return 2 if do_2d else 3
    if name == "semantic":
        return int(fields[0]) if fields else 2
    return 1


def loss_for_target(target: str, **kwargs) -> VoxelWeightedLoss:
    """The loss that fits a target name or PyTC option (see the module table), weight channels included.

    ``kwargs`` go to :class:`~monai_em.losses.VoxelWeightedLoss` (e.g. ``smooth``).
    """
    return VoxelWeightedLoss(TARGETS[parse_target(target)[0]].loss, **kwargs)


def loss_name_for(target: str, loss_name: str = "auto") -> str:
    """``loss_name`` unless it is ``"auto"``, then the loss that fits ``target`` (the bundle's ``loss_name`` id)."""
    return TARGETS[parse_target(target)[0]].loss if loss_name == "auto" else loss_name
