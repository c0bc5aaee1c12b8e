"""What the bundles need around MONAI's engines: PyTC's learning-rate schedules and self-describing checkpoints.

A checkpoint written by ``bundles/em_segmentation/configs/train.yaml`` is a dict::

    {"model": state_dict, "network": {"class": "DynUNet", "args": {...}}, "train_settings": {...}}

so inference rebuilds the network from the file alone (:func:`build_network`, :func:`read_checkpoint`),
and fine-tuning (:func:`load_weights`) says which setting differs instead of a size-mismatch traceback.
A bare ``state_dict`` (older checkpoints, other tools) still loads: its network comes from the config.
"""

from __future__ import annotations

import bisect
import importlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .data.atomic import write_atomically
from .data.chunks import resolve_rank_world

__all__ = [
    "LRFactor",
    "Record",
    "build_network",
    "load_weights",
    "lr_schedule",
    "network_of",
    "read_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)
LR_SCHEDULERS = ("constant", "multistep", "cosine")


class LRFactor:
    """Learning-rate factor at iteration ``i`` (PyTC's ``WarmupMultiStepLR`` / ``WarmupCosineLR``).

    ``warmup(i) * base(i)``: a linear warmup from ``warmup_factor`` to 1 over ``warmup_iters``
    iterations, times ``1`` (constant), ``gamma ** (number of lr_steps <= i)`` (multistep) or
    ``0.5 * (1 + cos(pi * i / total_iters))`` (cosine, reaching 0 at ``total_iters``).

    Example:
        >>> f = LRFactor("multistep", total_iters=100, steps=[10, 20], gamma=0.1)
        >>> round(f(9), 6), round(f(10), 6), round(f(25), 6)
        (1.0, 0.1, 0.01)
    """

    def __init__(
        self,
        name: str = "constant",
        total_iters: int = 1,
        steps: Sequence[int] = (),
        gamma: float = 0.1,
        warmup_iters: int = 0,
        warmup_factor: float = 0.001,
    ):
        name = str(name).lower()
        if name not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}, got {name!r}")
        steps = [int(s) for s in steps or ()]
        if steps != sorted(steps) or any(s < 0 for s in steps):
            raise ValueError(f"lr_steps must be increasing iteration numbers >= 0, got {steps}")
        if int(total_iters) < 1 or int(warmup_iters) < 0 or gamma <= 0:
            raise ValueError(
                f"need total_iters >= 1, warmup_iters >= 0 and lr_gamma > 0, got total_iters={total_iters}, "
                f"warmup_iters={warmup_iters}, lr_gamma={gamma}"
            )
        self.name, self.total, self.steps = name, int(total_iters), steps
        self.gamma, self.warmup, self.warmup_factor = float(gamma), int(warmup_iters), float(warmup_factor)

    def __call__(self, i: int) -> float:
        warm = 1.0
        if i < self.warmup:
            alpha = i / self.warmup
            warm = self.warmup_factor * (1.0 - alpha) + alpha
        if self.name == "multistep":
            return warm * self.gamma ** bisect.bisect_right(self.steps, i)
        if self.name == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(i, self.total) / self.total))
        return warm


def lr_schedule(
    optimizer: torch.optim.Optimizer,
    name: str = "constant",
    total_iters: int = 1,
    steps: Sequence[int] = (),
    gamma: float = 0.1,
    warmup_iters: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration scheduler of ``optimizer`` following :class:`LRFactor` (step it every iteration,
    e.g. MONAI's ``LrScheduleHandler(epoch_level=False)``)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, LRFactor(name, total_iters, steps, gamma, warmup_iters)
    )


class Record:
    """Plain settings stored in a checkpoint next to the weights (an object with ``state_dict``, as
    MONAI's ``CheckpointSaver`` wants). Values must be numbers, strings, lists or dicts."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = _plain(data)

    def state_dict(self) -> dict:
        return dict(self.data)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.data = _plain(state)


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (the form a checkpoint round trip gives), for storing and comparing."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def build_network(spec: Mapping[str, Any]) -> torch.nn.Module:
    """The network ``{"class": name, "args": {...}}`` describes: a ``monai.networks.nets`` class name
    (``"DynUNet"``) or a dotted path (``"my_pkg.nets.Net"``), called with ``args``."""
    if not isinstance(spec, Mapping) or "class" not in spec:
        raise ValueError(f"a network spec is {{'class': name, 'args': {{...}}}}, got {spec!r}")
    name = str(spec["class"])
    module, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module or "monai.networks.nets"), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"network class {name!r} not found (a monai.networks.nets name or a dotted path)"
        ) from err
    return cls(**dict(spec.get("args") or {}))


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """``{"model": state_dict, "network": spec or None, "train_settings": dict or None}`` from ``path``
    (a self-describing checkpoint, or a bare ``state_dict``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {os.fspath(path)} not found")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("model"), Mapping):
        return {
            "model": ckpt["model"],
            "network": ckpt.get("network"),
            "train_settings": ckpt.get("train_settings"),
        }
    return {"model": ckpt, "network": None, "train_settings": None}


def network_of(path: str | os.PathLike) -> dict | None:
    """The network spec a checkpoint at ``path`` carries (``None``: no file, or a bare ``state_dict``)."""
    return read_checkpoint(path)["network"] if os.path.isfile(path) else None


def load_weights(network: torch.nn.Module, path: str | os.PathLike, spec: Mapping[str, Any] | None = None):
    """Load the weights of the checkpoint at ``path`` into ``network`` (a DDP wrapper's module too).

    Raises:
        ValueError: the checkpoint records a network other than ``spec`` (naming the differing settings).
    """
    ckpt = read_checkpoint(path)
    if spec is not None and ckpt["network"] is not None and _plain(ckpt["network"]) != _plain(spec):
        saved, wanted = _plain(ckpt["network"]), _plain(spec)
        diff = {
            k: (saved.get("args", {}).get(k), wanted.get("args", {}).get(k))
            for k in sorted(set(saved.get("args", {})) | set(wanted.get("args", {})))
            if saved.get("args", {}).get(k) != wanted.get("args", {}).get(k)
        }
        if saved.get("class") != wanted.get("class"):
            diff["class"] = (saved.get("class"), wanted.get("class"))
        raise ValueError(
            f"checkpoint {os.fspath(path)} holds another network than this config builds; "
            f"(checkpoint, config) per setting: {diff}"
        )
    target = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    target.load_state_dict(ckpt["model"])
    return network


def save_checkpoint(path: str | os.PathLike, contents: Mapping[str, Any], overwrite: bool = True) -> bool:
    """Write ``{name: obj.state_dict()}`` for ``contents`` to ``path`` (the layout MONAI's
    ``CheckpointSaver`` writes for several objects), atomically; True when it wrote.

    ``overwrite=False`` keeps a file already there: the end of a training run uses it so that the
    best-validation checkpoint always exists (the last weights, with a warning, when no validation
    ran: a time limit, ``val_sections: 0``). Under ``torch.distributed`` only rank 0 writes.
    """
    if os.path.isfile(path) and not overwrite:
        return False
    if resolve_rank_world(env=False)[0] != 0:
        return False
    state = {}
    for name, obj in contents.items():
        obj = obj.module if isinstance(obj, torch.nn.parallel.DistributedDataParallel) else obj
        state[name] = obj.state_dict()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(state, tmp))  # never a half-written checkpoint
    if not overwrite:
        logger.warning("no validation checkpoint was written: saved the last weights as %s", os.fspath(path))
    return True
