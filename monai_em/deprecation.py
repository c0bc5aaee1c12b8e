"""Renamed parameters: the old name keeps working for a release, with a DeprecationWarning.

``mode`` means interpolation in MONAI transforms; where monai_em used it for something else the
parameter got a name of its own (``RandGrayscale(grayscale_mode=)``, ``TileDataset(stage=)``). The
old name is accepted, with a ``DeprecationWarning``, from version :data:`SINCE` until :data:`REMOVED`
(MONAI's :func:`monai.utils.deprecated_arg` counts the versions and refuses it from then on).

An attribute that was renamed with its parameter keeps its old name as a read-only
:func:`renamed_attribute` for the same releases.

Usage: the callable keeps the old name as a keyword-only parameter defaulting to None, and asks
:func:`renamed_value` which value to use (and which name to put in its error messages)::

    @renamed_arg("mode", "stage")
    def __init__(self, ..., stage="train", *, mode=None):
        stage, name = renamed_value("mode", mode, "stage", stage)
"""

from __future__ import annotations

import warnings
from typing import Any

from monai.utils import deprecated_arg

from . import __version__

__all__ = ["REMOVED", "SINCE", "renamed_arg", "renamed_attribute", "renamed_value"]

#: first version in which the old names warn
SINCE = "0.1.0"
#: first version in which the old names are refused (``DeprecatedError``)
REMOVED = "0.3.0"


def renamed_arg(old: str, new: str):
    """Decorator: ``old=`` is passed on as ``new=``, with a DeprecationWarning naming both."""
    return deprecated_arg(
        old,
        since=SINCE,
        removed=REMOVED,
        msg_suffix=f"Use `{new}` instead (same values).",
        version_val=__version__,
        new_name=new,
        warning_category=DeprecationWarning,
    )


def renamed_value(old: str, old_value: Any, new: str, new_value: Any) -> tuple[Any, str]:
    """``(value, name)``: the value to use and the name the caller gave it (``old`` when given).

    Raises:
        ValueError: both names were given, with different values.
    """
    if old_value is None:
        return new_value, new
    if old_value != new_value:
        raise ValueError(f"got both `{old}`={old_value!r} and `{new}`={new_value!r}; pass `{new}` only")
    return new_value, old


def renamed_attribute(old: str, new: str) -> property:
    """A read-only property ``old`` that returns attribute ``new``, with a DeprecationWarning."""

    def get(self):
        warnings.warn(
            f"{type(self).__name__}.{old} has been deprecated since version {SINCE} and will be removed in "
            f"version {REMOVED}. Use `{new}` instead (same values).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, new)

    return property(get, doc=f"Deprecated name of ``{new}`` (removed in {REMOVED}).")
