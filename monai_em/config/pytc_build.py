"""PyTC config -> monai_em components: augmentor, rejection crop, training dataset, inference.

Each ``build_*`` takes a :class:`~monai_em.config.pytc.PyTCConfig` (or anything
:func:`~monai_em.config.pytc.load_pytc_config` accepts) and returns the object a hand-written
monai_em pipeline would hold. ``docs/migrating-from-pytc.md`` shows both side by side.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..data.multi_volume import MultiVolumeDataset
from ..data.sources import open_volume
from ..data.tile_dataset import TileDataset
from ..data.tiles import check_compatible
from ..data.volume import PAD_MODES, read_reflected
from ..roles import ROLES, role_of_key
from ..transforms.compose import EMAugmentor
from ..transforms.pipeline import TrainTransform, train_transform
from ..transforms.presets import default_em_transforms
from ..transforms.sampling import RandRejectionCropd
from .pytc import PyTCConfig, load_pytc_config

__all__ = [
    "augmentor_kwargs",
    "build_augmentations",
    "build_augmentor",
    "build_inference",
    "build_tta",
    "inference_activation",
    "inference_blending",
    "inference_overlap",
    "inference_roi",
    "tta_from_aug_num",
    "build_rejection_crop",
    "build_train_dataset",
    "build_train_transform",
    "pytc_presets",
    "pytc_targets",
    "train_transform_kwargs",
    "pytc_value",
    "volume_name_keys",
    "volume_paths",
    "VolumeListInference",
]

# PyTC AUGMENTOR section -> (monai_em builder name, {PyTC key: constructor argument})
_AUGMENTATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "ROTATE": ("rotate", {"P": "prob", "ROT90": "rot90"}),
    "RESCALE": ("rescale", {"P": "prob", "FIX_ASPECT": "fix_aspect"}),
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


def positive(config, key: str) -> int | float:
    """The value of a dotted PyTC key that must be > 0 (counts, iterations, batch sizes), else ValueError naming it."""
    value = _cfg(config).get_path(key)
    if value is None or value <= 0:
        raise ValueError(f"PyTC config key {key}: expected a value > 0, got {value!r}")
    return value


def _cfg(config) -> PyTCConfig:
    return config if isinstance(config, PyTCConfig) else load_pytc_config(config)


def pytc_targets(config) -> dict[str, str]:
    """``{"image": "img", **ADDITIONAL_TARGETS}``: the keys augmented and their PyTC target types."""
    cfg = _cfg(config)
    aug = cfg["AUGMENTOR"]
    targets = {
        ROLES["image"].key: ROLES["image"].target_type,
        **dict(zip(aug["ADDITIONAL_TARGETS_NAME"], aug["ADDITIONAL_TARGETS_TYPE"], strict=True)),
    }
    if cfg["DATASET"]["VALID_MASK_NAME"]:  # the mask must move with the label (PyTC asserts this instead)
        targets.setdefault(ROLES["mask"].key, ROLES["mask"].target_type)
    return targets


def pytc_presets(config) -> dict[str, Any]:
    """The config's ``AUGMENTOR.<NAME>`` switches as :func:`default_em_transforms` arguments (``disabled``,
    ``skip``, ``copy_paste`` and one parameter dict per name); ``{}`` (PyTC's defaults) for None."""
    if config is None:
        return {}
    aug = _cfg(config)["AUGMENTOR"]
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
    copy_paste = aug["COPYPASTE"]
    pasted = (
        {"aug_thres": copy_paste["AUG_THRES"], "prob": copy_paste["P"]} if copy_paste["ENABLED"] else None
    )
    return {"disabled": disabled, "skip": skip, "copy_paste": pasted, **overrides}


def train_transform_kwargs(config) -> dict[str, Any]:
    """Arguments of :func:`~monai_em.transforms.pipeline.train_transform` equivalent to the config
    (``MODEL.INPUT_SIZE``, ``AUGMENTOR.*``, ``DATASET.DO_2D`` / ``REJECT_SAMPLING`` / ``VALID_RATIO``),
    each section read once. PyTC scales no intensities, so neither does this (no ``intensity_max``)."""
    cfg = _cfg(config)
    ds, aug = cfg["DATASET"], cfg["AUGMENTOR"]
    reject = ds["REJECT_SAMPLING"]
    return {
        "input_size": tuple(cfg["MODEL"]["INPUT_SIZE"]),
        "roles": pytc_targets(cfg),
        "augment": bool(aug["ENABLED"]),
        "presets": pytc_presets(cfg),
        "crop": {
            "size_thres": reject["SIZE_THRES"],
            "reject_p": reject["P"],
            "diversity": reject["DIVERSITY"],
            "max_trials": reject["NUM_TRIAL"],
            "valid_ratio": ds["VALID_RATIO"],
        },
        "do_2d": bool(ds["DO_2D"]),
        "smooth_labels": bool(aug["SMOOTH"]),
    }


def augmentor_kwargs(config) -> dict[str, Any]:
    """Arguments of :meth:`EMAugmentor.from_targets` equivalent to the config's AUGMENTOR section."""
    kwargs = train_transform_kwargs(config)
    return {
        "input_size": kwargs["input_size"],
        "targets": kwargs["roles"],
        "smooth_labels": kwargs["smooth_labels"],
        "do_2d": kwargs["do_2d"],
        **kwargs["presets"],
    }


def build_augmentor(config) -> EMAugmentor:
    """The EMAugmentor of a PyTC config (``MODEL.INPUT_SIZE``, ``AUGMENTOR.*``, ``DATASET.DO_2D``).

    ``AUGMENTOR.ENABLED: False`` gives no augmentations (samples only cropped to ``MODEL.INPUT_SIZE``);
    ``AUGMENTOR.COPYPASTE.ENABLED`` appends :class:`RandCopyPasted` (image keys, the label) as the
    last transform before the centre crop.
    """
    return build_train_transform(config).augmentor


def build_augmentations(
    config, targets: Mapping[str, str] | None = None, disabled: Sequence[str] = (), do_2d: bool | None = None
) -> list:
    """The augmentation list of a PyTC config (without the final crop), for ``targets`` (default: the config's).

    ``disabled`` adds names to switch off and ``do_2d`` (when not None) replaces ``DATASET.DO_2D``, so
    a caller's own keys and switches win over the PyTC file.
    """
    kwargs = train_transform_kwargs(config)
    if not kwargs["augment"]:
        return []
    presets = kwargs["presets"]
    return default_em_transforms(
        targets or kwargs["roles"],
        do_2d=kwargs["do_2d"] if do_2d is None else bool(do_2d),
        **{**presets, "disabled": [*presets["disabled"], *disabled]},
    )


def pytc_value(config, key: str, default: Any = None) -> Any:
    """``config[key]`` for a dotted key, or ``default`` when ``config`` is None (bundle ids use this).

    Path keys ``DATASET.IMAGE_NAME`` / ``LABEL_NAME`` / ``VALID_MASK_NAME`` come back joined to
    ``INPUT_PATH`` (unless ``IS_ABSOLUTE_PATH``), or ``default`` when unset.
    """
    if config is None:
        return default
    cfg = _cfg(config)
    paths = {f"DATASET.{name}": k for k, name in volume_name_keys().items()}
    if key in paths:
        if not cfg.get_path(key):
            return default
        found = volume_paths(cfg)[paths[key]]
        return found[0] if len(found) == 1 else found
    return cfg.get_path(key)


def build_rejection_crop(config, augmentor: EMAugmentor | None = None) -> RandRejectionCropd:
    """The rejection crop of a PyTC config: sample size from the augmentor, test region ``MODEL.INPUT_SIZE``."""
    return train_transform(**train_transform_kwargs(config), augmentor=augmentor).crop


def build_train_transform(config, extra: Callable | None = None) -> TrainTransform:
    """Rejection crop -> augmentor (-> squeeze to 2D when ``DO_2D``) (-> ``extra``, e.g. targets):
    :func:`~monai_em.transforms.pipeline.train_transform` with :func:`train_transform_kwargs`."""
    return train_transform(
        **train_transform_kwargs(config), target_transforms=[extra] if extra is not None else []
    )


# PyTC's volume file key of each role: <section>.<prefix><NAME>_NAME names the volume of the role's key
_VOLUME_NAMES = {"image": "IMAGE", "label": "LABEL", "mask": "VALID_MASK"}


def volume_name_keys(prefix: str = "") -> dict[str, str]:
    """``{data key: PyTC file key}``, ``{"image": "IMAGE_NAME", "label": "LABEL_NAME", "valid_mask":
    "VALID_MASK_NAME"}`` (keys from :data:`~monai_em.roles.ROLES`; ``prefix`` e.g. ``"VAL_"``)."""
    return {ROLES[role].key: f"{prefix}{name}_NAME" for role, name in _VOLUME_NAMES.items()}


def volume_paths(config, section: str = "DATASET", prefix: str = "") -> dict[str, list[str]]:
    """``{"image": [...], "label": [...], "valid_mask": [...]}`` from ``<prefix>IMAGE_NAME`` etc.

    PyTC separates several volumes with ``@`` and joins relative names to ``INPUT_PATH``.
    """
    cfg = _cfg(config)
    sec = cfg[section]
    names = volume_name_keys(prefix)
    image = ROLES["image"].key
    absolute, base = sec.get("IS_ABSOLUTE_PATH"), sec.get("INPUT_PATH")
    if section == "INFERENCE":  # unset INFERENCE paths fall back to DATASET's (PyTC's update_inference_cfg)
        absolute = cfg["DATASET"]["IS_ABSOLUTE_PATH"] if absolute is None else absolute
        base = cfg["DATASET"]["INPUT_PATH"] if base is None else base
    absolute, base = bool(absolute), base or ""
    out = {}
    for key, name in names.items():
        value = sec.get(name)
        if not value:
            continue
        items = value.split("@") if isinstance(value, str) else list(value)
        if any(not isinstance(p, str) or not p.strip() for p in items):
            raise ValueError(
                f"PyTC config key {section}.{name}: an empty or non-text volume name in {value!r}"
            )
        out[key] = [p if absolute or os.path.isabs(p) else os.path.join(base, p) for p in items]
    if image not in out:
        raise ValueError(
            f"PyTC config key {section}.{names[image]} is required, got {sec.get(names[image])!r}"
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
    images = paths[ROLES["image"].key]
    transform = build_train_transform(cfg, extra)
    if ds["DO_CHUNK_TITLE"]:
        if len(images) != 1:
            raise ValueError(
                f"PyTC config key DATASET.IMAGE_NAME: a tiled dataset takes one JSON, got {images}"
            )
        return TileDataset(
            volumes={k: v[0] for k, v in paths.items()},
            chunk_num=ds["DATA_CHUNK_NUM"],
            chunk_iter=ds["DATA_CHUNK_ITER"],
            stage="train",
            pad_size=ds["PAD_SIZE"],
            transform=transform,
            seed=seed,
            **kwargs,
        )
    data = [{k: paths[k][i] for k in paths} for i in range(len(images))]
    load = functools.partial(_load_volumes, pad_size=ds["PAD_SIZE"], pad_mode=ds["PAD_MODE"])
    return MultiVolumeDataset(data, transform, spatial_size=transform.crop.spatial_size, load=load, **kwargs)


def _load_volumes(
    item: Mapping[str, str], pad_size: Sequence[int] = (0, 0, 0), pad_mode: str = "reflect"
) -> dict:
    """Whole volumes in memory, channel-first ``(1, Z, Y, X)``, padded by ``pad_size`` per side as PyTC pads
    them (``DATASET.PAD_SIZE`` / ``PAD_MODE``: numpy's ``reflect``, ``symmetric``, ``edge`` or ``constant``
    with 0), from any file :func:`open_volume` reads."""
    if pad_mode not in PAD_MODES:
        raise ValueError(f"PyTC config key DATASET.PAD_MODE: expected one of {PAD_MODES}, got {pad_mode!r}")
    pads = [int(p) for p in pad_size]
    if len(pads) != 3 or min(pads) < 0:
        raise ValueError(f"PyTC config key DATASET.PAD_SIZE: expected 3 sizes >= 0, got {list(pad_size)}")
    volumes = {key: open_volume(path, role=role_of_key(key)) for key, path in item.items()}
    check_compatible(volumes)  # an image/label pair must cover the same voxels
    return {
        key: read_reflected(
            vol.read, [(-p, n + p) for p, n in zip(pads, vol.shape, strict=True)], vol.shape, pad_mode
        )[None]
        for key, vol in volumes.items()
    }


# PyTC INFERENCE.AUG_NUM -> (flipped axes, y/x transpose), as its TestAugmentor; None or 0: no augmentation.
# A 2D model has no z to flip, so 16 gives the 8 variants of 8 (PyTC caps 2D at 8).
_AUG_NUM = {4: (("y", "x"), False), 8: (("y", "x"), True), 16: (("z", "y", "x"), True)}
_AUG_MODES = ("mean", "min", "max")
_BLENDING = {"gaussian": "gaussian", "bump": "gaussian", "constant": "constant", "average": "constant"}


def tta_from_aug_num(aug_num: int | bool | None, merge: str = "mean"):
    """The :class:`TestTimeFlips` of PyTC's ``INFERENCE.AUG_NUM`` / ``AUG_MODE``; None for None, 0 or False.

    ``4``: flips of y and x (4 variants); ``8``: the same with and without the y/x transpose;
    ``16`` (or True): flips of z, y and x with and without the transpose (PyTC's ``TestAugmentor``).
    """
    from ..inference import TestTimeFlips

    if aug_num is None or aug_num is False or aug_num == 0:
        return None
    num = 16 if aug_num is True else aug_num
    if num not in _AUG_NUM:
        raise ValueError(f"PyTC config key INFERENCE.AUG_NUM: expected null, 0, 4, 8 or 16, got {aug_num!r}")
    if merge not in _AUG_MODES:
        raise ValueError(f"PyTC config key INFERENCE.AUG_MODE: expected one of {_AUG_MODES}, got {merge!r}")
    axes, transpose = _AUG_NUM[num]
    return TestTimeFlips(flip_axes=axes, transpose_xy=transpose, merge=merge)


def build_tta(config):
    """:func:`tta_from_aug_num` of the config's ``INFERENCE.AUG_NUM`` and ``AUG_MODE``."""
    inf = _cfg(config)["INFERENCE"]
    if isinstance(inf["AUG_NUM"], bool):  # True is the bundle's shorthand for 16, not a PyTC value
        raise ValueError(
            f"PyTC config key INFERENCE.AUG_NUM: expected null, 0, 4, 8 or 16, got {inf['AUG_NUM']!r}"
        )
    return tta_from_aug_num(inf["AUG_NUM"], inf["AUG_MODE"])


def inference_roi(config) -> list[int]:
    """``INFERENCE.INPUT_SIZE``, or ``MODEL.INPUT_SIZE`` when unset (as PyTC's update_inference_cfg)."""
    cfg = _cfg(config)
    return list(cfg["INFERENCE"]["INPUT_SIZE"] or cfg["MODEL"]["INPUT_SIZE"])


def inference_overlap(config) -> list[float]:
    """Window overlap per axis from ``INFERENCE.STRIDE``: ``1 - stride / roi`` (0 where stride >= roi)."""
    cfg = _cfg(config)
    roi, stride = inference_roi(cfg), list(cfg["INFERENCE"]["STRIDE"])
    if len(stride) < len(roi) or min(stride[-len(roi) :]) < 1:
        raise ValueError(
            f"PyTC config key INFERENCE.STRIDE: expected {len(roi)} positive sizes, got {stride}"
        )
    return [round(max(0.0, 1.0 - s / r), 4) for s, r in zip(stride[-len(roi) :], roi, strict=True)]


def inference_blending(config) -> str:
    """``INFERENCE.BLENDING`` as a window mode: ``"gaussian"`` (also ``bump``) or ``"constant"`` (``average``)."""
    name = _cfg(config)["INFERENCE"]["BLENDING"]
    if name not in _BLENDING:
        raise ValueError(
            f"PyTC config key INFERENCE.BLENDING: expected one of {sorted(_BLENDING)}, got {name!r}"
        )
    return _BLENDING[name]


def inference_activation(config) -> str | None:
    """``INFERENCE.OUTPUT_ACT[0]``; None for ``none``."""
    act = (_cfg(config)["INFERENCE"]["OUTPUT_ACT"] or ["none"])[0]
    return None if act in (None, "none") else act


def build_inference(config, network: Callable, **kwargs: Any):
    """The inference runner of a PyTC config, to be called on the inputs of ``volume_paths(config, "INFERENCE")``.

    - ``INFERENCE.DO_SINGLY`` with ``DATASET.DO_2D``: :class:`ImageListInference`, one 2D image at
      a time (``IMAGE_NAME`` a txt list, a glob or a list; ``roi_size`` = the last two axes).
    - ``INFERENCE.DO_SINGLY`` with a 3D model: :class:`VolumeListInference`, the normal 3D inference
      once per listed volume (from ``DO_SINGLY_START_INDEX`` in steps of ``DO_SINGLY_STEP``).
    - otherwise :class:`ChunkedInference` over the volume, chunked by ``DATASET.DATA_CHUNK_NUM`` when
      ``DO_CHUNK_TITLE`` (``INFERENCE.DO_CHUNK_TITLE`` overrides the DATASET value), else one chunk.

    Overlap comes from ``INFERENCE.STRIDE`` (``1 - stride / roi`` per axis), blending from
    ``INFERENCE.BLENDING``, the activation from ``INFERENCE.OUTPUT_ACT[0]``, test-time flips
    from ``INFERENCE.AUG_NUM`` / ``AUG_MODE`` (:func:`build_tta`), windows per network call from
    ``INFERENCE.SAMPLES_PER_BATCH``, this process's share from ``INFERENCE.TEST_ID`` / ``TEST_NUM``.
    ``kwargs`` override any runner argument.
    """
    from ..inference import ChunkedInference, ImageListInference

    cfg = _cfg(config)
    inf, ds = cfg["INFERENCE"], cfg["DATASET"]
    roi, overlap = inference_roi(cfg), inference_overlap(cfg)
    output_dir = inf["OUTPUT_PATH"] or "."
    common = dict(
        activation=inference_activation(cfg),
        tta=build_tta(cfg),
        mode=inference_blending(cfg),
        sw_batch_size=positive(cfg, "INFERENCE.SAMPLES_PER_BATCH"),
    )
    if inf["TEST_NUM"] != 1:  # PyTC's test workers: this process predicts share TEST_ID of TEST_NUM
        if not 0 <= inf["TEST_ID"] < inf["TEST_NUM"]:
            raise ValueError(
                f"PyTC config keys INFERENCE.TEST_ID / TEST_NUM: need 0 <= TEST_ID < TEST_NUM, got "
                f"{inf['TEST_ID']} / {inf['TEST_NUM']}"
            )
        common.update(rank=inf["TEST_ID"], world_size=inf["TEST_NUM"])
    if ds["DO_2D"]:  # a 2D network: (1, H, W) windows section by section
        roi, overlap = roi[-2:], overlap[-2:]
        common["spatial_dims"] = 2
    if inf["DO_SINGLY"] and ds["DO_2D"]:
        common.pop("spatial_dims", None)
        args = dict(roi_size=roi[-2:], output_dir=output_dir, overlap=overlap[-2:], **common)
        return ImageListInference(network, **{**args, **kwargs})
    tiled = inf["DO_CHUNK_TITLE"] if inf["DO_CHUNK_TITLE"] is not None else ds["DO_CHUNK_TITLE"]
    args = dict(
        roi_size=roi,
        chunk_num=ds["DATA_CHUNK_NUM"] if tiled else (1, 1, 1),
        pad_size=inf["PAD_SIZE"] if inf["PAD_SIZE"] is not None else ds["PAD_SIZE"],
        overlap=overlap,
        **common,
    )
    if inf["DO_SINGLY"]:
        return VolumeListInference(
            network,
            output_dir,
            start=inf["DO_SINGLY_START_INDEX"],
            step=inf["DO_SINGLY_STEP"],
            **{**args, **kwargs},
        )
    args.update(
        output_dir=os.path.join(output_dir, "chunks"),
        output_file=os.path.join(output_dir, inf["OUTPUT_NAME"]),
    )
    return ChunkedInference(network, **{**args, **kwargs})


class VolumeListInference:
    """PyTC ``INFERENCE.DO_SINGLY`` with a 3D model: :class:`ChunkedInference` once per listed volume.

    Input ``dir/name.ext`` gives ``output_dir/name.h5`` (``name_result.h5`` when that is the input
    itself, as PyTC), with its chunk files in ``output_dir/chunks/name``; a rerun resumes as
    ChunkedInference does.

    Args:
        network: 3D torch module (or callable), as for ChunkedInference.
        output_dir: folder of the outputs.
        start / step: PyTC's ``DO_SINGLY_START_INDEX`` / ``DO_SINGLY_STEP``: volumes ``start, start +
            |step|, ...``, in reverse order when ``step < 0``.
        kwargs: every other :class:`ChunkedInference` argument (``roi_size``, ``chunk_num``, ...).
    """

    def __init__(
        self, network: Callable, output_dir: str | os.PathLike, start: int = 0, step: int = 1, **kwargs
    ):
        if step == 0:
            raise ValueError("PyTC config key INFERENCE.DO_SINGLY_STEP (step) must not be 0")
        if start < 0:
            raise ValueError(
                f"PyTC config key INFERENCE.DO_SINGLY_START_INDEX (start) must be >= 0, got {start}"
            )
        for key in ("output_dir", "output_file"):
            if key in kwargs:
                raise ValueError(f"VolumeListInference names each output itself; {key} is not an argument")
        self.network, self.output_dir, self.start, self.step, self.kwargs = (
            network,
            output_dir,
            start,
            step,
            kwargs,
        )

    def output_path(self, volume: str | os.PathLike) -> str:
        """The prediction file of one input volume."""
        stem = os.path.splitext(os.path.basename(os.fspath(volume)))[0]
        out = os.path.join(self.output_dir, f"{stem}.h5")
        same = os.path.exists(out) and os.path.samefile(out, volume)
        return os.path.join(self.output_dir, f"{stem}_result.h5") if same else out

    def runner(self, volume: str | os.PathLike):
        """The ChunkedInference of one volume."""
        from ..inference import ChunkedInference

        stem = os.path.splitext(os.path.basename(os.fspath(volume)))[0]
        chunks = os.path.join(self.output_dir, "chunks", stem)
        return ChunkedInference(
            self.network, output_dir=chunks, output_file=self.output_path(volume), **self.kwargs
        )

    def __call__(self, volumes) -> list:
        """Predict each selected volume of ``volumes`` (a list, ``a.h5@b.h5`` or a txt list); returns the outputs."""
        from ..inference import read_path_list

        items = volumes.split("@") if isinstance(volumes, str) and "@" in volumes else volumes
        paths = read_path_list(items)
        picked = list(range(self.start, len(paths), abs(self.step)))
        if self.step < 0:
            picked.reverse()
        if not picked:
            raise ValueError(
                f"PyTC config key INFERENCE.DO_SINGLY_START_INDEX={self.start} is past the {len(paths)} volumes listed"
            )
        return [self.runner(paths[i])(paths[i]) for i in picked]
