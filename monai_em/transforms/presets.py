"""PyTC's default augmentation list and its switches (``AUGMENTOR.<NAME>.ENABLED`` / ``SKIP`` / parameters).

:func:`default_em_transforms` is what :meth:`~monai_em.transforms.compose.EMAugmentor.from_targets`,
:func:`~monai_em.transforms.pipeline.train_transform`, the PyTC builders and the bundle augment with;
which keys each transform takes comes from the key roles (:mod:`monai_em.roles`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..roles import ROLES, default_roles, first_key, intensity_keys, resolve_roles
from .intensity import RandCutBlurd, RandCutNoised, RandGrayscaled
from .mixing import RandCopyPasted
from .sections import RandMisAlignmentd, RandMissingPartsd, RandMissingSectiond, RandMotionBlurd
from .spatial import RandFlipTransposed, RandRescaled, RandRotateXYd, RandSectionElasticd

__all__ = ["augmentation_name", "default_em_transforms"]

# PyTC's AUGMENTOR defaults, in PyTC's listed order (MONAI order is the reverse): name -> (class, kind, kwargs).
# kind "geometric": every key, interpolated by its role; "image": the keys whose role holds intensities.
_DEFAULTS: dict[str, tuple[type, str, dict[str, Any]]] = {
    "rotate": (RandRotateXYd, "geometric", {"rot90": True, "prob": 1.0}),
    "rescale": (RandRescaled, "geometric", {"low": 0.8, "high": 1.25, "prob": 0.5}),
    "flip": (RandFlipTransposed, "geometric", {"do_ztrans": False, "prob": 1.0}),
    "elastic": (RandSectionElasticd, "geometric", {"alpha": 16.0, "sigma": 4.0, "prob": 0.75}),
    "grayscale": (
        RandGrayscaled,
        "image",
        {"contrast": 0.3, "brightness": 0.3, "grayscale_mode": "mix", "prob": 0.75},
    ),
    "missingparts": (RandMissingPartsd, "image", {"iterations": 64, "section_prob": 0.9, "prob": 0.9}),
    "missingsection": (RandMissingSectiond, "geometric", {"num_sections": 2, "prob": 0.5}),
    "misalignment": (RandMisAlignmentd, "geometric", {"displacement": 16, "rotate_ratio": 0.5, "prob": 0.5}),
    "motionblur": (RandMotionBlurd, "image", {"sections": 2, "kernel_size": 11, "prob": 0.5}),
    "cutblur": (
        RandCutBlurd,
        "image",
        {"length_ratio": 0.4, "down_ratio_min": 2.0, "down_ratio_max": 8.0, "prob": 0.5},
    ),
    "cutnoise": (RandCutNoised, "image", {"length_ratio": 0.4, "scale": 0.3, "prob": 0.75}),
}
_NOT_2D = ("missingsection", "misalignment")


def augmentation_name(name: str) -> str:
    """A PyTC augmentation name in any case, underscores ignored (``"MISSING_PARTS"`` -> ``"missingparts"``).

    Raises:
        ValueError: naming ``name`` and the known names.
    """
    key = name.lower().replace("_", "")
    if key not in _DEFAULTS:
        raise ValueError(f"unknown augmentation {name!r}; names are {list(_DEFAULTS)}")
    return key


def default_em_transforms(
    targets: Mapping[str, str] | Sequence[str] | None = None,
    do_2d: bool = False,
    enabled: Mapping[str, bool] | None = None,
    disabled: Sequence[str] = (),
    skip: Mapping[str, Sequence[str]] | None = None,
    copy_paste: Mapping[str, Any] | None = None,
    **overrides: Mapping[str, Any],
) -> list[Any]:
    """PyTC's default augmentation list as monai_em dictionary transforms, in MONAI (execution) order.

    PyTC lists Rotate, Rescale, Flip, Elastic, Grayscale, MissingParts, MissingSection,
    MisAlignment, MotionBlur, CutBlur, CutNoise and runs them in reverse; this returns them in the
    order they run, so :class:`EMAugmentor` plans the same sample size. Geometric transforms get
    every key, each with its role's interpolation (``"bilinear"`` for images, ``"nearest"`` for
    labels and masks); image-only ones get the keys whose role holds intensities. Parameters are
    PyTC's config defaults (MissingParts: gate 0.9 and, as PyTC effectively does, per-section
    probability 0.9).

    Args:
        targets: key -> PyTC target type ``"img"`` | ``"mask"`` or role (see
            :func:`~monai_em.roles.resolve_roles`), or a list of keys named by role (default
            image/img, label/mask, valid_mask/mask).
        do_2d: 2D data: drop MissingSection and MisAlignment.
        enabled: name -> bool, PyTC's ``AUGMENTOR.<NAME>.ENABLED`` (names as in PyTC, any case,
            underscores ignored: ``"missing_parts"`` == ``"MISSINGPARTS"``).
        disabled: names to leave out (same as ``enabled={name: False}``).
        skip: name -> keys that transform leaves alone (PyTC's ``SKIP``).
        copy_paste: PyTC's ``AUGMENTOR.COPYPASTE`` when enabled: :class:`RandCopyPasted` arguments
            (``prob``, ``aug_thres``, ...), appended last with the image keys and the (first) label key.
        **overrides: name -> constructor kwargs replacing the defaults, e.g. ``rotate={"rot90": False}``.

    Example:
        >>> [type(t).__name__ for t in default_em_transforms(disabled=["grayscale"])][-2:]
        ['RandRescaled', 'RandRotateXYd']
    """
    roles = resolve_roles(targets or default_roles())
    on = {name: name not in _NOT_2D or not do_2d for name in _DEFAULTS}
    for name, flag in (enabled or {}).items():
        on[augmentation_name(name)] = bool(flag)
    for name in disabled:
        on[augmentation_name(name)] = False
    skipped = {augmentation_name(n): {str(k) for k in ks} for n, ks in (skip or {}).items()}
    extra = {augmentation_name(n): dict(kw) for n, kw in overrides.items()}
    out = []
    for name in reversed(list(_DEFAULTS)):
        cls, kind, kwargs = _DEFAULTS[name]
        if not on[name]:
            continue
        chosen = [k for k in roles if k not in skipped.get(name, ())]
        if kind == "image":
            chosen = [k for k in intensity_keys(roles) if k in chosen]
        if not chosen:
            continue
        kw = {**kwargs, **extra.get(name, {})}
        if kind == "geometric":
            kw["mode"] = tuple(ROLES[roles[k]].interpolation for k in chosen)
        out.append(cls(keys=tuple(chosen), **kw))
    if copy_paste is not None:
        label = first_key(roles, "label")
        out.append(RandCopyPasted(keys=intensity_keys(roles), label_key=label, **dict(copy_paste)))
    return out
