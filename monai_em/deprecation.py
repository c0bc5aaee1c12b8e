"""Renamed parameters: the old name keeps working for a release, with a DeprecationWarning.

``mode`` means interpolation in MONAI transforms; where monai_em used it for something else the
parameter got a name of its own (``RandGrayscale(grayscale_mode=)``, ``TileDataset(stage=)``). The
old name is accepted, with a ``DeprecationWarning`` attributed to the caller's line (so Python's
default filters show it in a user's script), from version :data:`SINCE` until :data:`REMOVED`, and
refused with MONAI's ``DeprecatedError`` from then on.

An attribute that was renamed with its parameter keeps its old name as a read-only
:func:`renamed_attribute` for the same releases.

Usage: the callable keeps the old name as a keyword-only parameter defaulting to None, and asks
:func:`renamed_value` which value to use (and which name to put in its error messages)::

    @renamed_arg("mode", "stage")
    def __init__(self, ..., stage="train", *, mode=None):
        stage, name = renamed_value("mode", mode, "stage", stage)
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

from monai.utils import DeprecatedError, version_leq

from . import __version__

__all__ = ["REMOVED", "SINCE", "renamed_arg", "renamed_attribute", "renamed_value"]

#: first version in which the old names warn
SINCE = "0.1.0"
#: first version in which the old names are refused (``DeprecatedError``)
REMOVED = "0.3.0"


def _warn_or_refuse(what: str, new: str, stacklevel: int) -> None:
    """DeprecationWarning ``what`` (an old name) -> ``new``, at ``stacklevel`` above this function's
    caller; DeprecatedError from :data:`REMOVED` on."""
    if version_leq(REMOVED, __version__):
        raise DeprecatedError(f"{what} was removed in version {REMOVED}. Use `{new}` instead (same values).")
    warnings.warn(
        f"{what} has been deprecated since version {SINCE} and will be removed in version {REMOVED}. "
        f"Use `{new}` instead (same values).",
        DeprecationWarning,
        stacklevel=stacklevel + 2,
    )


def renamed_arg(old: str, new: str):
    """Decorator: ``old=`` is passed on as ``new=`` too (unless ``new`` was given), with a
    DeprecationWarning naming both that points at the caller's line."""

    def decorate(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                _warn_or_refuse(f"{func.__qualname__}: argument `{old}`", new, stacklevel=1)
                try:
                    positional = signature.bind_partial(*args).arguments
                except TypeError:  # too many positional arguments: the call itself says so
                    positional = {}
                if new not in kwargs and new not in positional:
                    kwargs[new] = kwargs[old]
            return func(*args, **kwargs)

        return wrapper

    return decorate


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
        _warn_or_refuse(f"{type(self).__name__}.{old}", new, stacklevel=1)
        return getattr(self, new)

    return property(get, doc=f"Deprecated name of ``{new}`` (removed in {REMOVED}).")
