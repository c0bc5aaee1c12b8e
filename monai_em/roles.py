"""Key roles: what being an image, a label or a (valid) mask means, written once for every layer.

A data key plays one role. The role decides how geometric transforms interpolate it, its PyTC
target type, what a missing tile is filled with, and whether intensity (image-only) transforms,
grey conversion and intensity scaling apply. Readers, the augmentation list, the training
pipeline, the PyTC builders and the bundle all ask this table; key NAMES stay the caller's choice.

Example:
    >>> resolve_roles(["image", "label", "valid_mask"])
    {'image': 'image', 'label': 'label', 'valid_mask': 'mask'}
    >>> ROLES["label"].interpolation, ROLES["label"].target_type
    ('nearest', 'mask')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ROLES",
    "TARGET_TYPES",
    "Role",
    "default_roles",
    "first_key",
    "get_role",
    "intensity_keys",
    "keys_with_role",
    "resolve_roles",
    "role_of_key",
]


@dataclass(frozen=True)
class Role:
    """One key role.

    Attributes:
        name: ``"image"``, ``"label"`` or ``"mask"``.
        interpolation: MONAI ``mode`` for geometric transforms (``"bilinear"``: resampled; ``"nearest"``:
            moved, values never invented).
        target_type: PyTC's ``ADDITIONAL_TARGETS_TYPE`` (``"img"`` or ``"mask"``).
        fill_value: value of a missing tile; None: the reader's image fill value (PyTC's 128).
        intensities: holds grey values: image-only transforms (grayscale, missing parts, motion blur,
            CutBlur, CutNoise) and intensity scaling apply, colour tiles are read as grey.
        key: the key this role has by default (``image``, ``label``, ``valid_mask``).
    """

    name: str
    interpolation: str
    target_type: str
    fill_value: float | None
    intensities: bool
    key: str

    def tile_fill(self, image_fill: float) -> float:
        """What a missing tile of this role holds, given the reader's image fill value."""
        return image_fill if self.fill_value is None else self.fill_value


#: role name -> Role. Labels and masks are moved (nearest) and filled with 0 (unlabelled / invalid).
ROLES: dict[str, Role] = {
    "image": Role("image", "bilinear", "img", None, True, "image"),
    "label": Role("label", "nearest", "mask", 0, False, "label"),
    "mask": Role("mask", "nearest", "mask", 0, False, "valid_mask"),
}
#: PyTC's target types
TARGET_TYPES = ("img", "mask")
_IMAGE_NAMES = ("image", "img", "raw", "em", "input")


def get_role(name: str) -> Role:
    """The :class:`Role` called ``name``; ValueError naming the known roles otherwise."""
    if name not in ROLES:
        raise ValueError(f"role must be one of {tuple(ROLES)}, got {name!r}")
    return ROLES[name]


def role_of_key(key: str, target_type: str | None = None) -> str:
    """The role of a data key, from its name (and its PyTC target type when given).

    Names with ``mask``/``valid`` are masks, with ``label``/``seg`` labels, ``image``/``img``/``raw``/
    ``em``/``input`` images. A ``"img"`` target is an image; a ``"mask"`` target is a label when its
    name says so, else a mask (so the role name ``"mask"`` and PyTC's type ``"mask"`` agree). A name
    that says nothing, without a target type, is an image, with a warning.
    """
    low = str(key).lower()
    by_name = (
        "mask"
        if "mask" in low or "valid" in low
        else "label"
        if "label" in low or "seg" in low
        else "image"
        if low in _IMAGE_NAMES
        else None
    )
    if target_type is not None:
        if target_type not in TARGET_TYPES:
            raise ValueError(f"target types must be 'img' or 'mask', got {{{key!r}: {target_type!r}}}")
        if target_type == "img":
            return "image"
        return "label" if by_name == "label" else "mask"
    if by_name is None:
        warnings.warn(
            f"key {key!r} is read as an image (linear tile zoom, missing tiles filled with the image "
            f"fill value); if it holds labels or a mask, pass roles={{{key!r}: 'label'}} (or 'mask')",
            UserWarning,
            stacklevel=3,
        )
        return "image"
    return by_name


def resolve_roles(keys: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``{key: role name}`` for a list of keys (roles from their names, :func:`role_of_key`) or a mapping
    from key to a role name (``"image"``, ``"label"``, ``"mask"``) or a PyTC target type (``"img"``, or
    ``"mask"``: a label when the key's name says so, else a mask).

    Raises:
        ValueError: naming the keys whose value is neither a role nor a target type.
    """
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, Mapping):
        return {k: role_of_key(k) for k in keys}
    bad = {k: v for k, v in keys.items() if v not in ROLES and v not in TARGET_TYPES}
    if bad:
        raise ValueError(f"target types must be 'img' or 'mask' (or a role: {', '.join(ROLES)}), got {bad}")
    return {k: role_of_key(k, v) if v in TARGET_TYPES else v for k, v in keys.items()}


def default_roles() -> dict[str, str]:
    """``{key: role name}`` of every role's default key (``image``, ``label``, ``valid_mask``), as
    PyTC augments them when no keys are named."""
    return {role.key: name for name, role in ROLES.items()}


def keys_with_role(roles: Mapping[str, str], name: str) -> list[str]:
    """The keys of ``roles`` (``{key: role name}``) that play role ``name``, in order."""
    return [k for k, r in roles.items() if r == name]


def first_key(roles: Mapping[str, str], name: str) -> str:
    """The first key of ``roles`` that plays role ``name``; the role's default key when none does."""
    return next(iter(keys_with_role(roles, name)), ROLES[name].key)


def intensity_keys(roles: Mapping[str, str]) -> list[str]:
    """The keys of ``roles`` whose role holds grey values: image-only transforms and intensity
    scaling take these, in order."""
    return [k for k, r in roles.items() if ROLES[r].intensities]
