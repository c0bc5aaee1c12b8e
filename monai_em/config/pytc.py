"""PyTorch Connectomics (PyTC) YAML configs: read them with PyTC's defaults, check them, build monai_em parts.

People migrating from PyTC keep their YAML files. :func:`load_pytc_config` merges a file (or dict)
over PyTC's defaults for every key monai_em understands (``pytc_defaults.yaml`` beside this module),
warns once about keys it does not know (typos must not pass silently), and raises ``ValueError``
naming the key for a value of the wrong type. String values are read as the Python literal they
spell where they spell one (``AUG_NUM: None``, ``BASE_LR: 1e-3``), as PyTC's yacs does. The ``build_*`` functions turn the result into the
equivalent monai_em / MONAI components.
"""

from __future__ import annotations

import ast
import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["IGNORED_SECTIONS", "PyTCConfig", "load_pytc_config", "pytc_defaults"]

_DEFAULTS_FILE = Path(__file__).with_name("pytc_defaults.yaml")

# PyTC sections/keys about its own model zoo, optimiser, logging: accepted, reported as ignored, not used
# (the MONAI bundle owns the network, optimiser and handlers).
IGNORED_SECTIONS = ("SYSTEM", "MONITOR")
_IGNORED_KEYS = {
    "MODEL": {
        "ARCHITECTURE", "BLOCK_TYPE", "BACKBONE", "DEPLOY_MODE", "FILTERS", "BLOCKS", "KERNEL_SIZES",
        "ATTENTION", "ISOTROPY", "LABEL_EROSION", "LABEL_DILATION", "WEIGHT_OPT", "LOSS_OPTION", "OUTPUT_ACT",
        "LOSS_WEIGHT", "LOSS_KWARGS_KEY", "LOSS_KWARGS_VAL", "PAD_MODE", "NORM_MODE", "ACT_MODE",
        "POOLING_LAYER", "MIXED_PRECESION", "EMBEDDING", "HEAD_DEPTH", "REGU_OPT", "REGU_TARGET", "REGU_WEIGHT",
        "FINETUNE", "EXACT", "SIZE_MATCH", "PRE_MODEL", "PRE_MODEL_LAYER", "PRE_MODEL_ITER", "AUX_OUT",
    },
    "SOLVER": {
        "NAME", "ITERATION_STEP", "ITERATION_SAVE", "ITERATION_RESTART", "BIAS_LR_FACTOR", "WEIGHT_DECAY_BIAS",
        "MOMENTUM", "BETAS", "WEIGHT_DECAY", "WEIGHT_DECAY_NORM", "WARMUP_FACTOR", "WARMUP_METHOD",
        "CLIP_GRADIENTS", "SWA",
    },
}  # fmt: skip


# PyTC v1.0 keys with no monai_em counterpart: reported apart from unknown keys (which may be typos)
UNSUPPORTED_KEYS = frozenset({
    "DATASET.DATA_SCALE", "DATASET.IMAGE_SCALE", "DATASET.LABEL_SCALE", "DATASET.VALID_MASK_SCALE",
    "DATASET.SCALE_FACTOR", "DATASET.VAL_PAD_SIZE", "DATASET.LABEL_VAST", "DATASET.IS_ISOTROPIC",
    "DATASET.DROP_CHANNEL", "DATASET.REDUCE_LABEL", "DATASET.ENSURE_MIN_SIZE", "DATASET.NORMALIZE_RANGE",
    "DATASET.LABEL_BINARY", "DATASET.LABEL_MAG", "DATASET.DATA_CHUNK_IND", "DATASET.CHUNK_IND_SPLIT",
    "DATASET.DATA_COORD_RANGE", "DATASET.MATCH_ACT", "INFERENCE.TENSORSTORE_PATH", "INFERENCE.DATA_SCALE",
    "INFERENCE.OUTPUT_SCALE", "INFERENCE.MODEL_RETURN_FEATS",
})  # fmt: skip


def pytc_defaults() -> dict[str, Any]:
    """A fresh copy of PyTC's defaults for the keys monai_em understands."""
    return yaml.safe_load(_DEFAULTS_FILE.read_text())


def _type_name(value: Any) -> str:
    return "list" if isinstance(value, (list, tuple)) else type(value).__name__


def _check_value(key: str, value: Any, default: Any) -> Any:
    """``value`` for ``key`` checked against the type of PyTC's default (ints pass for floats, 0/1 for bools)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
    elif isinstance(default, int):
        if isinstance(value, bool):  # DO_CHUNK_TITLE: True is fine where PyTC says 0/1
            return int(value)
        if isinstance(value, int):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            if default and not isinstance(default[0], (list, tuple)):
                return [_check_value(f"{key}[{i}]", v, default[0]) for i, v in enumerate(value)]
            return list(value)
    raise ValueError(f"PyTC config key {key}: expected {_type_name(default)} like {default!r}, got {value!r}")


def _decode(value: Any) -> Any:
    """A string value as the Python literal it spells (``'None'``, ``'1e-3'``, ``'[1, 2]'``), as PyTC's yacs decodes."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _merge(defaults: dict, user: Mapping, prefix: str, seen: dict[str, set[str]]) -> dict:
    """``user`` over ``defaults``; records dotted paths in ``seen["set"]``, ``["ignored"]``, ``["unknown"]``."""
    out = copy.deepcopy(defaults)
    for key, value in user.items():
        path = f"{prefix}{key}"
        if (prefix == "" and key in IGNORED_SECTIONS) or key in _IGNORED_KEYS.get(prefix[:-1], ()):
            seen["ignored"].add(path)
            continue
        if key not in defaults:
            seen["unknown"].add(path)
            continue
        if isinstance(defaults[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"PyTC config key {path}: expected a mapping of sub-keys, got {value!r}")
            out[key] = _merge(defaults[key], value, f"{path}.", seen)
        else:
            out[key] = _check_value(path, _decode(value), defaults[key])
            seen["set"].add(path)
    return out


class PyTCConfig(dict):
    """A PyTC config merged over the defaults: a nested dict with dotted access via :meth:`get_path`.

    Example:
        >>> cfg = load_pytc_config({"DATASET": {"REJECT_SAMPLING": {"SIZE_THRES": 1000}}})
        >>> cfg.get_path("DATASET.REJECT_SAMPLING.SIZE_THRES"), cfg.get_path("DATASET.REJECT_SAMPLING.P")
        (1000, 0.95)
    """

    source: str | None = None
    #: dotted keys the file(s) set, keys accepted but ignored (PyTC's model zoo, SYSTEM, ...), unknown keys
    user_keys: frozenset[str] = frozenset()
    ignored_keys: frozenset[str] = frozenset()
    unknown_keys: frozenset[str] = frozenset()

    def get_path(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = node[part]
        return node


def load_pytc_config(config: str | os.PathLike | Mapping, *base: str | os.PathLike | Mapping) -> PyTCConfig:
    """Read a PyTC YAML (path or dict) merged over PyTC's defaults, with any ``base`` configs first.

    PyTC projects often split a config into a base file and an experiment file; pass them in the
    order PyTC merges them: ``load_pytc_config("exp.yaml", "base.yaml")`` applies base, then exp.

    Raises:
        FileNotFoundError: a config file does not exist.
        ValueError: a value has the wrong type (the message names the key), or the YAML is not a mapping.

    Warns:
        UserWarning: listing every key monai_em does not know (a typo, or a PyTC feature not ported).
    """
    merged: dict = pytc_defaults()
    seen: dict[str, set[str]] = {"set": set(), "ignored": set(), "unknown": set()}
    sources = []
    for item in (*base, config):
        if isinstance(item, Mapping):
            data, name = item, "<dict>"
        else:
            path = Path(item)
            if not path.is_file():
                raise FileNotFoundError(f"PyTC config file not found: {path}")
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"PyTC config {path} is not valid YAML: {e}") from e
            name = os.fspath(path)
        if not isinstance(data, Mapping):
            raise ValueError(f"PyTC config {name} must be a mapping of sections, got {type(data).__name__}")
        merged = _merge(merged, data, "", seen)
        sources.append(name)
    unsupported = seen["unknown"] & UNSUPPORTED_KEYS
    unknown = seen["unknown"] - UNSUPPORTED_KEYS
    if unknown:
        warnings.warn(
            f"PyTC config {', '.join(sources)}: unknown keys ignored (typo, or not supported by monai_em): "
            f"{', '.join(sorted(unknown))}",
            UserWarning,
            stacklevel=2,
        )
    if unsupported:
        warnings.warn(
            f"PyTC config {', '.join(sources)}: PyTC v1.0 keys that monai_em does not support, ignored: "
            f"{', '.join(sorted(unsupported))}",
            UserWarning,
            stacklevel=2,
        )
    targets = merged["AUGMENTOR"]
    if len(targets["ADDITIONAL_TARGETS_NAME"]) != len(targets["ADDITIONAL_TARGETS_TYPE"]):
        raise ValueError(
            "PyTC config keys AUGMENTOR.ADDITIONAL_TARGETS_NAME and ADDITIONAL_TARGETS_TYPE must have the same "
            f"length, got {targets['ADDITIONAL_TARGETS_NAME']} and {targets['ADDITIONAL_TARGETS_TYPE']}"
        )
    cfg = PyTCConfig(merged)
    cfg.source = ", ".join(sources)
    cfg.user_keys, cfg.ignored_keys = frozenset(seen["set"]), frozenset(seen["ignored"])
    cfg.unknown_keys = frozenset(seen["unknown"])
    return cfg
