"""Prediction -> segmentation -> scores, next to the grey-threshold baseline and the ground-truth-boundary oracle.

What ``bundles/em_segmentation/configs/evaluate.yaml`` runs. Every row segments a boundary map with
the same method and parameters, so the rows differ only in the map:

* ``model``: the network's prediction (``segment`` with the method its target needs);
* ``grey threshold``: dark voxels (``image <= t``, ``t`` the grey value with the best boundary F1 on
  these very voxels, which flatters the baseline) as a binary boundary map;
* ``oracle``: the ground-truth boundary itself (an upper bound for the watershed).

Scores: VI split / merge and adapted Rand error against the ground-truth instances (ground-truth 0
ignored), and boundary F1 (1-pixel tolerance) against the ground-truth boundary.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..data.sources import open_volume
from ..transforms.target_options import TARGETS, parse_target
from ..transforms.targets import BoundaryTarget
from .instances import as_probability, connected_components, segment
from .metrics import best_grey_threshold, boundary_f1, segmentation_scores

__all__ = ["CONVENTIONS", "evaluate_segmentation", "ground_truth", "read_prediction"]

CONVENTIONS = ("instance", "membrane_mask", "object_mask")


def _read(source, dataset: str | None, z_range: Sequence[int | None] | None, role: str) -> np.ndarray:
    vol = open_volume(source, role=role, dataset=dataset)
    z0, z1 = (0, vol.shape[0]) if z_range is None else slice(*z_range).indices(vol.shape[0])[:2]
    return np.asarray(vol.read(((z0, z1), (0, vol.shape[1]), (0, vol.shape[2]))))


def read_prediction(path, dataset: str = "main") -> np.ndarray:
    """A stitched ``(C, Z, Y, X)`` prediction (HDF5 written by the inference bundle, or ``.npy``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prediction file not found: {path}")
    if path.suffix == ".npy":
        pred = np.load(path)
    else:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise ValueError(f"{path} has no dataset {dataset!r} (it has {list(f)})")
            pred = f[dataset][()]
    if pred.ndim != 4:
        raise ValueError(f"{path}: prediction must be (C, Z, Y, X), got shape {pred.shape}")
    return pred


def ground_truth(label: np.ndarray, convention: str, in_plane: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(instances uint64, boundary bool)`` of a ``(Z, Y, X)`` label in one of :data:`CONVENTIONS`.

    ``instance``: ids as they are, boundary = their contour (:class:`BoundaryTarget` width 2, in-plane
    when ``in_plane``, else 3D: the map a 3D watershed needs);
    ``membrane_mask`` (ISBI: 0 = membrane): instances = connected regions of the interior (per
    section when ``in_plane``), membranes are 0 (ignored by the scores) and are the boundary;
    ``object_mask``: instances = connected objects, boundary = their contour.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"label_convention must be one of {CONVENTIONS}, got {convention!r}")
    label = np.asarray(label)
    if convention == "membrane_mask":
        interior = label != 0
        if in_plane:
            inst = np.zeros(label.shape, np.uint64)
            offset = np.uint64(0)
            for z in range(label.shape[0]):
                cc = connected_components(interior[z])
                inst[z] = np.where(cc > 0, cc + offset, 0)
                offset += np.uint64(cc.max())
        else:
            inst = connected_components(interior)
        return inst, ~interior
    inst = connected_components(label != 0) if convention == "object_mask" else label.astype(np.uint64)
    boundary = BoundaryTarget(width=2, in_plane=in_plane)(inst.astype(np.int64)[None]).numpy()[0] > 0
    return inst, boundary


def evaluate_segmentation(
    prediction,
    label,
    image=None,
    target: str = "boundary",
    label_convention: str = "instance",
    params: Mapping[str, Any] | None = None,
    in_plane: bool = False,
    z_range: Sequence[int | None] | None = None,
    label_dataset: str | None = None,
    image_dataset: str | None = None,
    output_dir: str | os.PathLike | None = None,
    baselines: bool = True,
) -> list[dict[str, Any]]:
    """Segment a prediction, score it (and the baselines), and write ``metrics.json`` / ``metrics.csv``.

    Args:
        prediction: ``(C, Z, Y, X)`` array or a path (:func:`read_prediction`), for the sections of ``z_range``.
        label: ground truth (array or anything ``open_volume`` reads), cut to ``z_range``.
        image: the EM image (same), for the grey-threshold baseline (``None``: no baseline row).
        target: the network's target name or PyTC option (picks the segmentation method).
        label_convention: how to read ``label`` (see :func:`ground_truth`).
        params: segmentation parameter overrides (``monai_em.segmentation.DEFAULTS``).
        in_plane: segment (and build mask instances) section by section (2D models, ISBI).
        z_range: ``[start, stop)`` sections of ``label`` / ``image`` the prediction covers (None: all).
        output_dir: where ``metrics.json``, ``metrics.csv`` and ``segmentation.h5`` go (None: nothing written).
        baselines: add the grey-threshold and oracle rows.

    Returns one dict per row: ``name``, the scores of :func:`segmentation_scores` and ``boundary_f1``.
    """
    pred = (
        read_prediction(prediction) if isinstance(prediction, (str, os.PathLike)) else np.asarray(prediction)
    )
    method = TARGETS[parse_target(target)[0]].segmentation
    params = dict(params or {})
    if method == "watershed":
        params.setdefault("in_plane", in_plane)
    lab = _read(label, label_dataset, z_range, "label")
    if pred.shape[1:] != lab.shape:
        raise ValueError(f"prediction {pred.shape} does not cover the label {lab.shape} (z_range {z_range})")
    gt, gt_boundary = ground_truth(lab, label_convention, in_plane)
    maps = {"model": pred}
    grey_t = None
    if baselines and image is not None:
        img = _read(image, image_dataset, z_range, "image")
        _, grey_t = best_grey_threshold(img, gt_boundary)
        maps["grey threshold"] = (img <= grey_t)[None].astype(np.float32)
    if baselines:
        maps["oracle (ground-truth boundary)"] = gt_boundary[None].astype(np.float32)
    rows, segs = [], {}
    for name, m in maps.items():
        how = method if name == "model" else "watershed"
        kw = params if name == "model" or method == "watershed" else {"in_plane": in_plane}
        segs[name] = segment(m, how, kw)
        row = {"name": name, **segmentation_scores(gt, segs[name])}
        row["boundary_f1"] = (
            boundary_f1(as_probability(m[0]) >= 0.5, gt_boundary)
            if how == "watershed" and m.shape[0] == 1
            else None
        )
        row["method"] = how
        rows.append(row)
    if grey_t is not None:
        rows[1]["name"] = f"grey threshold (<= {grey_t})"
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(rows, indent=1))
        with open(out / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        with h5py.File(out / "segmentation.h5", "w") as f:
            f.create_dataset("main", data=segs["model"], compression="gzip")
    return rows
