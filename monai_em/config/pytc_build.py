"""PyTC config -> monai_em components: augmentor, rejection crop, training dataset, inference.

Each ``build_*`` takes a :class:`~monai_em.config.pytc.PyTCConfig` (or anything
:func:`~monai_em.config.pytc.load_pytc_config` accepts) and returns the object a hand-written
monai_em pipeline would hold. ``docs/migrating-from-pytc.md`` shows both side by side.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monai.transforms import Compose, SqueezeDimd

from ..data.multi_volume import MultiVolumeDataset
from ..data.sources import open_volume, role_of_key
from ..data.tile_dataset import TileDataset
from ..data.tiles import check_compatible
from ..transforms.compose import EMAugmentor, default_em_transforms
from ..transforms.mixing import RandCopyPasted
from ..transforms.sampling import RandRejectionCropd
from .pytc import PyTCConfig, load_pytc_config

__all__ = [
    "augmentor_kwargs",
    "build_augmentations",
    "build_augmentor",
    "build_inference",
    "build_rejection_crop",
    "build_train_dataset",
    "build_train_transform",
    "pytc_targets",
    "pytc_value",
    "volume_paths",
]

# PyTC AUGMENTOR section -> (monai_em builder name, {PyTC key: constructor argument})
_AUGMENTATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "ROTATE": ("rotate", {"P": "prob", "ROT90": "rot90"}),
    "RESCALE": ("rescale", {"P": "prob"}),
    "FLIP": ("flip", {"P": "prob", "DO_ZTRANS": "do_ztrans"}),
    "ELASTIC": ("elastic", {"P": "prob", "ALPHA": "alpha", "SIGMA": "sigma"}),
    "GRAYSCALE": ("grayscale", {"P": "prob"}),
    "MISSINGPARTS": ("missingparts", {"P": "prob", "ITER": "iterations"}),
    "MISSINGSECTION": ("missingsection", {"P": "prob", "NUM_SECTION": "num_sections"}),
    "MISALIGNMENT": (
        "misalignment",
        {"P": "prob", "DISPLACEMENT": "displacement", "ROTATE_RATIO": "rotate_ratio"},
    ),
    "MOTIONBLUR": ("motionblur", {"P": "prob", "SECTIONS": "sections", "KERNEL_SIZE": "kernel_size"}),
    "CUTBLUR": (
        "cutblur",
        {
            "P": "prob",
            "LENGTH_RATIO": "length_ratio",
            "DOWN_RATIO_MIN": "down_ratio_min",
            "DOWN_RATIO_MAX": "down_ratio_max",
            "DOWNSAMPLE_Z": "downsample_z",
        },
    ),
    "CUTNOISE": ("cutnoise", {"P": "prob", "LENGTH_RATIO": "length_ratio", "SCALE": "scale"}),
}


def _cfg(config) -> PyTCConfig:
    return config if isinstance(config, PyTCConfig) else load_pytc_config(config)


def pytc_targets(config) -> dict[str, str]:
    """``{"image": "img", **ADDITIONAL_TARGETS}``: the keys augmented and their PyTC target types."""
    cfg = _cfg(config)
    aug = cfg["AUGMENTOR"]
    targets = {
        "image": "img",
        **dict(zip(aug["ADDITIONAL_TARGETS_NAME"], aug["ADDITIONAL_TARGETS_TYPE"], strict=True)),
    }
    if cfg["DATASET"]["VALID_MASK_NAME"]:  # the mask must move with the label (PyTC asserts this instead)
        targets.setdefault("valid_mask", "mask")
    return targets


def augmentor_kwargs(config) -> dict[str, Any]:
    """Arguments of :meth:`EMAugmentor.from_targets` equivalent to the config's AUGMENTOR section."""
    cfg = _cfg(config)
    aug = cfg["AUGMENTOR"]
    disabled, skip, overrides = [], {}, {}
    for section, (name, params) in _AUGMENTATIONS.items():
        if not aug[section]["ENABLED"]:
            disabled.append(name)
        if aug[section]["SKIP"]:
            skip[name] = list(aug[section]["SKIP"])
        overrides[name] = {arg: aug[section][key] for key, arg in params.items()}
    overrides["flip"]["do_ztrans"] = bool(overrides["flip"]["do_ztrans"])
    # PyTC uses MISSINGPARTS.P both as the gate and as the per-section probability
    overrides["missingparts"]["section_prob"] = overrides["missingparts"]["prob"]
    return {
        "input_size": tuple(cfg["MODEL"]["INPUT_SIZE"]),
        "targets": pytc_targets(cfg),
        "smooth_labels": bool(aug["SMOOTH"]),
        "do_2d": bool(cfg["DATASET"]["DO_2D"]),
        "disabled": disabled,
        "skip": skip,
        **overrides,
    }


def build_augmentor(config) -> EMAugmentor:
    """The EMAugmentor of a PyTC config (``MODEL.INPUT_SIZE``, ``AUGMENTOR.*``, ``DATASET.DO_2D``).

    ``AUGMENTOR.COPYPASTE.ENABLED`` appends :class:`RandCopyPasted` (image keys, ``label``) as the
    last transform before the centre crop.
    """
    cfg = _cfg(config)
    kwargs = augmentor_kwargs(cfg)
    if not cfg["AUGMENTOR"]["COPYPASTE"]["ENABLED"]:
        return EMAugmentor.from_targets(**kwargs)
    transforms = build_augmentations(cfg, kwargs["targets"])
    return EMAugmentor(
        transforms, kwargs["input_size"], smooth_labels=kwargs["smooth_labels"], label_keys=["label"]
    )


def build_augmentations(
    config, targets: Mapping[str, str] | None = None, disabled: Sequence[str] = (), do_2d: bool | None = None
) -> list:
    """The augmentation list of a PyTC config (without the final crop), for ``targets`` (default: the config's).

    This is what a bundle's ``EMAugmentor(transforms=...)`` takes when the keys come from the bundle;
    ``disabled`` adds names to switch off and ``do_2d`` (when not None) replaces ``DATASET.DO_2D``, so
    the bundle's own ids win over the PyTC file.
    """
    cfg = _cfg(config)
    kwargs = augmentor_kwargs(cfg)
    targets = dict(targets or kwargs["targets"])
    for key in ("input_size", "targets", "smooth_labels"):
        kwargs.pop(key)
    kwargs["disabled"] = [*kwargs["disabled"], *disabled]
    if do_2d is not None:
        kwargs["do_2d"] = bool(do_2d)
    transforms = default_em_transforms(targets, **kwargs)
    copy_paste = cfg["AUGMENTOR"]["COPYPASTE"]
    if copy_paste["ENABLED"]:
        images = [k for k, v in targets.items() if v == "img"]
        transforms.append(
            RandCopyPasted(
                keys=images, label_key="label", aug_thres=copy_paste["AUG_THRES"], prob=copy_paste["P"]
            )
        )
    return transforms


def pytc_value(config, key: str, default: Any = None) -> Any:
    """``config[key]`` for a dotted key, or ``default`` when ``config`` is None (bundle ids use this).

    Path keys ``DATASET.IMAGE_NAME`` / ``LABEL_NAME`` / ``VALID_MASK_NAME`` come back joined to
    ``INPUT_PATH`` (unless ``IS_ABSOLUTE_PATH``), or ``default`` when unset.
    """
    if config is None:
        return default
    cfg = _cfg(config)
    paths = {
        "DATASET.IMAGE_NAME": "image",
        "DATASET.LABEL_NAME": "label",
        "DATASET.VALID_MASK_NAME": "valid_mask",
    }
    if key in paths:
        if not cfg.get_path(key):
            return default
        found = volume_paths(cfg)[paths[key]]
        return found[0] if len(found) == 1 else found
    return cfg.get_path(key)


def build_rejection_crop(config, augmentor: EMAugmentor | None = None) -> RandRejectionCropd:
    """The rejection crop of a PyTC config: sample size from the augmentor, test region ``MODEL.INPUT_SIZE``."""
    cfg = _cfg(config)
    augmentor = augmentor or build_augmentor(cfg)
    reject = cfg["DATASET"]["REJECT_SAMPLING"]
    keys = list(pytc_targets(cfg))
    valid_key = "valid_mask" if cfg["DATASET"]["VALID_MASK_NAME"] else None
    if valid_key and valid_key not in keys:
        keys.append(valid_key)
    return RandRejectionCropd(
        keys=keys,
        label_key="label",
        valid_key=valid_key,
        spatial_size=augmentor.sample_size,
        test_size=tuple(cfg["MODEL"]["INPUT_SIZE"]),
        size_thres=reject["SIZE_THRES"],
        reject_p=reject["P"],
        diversity=reject["DIVERSITY"],
        valid_ratio=cfg["DATASET"]["VALID_RATIO"],
    )


def build_train_transform(config, extra: Callable | None = None) -> Compose:
    """Rejection crop -> augmentor (-> squeeze to 2D when ``DO_2D``) (-> ``extra``, e.g. targets)."""
    cfg = _cfg(config)
    augmentor = build_augmentor(cfg)
    steps: list = [build_rejection_crop(cfg, augmentor), augmentor]
    if cfg["DATASET"]["DO_2D"]:
        steps.append(SqueezeDimd(keys=list(augmentor_kwargs(cfg)["targets"]), dim=1))
    if extra is not None:
        steps.append(extra)
    return Compose(steps)


def volume_paths(config, section: str = "DATASET", prefix: str = "") -> dict[str, list[str]]:
    """``{"image": [...], "label": [...], "valid_mask": [...]}`` from ``<prefix>IMAGE_NAME`` etc.

    PyTC separates several volumes with ``@`` and joins relative names to ``INPUT_PATH``.
    """
    cfg = _cfg(config)
    sec = cfg[section]
    names = {
        "image": f"{prefix}IMAGE_NAME",
        "label": f"{prefix}LABEL_NAME",
        "valid_mask": f"{prefix}VALID_MASK_NAME",
    }
    absolute = bool(sec.get("IS_ABSOLUTE_PATH"))
    base = sec.get("INPUT_PATH") or ""
    out = {}
    for key, name in names.items():
        value = sec.get(name)
        if not value:
            continue
        items = value.split("@") if isinstance(value, str) else list(value)
        out[key] = [p if absolute or os.path.isabs(p) else os.path.join(base, p) for p in items]
    if "image" not in out:
        raise ValueError(
            f"PyTC config key {section}.{prefix}IMAGE_NAME is required, got {sec.get(names['image'])!r}"
        )
    counts = {k: len(v) for k, v in out.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"PyTC config {section}: image, label and valid-mask lists differ in length: {counts}"
        )
    return out


def build_train_dataset(config, extra: Callable | None = None, seed: int = 0, **kwargs: Any):
    """The training dataset: :class:`TileDataset` when ``DO_CHUNK_TITLE``, else whole volumes.

    ``extra`` runs after the augmentor (e.g. target transforms). ``kwargs`` go to the dataset.
    """
    cfg = _cfg(config)
    ds = cfg["DATASET"]
    paths = volume_paths(cfg)
    transform = build_train_transform(cfg, extra)
    if ds["DO_CHUNK_TITLE"]:
        if len(paths["image"]) != 1:
            raise ValueError(
                f"PyTC config key DATASET.IMAGE_NAME: a tiled dataset takes one JSON, got {paths['image']}"
            )
        return TileDataset(
            volumes={k: v[0] for k, v in paths.items()},
            chunk_num=ds["DATA_CHUNK_NUM"],
            chunk_iter=ds["DATA_CHUNK_ITER"],
            mode="train",
            pad_size=ds["PAD_SIZE"],
            transform=transform,
            seed=seed,
            **kwargs,
        )
    data = [{k: paths[k][i] for k in paths} for i in range(len(paths["image"]))]
    return MultiVolumeDataset(
        data, transform, spatial_size=transform.transforms[0].spatial_size, load=_load_volumes, **kwargs
    )


def _load_volumes(item: Mapping[str, str]) -> dict:
    """Whole volumes in memory, channel-first ``(1, Z, Y, X)``, from any file :func:`open_volume` reads."""
    volumes = {key: open_volume(path, role=role_of_key(key)) for key, path in item.items()}
    check_compatible(volumes)  # an image/label pair must cover the same voxels
    return {key: vol.read(tuple((0, n) for n in vol.shape))[None] for key, vol in volumes.items()}


def build_inference(config, network: Callable, **kwargs: Any):
    """The inference runner of a PyTC config, to be called on the inputs of ``volume_paths(config, "INFERENCE")``.

    - ``INFERENCE.DO_SINGLY``: :class:`ImageListInference`, one 2D image at a time (``IMAGE_NAME`` a
      txt list, a glob or a list; ``roi_size`` = the last two axes of the input size).
    - otherwise :class:`ChunkedInference` over the volume, chunked by ``DATASET.DATA_CHUNK_NUM`` when
      ``DO_CHUNK_TITLE`` (``INFERENCE.DO_CHUNK_TITLE`` overrides the DATASET value), else one chunk.

    Overlap comes from ``INFERENCE.STRIDE`` (``1 - stride / roi`` per axis), blending from
    ``INFERENCE.BLENDING``, the activation from ``INFERENCE.OUTPUT_ACT[0]``, test-time flips
    from ``INFERENCE.AUG_NUM`` / ``AUG_MODE``. ``kwargs`` override any runner argument.
    """
    from ..inference import ChunkedInference, ImageListInference, TestTimeFlips

    cfg = _cfg(config)
    inf, ds = cfg["INFERENCE"], cfg["DATASET"]
    roi = list(inf["INPUT_SIZE"] or cfg["MODEL"]["INPUT_SIZE"])
    stride = list(inf["STRIDE"])[-len(roi) :]
    overlap = [round(max(0.0, 1.0 - s / r), 4) for s, r in zip(stride, roi, strict=True)]
    blending = {"gaussian": "gaussian", "bump": "gaussian", "constant": "constant", "average": "constant"}
    if inf["BLENDING"] not in blending:
        raise ValueError(
            f"PyTC config key INFERENCE.BLENDING: expected one of {sorted(blending)}, got {inf['BLENDING']!r}"
        )
    act = (inf["OUTPUT_ACT"] or ["none"])[0]
    activation = None if act in (None, "none") else act
    tta = TestTimeFlips(merge=inf["AUG_MODE"]) if inf["AUG_NUM"] else None
    output_dir = inf["OUTPUT_PATH"] or "."
    common = dict(activation=activation, tta=tta, mode=blending[inf["BLENDING"]])
    if ds["DO_2D"]:  # a 2D network: (1, H, W) windows section by section
        roi, overlap = roi[-2:], overlap[-2:]
        common["spatial_dims"] = 2
    if inf["DO_SINGLY"]:
        common.pop("spatial_dims", None)
        args = dict(roi_size=roi[-2:], output_dir=output_dir, overlap=overlap[-2:], **common)
        return ImageListInference(network, **{**args, **kwargs})
    tiled = inf["DO_CHUNK_TITLE"] if inf["DO_CHUNK_TITLE"] is not None else ds["DO_CHUNK_TITLE"]
    args = dict(
        roi_size=roi,
        output_dir=os.path.join(output_dir, "chunks"),
        chunk_num=ds["DATA_CHUNK_NUM"] if tiled else (1, 1, 1),
        pad_size=inf["PAD_SIZE"] if inf["PAD_SIZE"] is not None else ds["PAD_SIZE"],
        overlap=overlap,
        output_file=os.path.join(output_dir, inf["OUTPUT_NAME"]),
        **common,
    )
    return ChunkedInference(network, **{**args, **kwargs})
