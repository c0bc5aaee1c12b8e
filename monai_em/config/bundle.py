"""PyTC keys -> ids of the ``em_segmentation`` bundle: one map, the values it gives, the start-up table.

``bundles/em_segmentation/configs/{train,inference}.yaml`` read a PyTC YAML given as
``--pytc_config`` through :func:`pytc_bundle_value` (``"$monai_em.config.pytc_bundle_value(@pytc,
'batch_size', 2)"``): the id takes the value of its PyTC key(s), PyTC's default where the YAML omits
them, and the bundle's own default without ``--pytc_config``. :func:`load_pytc_bundle_config` prints
one table at start-up: each id, its PyTC key, the value and whether it came from the YAML or PyTC's
defaults, then every key of the YAML that the bundle ignores.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..roles import ROLES
from .pytc import PyTCConfig, load_pytc_config
from .pytc_build import (
    inference_activation,
    inference_blending,
    inference_overlap,
    inference_roi,
    positive,
    volume_name_keys,
    volume_paths,
)

__all__ = [
    "BUNDLE_IDS",
    "bundle_table",
    "bundle_target",
    "existing_checkpoint",
    "load_pytc_bundle_config",
    "network_input_size",
    "pytc_bundle_value",
]

logger = logging.getLogger(__name__)

# PyTC LR_SCHEDULER_NAME -> (bundle lr_scheduler, warm-up used); ReduceLROnPlateau / OneCycle have no bundle twin
_SCHEDULERS = {
    "MultiStepLR": ("multistep", False),
    "WarmupMultiStepLR": ("multistep", True),
    "WarmupCosineLR": ("cosine", True),
}
# PyTC TARGET_OPT code (first character) -> bundle target; the others have no bundle target yet


def _one_volume(cfg: PyTCConfig, key: str, section: str = "DATASET", prefix: str = "") -> str | None:
    """The single path of a ``*_NAME`` key; ValueError naming the key when it lists several volumes."""
    name = f"{section}.{volume_name_keys(prefix)[key]}"
    if not cfg.get_path(name):
        return None
    found = volume_paths(cfg, section, prefix)[key]
    if len(found) != 1:
        raise ValueError(
            f"PyTC config key {name} lists {len(found)} volumes ({cfg.get_path(name)!r}); the bundle trains and "
            "predicts on one volume per run: merge them into one tile JSON or volume file, run the bundle once "
            "per volume, or train in Python with monai_em.config.build_train_dataset (several volumes)"
        )
    return found[0]


def _inference(cfg: PyTCConfig, key: str, fallback: str) -> Any:
    """``INFERENCE.<key>``, or ``fallback`` where it is None (PyTC's update_inference_cfg)."""
    value = cfg["INFERENCE"][key]
    return cfg.get_path(fallback) if value is None else value


def bundle_target(cfg: PyTCConfig) -> tuple[str, int] | None:
    """``MODEL.TARGET_OPT`` -> (bundle ``target``, ``boundary_width``), or None when the YAML leaves it out.

    ``4-<h>-<bg>`` (instance contour, PyTC's ``tsz_h`` = h voxels on each side of an interface) ->
    ``("boundary", 2 * h)`` (``4-<h>-0``, no contours against background: the option itself); ``2-...`` (affinity) -> ``("affinity", 2)``; every other option with a
    monai_em meaning (``0`` binary, ``5`` distance, ``9-<K>`` semantic: see
    :mod:`monai_em.transforms.target_options`) is the bundle ``target`` itself, which takes PyTC option
    strings. Several options (PyTC multi-task): the first with a meaning; the rest are reported as ignored.
    """
    from ..transforms.target_options import parse_target, target_from_pytc_option

    if "MODEL.TARGET_OPT" not in cfg.user_keys:
        return None
    options = [str(o) for o in cfg["MODEL"]["TARGET_OPT"]]
    errors = []
    for opt in options:
        try:
            name, fields = parse_target(opt)
        except ValueError as e:
            errors.append(str(e))
            continue
        skipped = [o for o in options if o != opt]
        if skipped:
            logger.warning(
                "PyTC config key MODEL.TARGET_OPT: training target %r only; ignored %s", opt, skipped
            )
        if name == "boundary":
            try:
                contour = target_from_pytc_option(opt).target  # validates the fields, e.g. refuses '4-x'
            except ValueError as e:
                raise ValueError(f"PyTC config key MODEL.TARGET_OPT: {e}") from e
            if contour.bg_mode != "include":  # '4-<h>-0': the option itself keeps the background rule
                return opt, contour.width
            return "boundary", contour.width
        if name == "affinity":
            return "affinity", 2
        return opt, 2
    raise ValueError(
        f"PyTC config key MODEL.TARGET_OPT: none of {options} has a monai_em target: {'; '.join(errors)}"
    )


def _scheduler(cfg: PyTCConfig) -> tuple[str, bool]:
    name = cfg["SOLVER"]["LR_SCHEDULER_NAME"]
    if name not in _SCHEDULERS:
        logger.warning(
            "PyTC config key SOLVER.LR_SCHEDULER_NAME: %r has no bundle scheduler (known: %s); "
            "the learning rate stays constant",
            name,
            ", ".join(_SCHEDULERS),
        )
        return "constant", False
    return _SCHEDULERS[name]


def _epoch_length(cfg: PyTCConfig) -> int:
    """One bundle epoch = PyTC's validation interval (at most the whole run), so validation keeps its cadence."""
    return min(positive(cfg, "SOLVER.ITERATION_VAL"), positive(cfg, "SOLVER.ITERATION_TOTAL"))


def _chunked(cfg: PyTCConfig) -> bool:
    return bool(_inference(cfg, "DO_CHUNK_TITLE", "DATASET.DO_CHUNK_TITLE"))


_T = tuple[tuple[str, ...], Callable[[PyTCConfig], Any]]
# the data keys of the three PyTC volume files (image_json, label_json, valid_json)
_IMAGE, _LABEL, _MASK = (ROLES[role].key for role in ("image", "label", "mask"))

#: bundle -> id -> (the PyTC keys it reads, their value for the id). The one map between both worlds.
BUNDLE_IDS: dict[str, dict[str, _T]] = {
    "train": {
        "image_json": (("DATASET.IMAGE_NAME", "DATASET.INPUT_PATH"), lambda c: _one_volume(c, _IMAGE)),
        "label_json": (("DATASET.LABEL_NAME",), lambda c: _one_volume(c, _LABEL)),
        "valid_json": (("DATASET.VALID_MASK_NAME",), lambda c: _one_volume(c, _MASK)),
        "input_size": (("MODEL.INPUT_SIZE",), lambda c: c["MODEL"]["INPUT_SIZE"]),
        "pad_size": (("DATASET.PAD_SIZE",), lambda c: c["DATASET"]["PAD_SIZE"]),
        "chunk_num": (("DATASET.DATA_CHUNK_NUM",), lambda c: c["DATASET"]["DATA_CHUNK_NUM"]),
        "chunk_iter": (("DATASET.DATA_CHUNK_ITER",), lambda c: c["DATASET"]["DATA_CHUNK_ITER"]),
        "reject_size_thres": (
            ("DATASET.REJECT_SAMPLING.SIZE_THRES",),
            lambda c: c["DATASET"]["REJECT_SAMPLING"]["SIZE_THRES"],
        ),
        "reject_p": (("DATASET.REJECT_SAMPLING.P",), lambda c: c["DATASET"]["REJECT_SAMPLING"]["P"]),
        "reject_trials": (
            ("DATASET.REJECT_SAMPLING.NUM_TRIAL",),
            lambda c: c["DATASET"]["REJECT_SAMPLING"]["NUM_TRIAL"],
        ),
        "valid_ratio": (("DATASET.VALID_RATIO",), lambda c: c["DATASET"]["VALID_RATIO"]),
        "do_2d": (("DATASET.DO_2D",), lambda c: c["DATASET"]["DO_2D"]),
        "augment": (("AUGMENTOR.ENABLED",), lambda c: c["AUGMENTOR"]["ENABLED"]),
        "target": (("MODEL.TARGET_OPT",), lambda c: (bundle_target(c) or (None,))[0]),
        "boundary_width": (("MODEL.TARGET_OPT",), lambda c: (bundle_target(c) or (None, None))[1]),
        "batch_size": (("SOLVER.SAMPLES_PER_BATCH",), lambda c: positive(c, "SOLVER.SAMPLES_PER_BATCH")),
        "learning_rate": (("SOLVER.BASE_LR",), lambda c: positive(c, "SOLVER.BASE_LR")),
        "lr_scheduler": (("SOLVER.LR_SCHEDULER_NAME",), lambda c: _scheduler(c)[0]),
        "lr_steps": (("SOLVER.STEPS",), lambda c: list(c["SOLVER"]["STEPS"])),
        "lr_gamma": (("SOLVER.GAMMA",), lambda c: c["SOLVER"]["GAMMA"]),
        "warmup_iters": (
            ("SOLVER.WARMUP_ITERS", "SOLVER.LR_SCHEDULER_NAME"),
            lambda c: c["SOLVER"]["WARMUP_ITERS"] if _scheduler(c)[1] else 0,
        ),
        "epoch_length": (("SOLVER.ITERATION_VAL", "SOLVER.ITERATION_TOTAL"), _epoch_length),
        "epochs": (
            ("SOLVER.ITERATION_TOTAL", "SOLVER.ITERATION_VAL"),
            lambda c: math.ceil(c["SOLVER"]["ITERATION_TOTAL"] / _epoch_length(c)),
        ),
    },
    "inference": {
        "image_json": (
            ("INFERENCE.IMAGE_NAME", "INFERENCE.INPUT_PATH", "DATASET.INPUT_PATH"),
            lambda c: _one_volume(c, _IMAGE, "INFERENCE"),
        ),
        "input_size": (
            ("INFERENCE.INPUT_SIZE", "MODEL.INPUT_SIZE"),
            inference_roi,
        ),
        "infer_pad_size": (
            ("INFERENCE.PAD_SIZE", "DATASET.PAD_SIZE"),
            lambda c: _inference(c, "PAD_SIZE", "DATASET.PAD_SIZE"),
        ),
        "infer_chunk_num": (
            ("DATASET.DATA_CHUNK_NUM", "INFERENCE.DO_CHUNK_TITLE", "DATASET.DO_CHUNK_TITLE"),
            lambda c: c["DATASET"]["DATA_CHUNK_NUM"] if _chunked(c) else [1, 1, 1],
        ),
        "overlap": (("INFERENCE.STRIDE", "INFERENCE.INPUT_SIZE", "MODEL.INPUT_SIZE"), inference_overlap),
        "blending": (("INFERENCE.BLENDING",), inference_blending),
        "activation": (("INFERENCE.OUTPUT_ACT",), inference_activation),
        "tta": (("INFERENCE.AUG_NUM",), lambda c: c["INFERENCE"]["AUG_NUM"] or False),
        "tta_merge": (("INFERENCE.AUG_MODE",), lambda c: c["INFERENCE"]["AUG_MODE"]),
        "sw_batch_size": (
            ("INFERENCE.SAMPLES_PER_BATCH",),
            lambda c: positive(c, "INFERENCE.SAMPLES_PER_BATCH"),
        ),
        # PyTC's empty OUTPUT_PATH (the working directory) keeps the bundle's eval/prediction instead
        "output_dir": (("INFERENCE.OUTPUT_PATH",), lambda c: c["INFERENCE"]["OUTPUT_PATH"] or None),
        "output_name": (("INFERENCE.OUTPUT_NAME",), lambda c: c["INFERENCE"]["OUTPUT_NAME"]),
        "do_2d": (("DATASET.DO_2D",), lambda c: c["DATASET"]["DO_2D"]),
        "target": (("MODEL.TARGET_OPT",), lambda c: (bundle_target(c) or (None,))[0]),
    },
}
# keys the bundle reads through builders rather than ids (the augmentation list)
_READ_BY_BUILDERS = {"train": ("AUGMENTOR.",), "inference": ()}


def _bundle(bundle: str) -> dict[str, _T]:
    if bundle not in BUNDLE_IDS:
        raise ValueError(f"bundle must be one of {sorted(BUNDLE_IDS)}, got {bundle!r}")
    return BUNDLE_IDS[bundle]


def pytc_bundle_value(config, bundle_id: str, default: Any = None, bundle: str = "train") -> Any:
    """The value of ``bundle_id`` of ``bundle`` from a PyTC config, or ``default`` when ``config`` is None.

    ``default`` also stands where the map gives None (a path key the YAML leaves out, a TARGET_OPT
    the YAML does not set). Raises ValueError naming the PyTC key for a value the bundle cannot take.

    Example:
        >>> pytc_bundle_value({"SOLVER": {"LR_SCHEDULER_NAME": "WarmupCosineLR"}}, "lr_scheduler", "constant")
        'cosine'
    """
    if config is None:
        return default
    ids = _bundle(bundle)
    if bundle_id not in ids:
        raise KeyError(f"{bundle}.yaml has no PyTC-mapped id {bundle_id!r}; mapped ids: {', '.join(ids)}")
    cfg = config if isinstance(config, PyTCConfig) else load_pytc_config(config)
    value = ids[bundle_id][1](cfg)
    return default if value is None else value


def bundle_table(cfg: PyTCConfig, bundle: str = "train") -> str:
    """The start-up table: every mapped id with its PyTC keys, value and source, then the ignored keys."""
    rows = [("bundle id", "PyTC key", "value", "from")]
    read: set[str] = set()
    for bundle_id, (keys, fn) in _bundle(bundle).items():
        read.update(keys)
        value = fn(cfg)
        given = [k for k in keys if k in cfg.user_keys]
        source = "YAML" if keys[0] in given else "PyTC default"
        if given and keys[0] not in given:
            source += f" (with YAML {', '.join(given)})"
        shown = repr(value)
        if value is None:
            shown, source = "-", "bundle default"
        rows.append((bundle_id, keys[0], shown, source))
    prefixes = _READ_BY_BUILDERS[bundle]
    unused = sorted(k for k in cfg.user_keys if k not in read and not any(k.startswith(p) for p in prefixes))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"PyTC config {cfg.source} -> {bundle}.yaml (ids given on the command line win):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for label, keys in (
        ("ignored (no meaning in this bundle)", unused),
        ("ignored (PyTC's own model/solver/system)", sorted(cfg.ignored_keys)),
        ("ignored (unknown)", sorted(cfg.unknown_keys)),
    ):
        if keys:
            lines.append(f"  {label}: {', '.join(keys)}")
    return "\n".join(lines)


def load_pytc_bundle_config(config, bundle: str = "train") -> PyTCConfig:
    """:func:`load_pytc_config`, then print :func:`bundle_table` once (the bundle's ``pytc`` id)."""
    cfg = load_pytc_config(config)
    print(bundle_table(cfg, bundle), flush=True)
    return cfg


def _axis_multiples(strides: Sequence, ndim: int) -> list[int]:
    """Product of the strides per spatial axis (``strides``: one int or one per-axis list per level)."""
    out = [1] * ndim
    for level in strides:
        per_axis = [level] * ndim if isinstance(level, int) else list(level)
        if len(per_axis) != ndim:
            raise ValueError(f"net_strides levels must have {ndim} entries, got {list(strides)}")
        out = [a * int(s) for a, s in zip(out, per_axis, strict=True)]
    return out


def network_input_size(input_size: Sequence[int], strides: Sequence, name: str = "input_size") -> list[int]:
    """``input_size`` fitted to a U-Net's down-sampling: each axis a multiple of its stride product.

    A DynUNet with ``strides`` halves an axis once per stride 2 and concatenates skip connections,
    so every spatial axis must divide by the product of its strides. PyTC sizes such as
    ``[17, 257, 257]`` do not (PyTC's own networks pad differently). An axis that does not fit is
    rounded down to the nearest multiple (up to one multiple when smaller), with a logged warning
    naming ``name``; a fitting size comes back unchanged. With 2D strides (``do_2d``) only the last
    two axes of a ``(1, H, W)`` size are fitted.

    Example:
        >>> network_input_size([17, 257, 257], [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2]])
        [16, 256, 256]
    """
    size = [int(s) for s in input_size]
    if not strides:
        return size
    first = strides[0]
    ndim = 1 if isinstance(first, int) else len(first)
    if isinstance(first, int):
        ndim = len(size)
    if ndim > len(size):
        raise ValueError(f"{name} {size} has fewer axes than the network's strides ({ndim})")
    multiples = [1] * (len(size) - ndim) + _axis_multiples(strides, ndim)
    fitted = [max(m, s // m * m) for s, m in zip(size, multiples, strict=True)]
    if fitted != size:
        logger.warning(
            "%s %s does not fit the network (each axis must divide by %s, the product of net_strides); "
            "training and inference use %s instead",
            name,
            size,
            multiples,
            fitted,
        )
    return fitted


def existing_checkpoint(path: str | os.PathLike) -> str:
    """``path`` if the file exists; else exit with one line saying so (no bundle traceback to read through).

    For the bundle's ``initialize`` step: raises ``SystemExit`` with the message, which Python prints
    as the only line (a ConfigExpression error would bury it under the parser's traceback).
    """
    if not os.path.isfile(path):
        raise SystemExit(
            f"error: checkpoint {os.fspath(path)} not found: train first (train.yaml writes models/model.pt at "
            "its best validation, or at the end when no validation ran) or pass --ckpt_path <file>"
        )
    return os.fspath(path)
