"""The training transform, assembled once: rejection crop -> intensity scaling -> augmentor -> 2D squeeze -> targets.

The README example, the PyTC builder (:func:`~monai_em.config.build_train_transform`) and the bundle's
``train#preprocessing`` all call :func:`train_transform`; keys play the roles of :mod:`monai_em.roles`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from monai.transforms import CastToTyped, Compose, ScaleIntensityRanged, SqueezeDimd

from ..roles import first_key, intensity_keys, keys_with_role, resolve_roles
from .compose import EMAugmentor, flat_length
from .sampling import RandRejectionCropd

__all__ = ["TrainTransform", "intensity_scaling", "train_transform"]


def intensity_scaling(keys: str | Sequence[str] = "image", intensity_max: float = 255) -> list:
    """Grey values ``[0, intensity_max]`` -> float32 ``[0, 1]``, clipped (what training and inference feed the network).

    Returns ``[CastToTyped(float32), ScaleIntensityRanged(0, intensity_max -> 0, 1, clip)]`` on ``keys``.
    """
    return [
        CastToTyped(keys=keys, dtype=np.float32),
        ScaleIntensityRanged(keys=keys, a_min=0, a_max=intensity_max, b_min=0.0, b_max=1.0, clip=True),
    ]


class TrainTransform(Compose):
    """A MONAI ``Compose`` of the training steps that names its rejection crop and augmentor.

    ``crop.spatial_size`` is the sample size a dataset must provide; ``augmentor.input_size`` is
    what the network sees.
    """

    def __init__(self, crop: RandRejectionCropd, augmentor: EMAugmentor, transforms: Sequence[Any]):
        super().__init__(list(transforms))
        self.crop, self.augmentor = crop, augmentor

    def __len__(self) -> int:
        return flat_length(self)  # not MONAI's flatten(), which reseeds the members


def train_transform(
    input_size: Sequence[int],
    roles: Sequence[str] | Mapping[str, str] = ("image", "label"),
    augment: bool = True,
    transforms: Sequence[Any] | None = None,
    presets: Mapping[str, Any] | None = None,
    disabled: Sequence[str] = (),
    augmentor: EMAugmentor | None = None,
    crop: Mapping[str, Any] | None = None,
    intensity_max: float | None = None,
    do_2d: bool = False,
    target_transforms: Sequence[Any] = (),
    smooth_labels: bool = False,
    fuse: bool = True,
) -> TrainTransform:
    """The training transform of a sample dict ``{key: (C, Z, Y, X)}``.

    Steps, in order: :class:`RandRejectionCropd` over every key, cropping the augmentor's
    ``sample_size`` and testing the centre ``input_size`` (label key: the label role's, valid key:
    the mask role's); :func:`intensity_scaling` of the image keys (when ``intensity_max`` is given);
    :class:`EMAugmentor` to ``input_size``; ``SqueezeDimd`` of the z axis of every key (``do_2d``:
    ``(C, 1, Y, X)`` -> ``(C, Y, X)``); ``target_transforms``.

    Args:
        input_size: network patch ``(Z, Y, X)`` (2D: ``(1, Y, X)`` with ``do_2d``).
        roles: the keys, as a list named by role or ``{key: role or PyTC target type}``
            (:func:`~monai_em.roles.resolve_roles`).
        augment: False: no augmentation (PyTC's ``AUGMENTOR.ENABLED: False``), only the centre crop.
        transforms: augmentations replacing PyTC's default list (``presets`` and ``disabled`` are then
            ignored, with a warning).
        presets: :func:`~monai_em.transforms.presets.default_em_transforms` switches (``enabled``,
            ``disabled``, ``skip``, ``copy_paste``, per-name overrides), e.g. from a PyTC file.
        disabled: augmentation names switched off on top of ``presets``.
        augmentor: a ready augmentor; replaces ``augment`` / ``transforms`` / ``presets`` / ``disabled``.
        crop: :class:`RandRejectionCropd` options (``size_thres``, ``reject_p``, ``valid_ratio``, ...).
        intensity_max: grey value that maps to 1.0; None: no scaling.
        do_2d: 2D model: the default list drops MissingSection and MisAlignment, outputs are squeezed.
        target_transforms: transforms run last (training targets, key selection, ...).
        smooth_labels / fuse: :class:`EMAugmentor` options.

    Example:
        >>> t = train_transform((8, 64, 64), ["image", "label"], crop={"size_thres": 100})
        >>> t.crop.spatial_size, t.augmentor.input_size
        ((10, 130, 130), (8, 64, 64))
    """
    roles = resolve_roles(roles)
    labels = keys_with_role(roles, "label")
    if augmentor is None:
        if not augment:
            transforms = []
        if transforms is not None:
            if augment and (presets or disabled):
                warnings.warn(
                    f"train_transform: transforms= replaces PyTC's default list, so presets={dict(presets or {})} "
                    f"and disabled={list(disabled)} are ignored",
                    UserWarning,
                    stacklevel=2,
                )
            augmentor = EMAugmentor(list(transforms), input_size, smooth_labels, labels, fuse=fuse)
        else:
            options = dict(presets or {})
            options["disabled"] = [*options.get("disabled", ()), *disabled]
            augmentor = EMAugmentor.from_targets(
                input_size, roles, smooth_labels, fuse, do_2d=do_2d, **options
            )
    masks = keys_with_role(roles, "mask")
    sampler = RandRejectionCropd(
        keys=list(roles),
        label_key=first_key(roles, "label"),
        valid_key=masks[0] if masks else None,
        spatial_size=augmentor.sample_size,
        test_size=augmentor.input_size,
        **dict(crop or {}),
    )
    steps: list[Any] = [sampler]
    if intensity_max is not None:
        steps += intensity_scaling(intensity_keys(roles), intensity_max)
    steps.append(augmentor)
    if do_2d:
        steps.append(SqueezeDimd(keys=list(roles), dim=1))
    return TrainTransform(sampler, augmentor, [*steps, *target_transforms])
