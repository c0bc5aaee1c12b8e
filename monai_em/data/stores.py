"""Chunked stores as volumes: zarr v2 / v3 / sharded v3 and OME-Zarr via zarr-python; N5 and
neuroglancer precomputed via tensorstore; local paths or URLs (``file://``, ``http(s)://``, and the
object stores fsspec / tensorstore know, e.g. ``s3://``, ``gs://``).

Why two libraries: zarr-python reads every zarr flavour and survives ``fork()`` (MONAI's DataLoader
workers fork); it cannot read N5 or precomputed, so those go through tensorstore. Tensorstore
aborts a forked child once the parent has used it, so a process forked from a tensorstore user
reads through a helper process (see :mod:`monai_em.data.ts_worker`); the choice is automatic.

Axis orders: volumes are ``(..., Z, Y, X)``. N5 and precomputed list their dimensions, voxel sizes
and offsets x-first (``x, y, z[, channel]``); they are reversed here. ``voxel_size`` and ``offset``
are ``(z, y, x)`` in ``unit``, ``offset`` being the physical position of voxel ``(0, 0, 0)``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import numpy as np
import zarr

from . import ts_worker
from .ome_zarr import axis_dicts, level_path, multiscale_of, ngff_transform
from .volume import Box, normalize_unit, parse_geometry, read_reflected

__all__ = ["TensorStoreVolume", "ZarrVolume", "is_store", "open_store", "store_kind"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PREFIXES = {
    "precomputed://": "precomputed",
    "n5://": "n5",
    "zarr://": "zarr",
    "zarr2://": "zarr",
    "zarr3://": "zarr",
}
_ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def is_url(source) -> bool:
    return isinstance(source, str) and bool(_URL.match(source))


def _join(location: str, *parts: str) -> str:
    parts = [p.strip("/") for p in parts if p]
    if not parts:
        return location
    return (
        location.rstrip("/") + "/" + "/".join(parts) if is_url(location) else os.path.join(location, *parts)
    )


def _read_json(location: str, name: str) -> dict | None:
    """The JSON file ``name`` under ``location`` (path or URL), or None when there is none.

    HTTP 403 counts as absent too: object stores answer it for missing keys of unlisted buckets.
    """
    import fsspec

    try:
        with fsspec.open(_join(location, name), "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except json.JSONDecodeError as e:
        raise ValueError(f"{_join(location, name)} is not valid JSON: {e}") from e
    except Exception as e:
        if getattr(e, "status", None) in (403, 404):  # aiohttp.ClientResponseError
            return None
        raise


def is_store(source) -> bool:
    """True for a URL, a ``precomputed://``-style prefix, or a local folder holding a zarr / N5 / precomputed volume."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    if is_url(os.fspath(source)):
        return True
    path = Path(source)
    if path.name.lower().endswith((".zarr", ".n5")):
        return True
    return path.is_dir() and any((path / m).exists() for m in (*_ZARR_MARKERS, "attributes.json", "info"))


def store_kind(location: str) -> tuple[str, str]:
    """``(kind, location)``: ``kind`` is ``"zarr"``, ``"n5"`` or ``"precomputed"``; a neuroglancer-style
    prefix (``precomputed://https://...``) names it and is removed, otherwise the files present tell."""
    for prefix, kind in _PREFIXES.items():
        if location.startswith(prefix):
            return kind, location[len(prefix) :]
    if _read_json(location, "info") is not None:
        return "precomputed", location
    if any(_read_json(location, m) is not None for m in _ZARR_MARKERS):
        return "zarr", location
    if location.rstrip("/").lower().endswith(".n5") or _read_json(location, "attributes.json") is not None:
        return "n5", location
    return "zarr", location


def open_store(location, dataset: str | None = None, level: int | None = None, isolate: bool | None = None):
    """A zarr / OME-Zarr / N5 / precomputed volume at ``location`` (path or URL) as a VolumeSource.

    Args:
        location: folder or URL of the store (an OME-Zarr image, a zarr array or group, an N5
            container or dataset, a precomputed volume with its ``info``).
        dataset: array inside a zarr group or N5 container (e.g. ``"volumes/raw"``, ``"s0"``), or
            the scale ``key`` of a precomputed volume.
        level: pyramid level (0 = finest) of an OME-Zarr image, an N5 ``s0..sN`` container or a
            precomputed volume's ``scales``.
        isolate: tensorstore formats only: True reads through a helper process always, False never,
            None (default) only in a process forked from one that used tensorstore.
    """
    location = os.fspath(location)
    kind, location = store_kind(location)
    if kind == "zarr":
        return ZarrVolume(location, dataset, level)
    return TensorStoreVolume(location, kind, dataset, level, isolate)


class _Geometry:
    """``voxel_size``, ``offset`` (``(z, y, x)``, in ``unit``) and the volume's ``read``."""

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    unit: str | None = None

    def _read_inside(self, box: Box) -> np.ndarray:
        raise NotImplementedError

    def read(self, box) -> np.ndarray:
        """The ``(..., z, y, x)`` voxels of ``box``; outside parts mirror-padded."""
        return read_reflected(self._read_inside, box, self.shape)


class ZarrVolume(_Geometry):
    """A zarr array (v2, v3, sharded v3), or one level of an OME-Zarr image, read box by box.

    Voxel size, offset and unit come from the NGFF metadata (OME-Zarr), else from the array's
    ``resolution`` (or ``voxel_size``), ``offset`` and ``unit`` attributes, ``(z, y, x)``.
    The array is reopened in each process (cheap: metadata only), so the volume pickles and forks.
    """

    def __init__(self, location: str, dataset: str | None = None, level: int | None = None):
        self.location = location
        try:
            # the format from the marker file: zarr's own probing of both fails on an HTTP 403
            self.zarr_format = 3 if _read_json(location, "zarr.json") is not None else 2
            node = zarr.open(location, mode="r", zarr_format=self.zarr_format)
        except (FileNotFoundError, zarr.errors.NodeTypeValidationError) as e:
            raise FileNotFoundError(f"no zarr array or group at {location}") from e
        except Exception as e:  # noqa: BLE001  zarr / fsspec raise many kinds for a missing or bad store
            raise ValueError(f"cannot open {location} as zarr: {type(e).__name__}: {e}") from e
        path, where = "", location
        if dataset is not None:
            try:
                node = node[dataset] if isinstance(node, zarr.Group) else None
            except KeyError:
                node = None
            if node is None:
                raise ValueError(f"{location} has no array or group {dataset!r}{self._listing(location)}")
            path, where = dataset, _join(location, dataset)
        if isinstance(node, zarr.Group):
            try:
                ms = multiscale_of(node, where)
            except ValueError as e:  # a plain group: the listing helps name the array
                raise ValueError(
                    f"{e}; name an array of the group with dataset=...{self._listing(where)}"
                ) from None
            k = 0 if level is None else int(level)
            level_name = level_path(ms, k, where)
            names = [a["name"] for a in axis_dicts(ms)]
            if names[-3:] != ["z", "y", "x"]:
                raise ValueError(f"{where}: OME-Zarr axes {names} must end with z, y, x")
            self.voxel_size, self.offset, self.unit = ngff_transform(ms, k, where)
            path = _join(path, level_name) if path else level_name
            node = node[level_name]
        else:
            if level not in (None, 0):
                raise ValueError(f"{where} is a single zarr array: it has no level {level}")
            self.voxel_size, self.offset, self.unit = parse_geometry(node.attrs.asdict(), where)
        if node.ndim < 3:
            raise ValueError(f"{where}: a volume needs (Z, Y, X) axes, got shape {node.shape}")
        self.path = path
        self.full_shape = tuple(int(s) for s in node.shape)
        self.shape = self.full_shape[-3:]
        self.dtype = np.dtype(node.dtype)
        self.chunks = tuple(int(c) for c in node.chunks)
        self._array, self._pid = node, os.getpid()

    def _listing(self, location: str) -> str:
        try:
            group = zarr.open_group(location, mode="r", zarr_format=self.zarr_format)
            return f"; it holds {sorted(k for k, _ in group.members(max_depth=None))}"
        except Exception:  # noqa: BLE001  listing is a courtesy (http stores may not list)
            return ""

    def _array_here(self):
        if self._array is None or self._pid != os.getpid():
            self._array = zarr.open_array(
                self.location, path=self.path or None, mode="r", zarr_format=self.zarr_format
            )
            self._pid = os.getpid()
        return self._array

    def _read_inside(self, box: Box) -> np.ndarray:
        return np.asarray(self._array_here()[(Ellipsis,) + tuple(slice(a, b) for a, b in box)])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None, "_pid": None}

    def __repr__(self) -> str:
        where = _join(self.location, self.path) if self.path else self.location
        return (
            f"ZarrVolume({where}, shape={self.full_shape}, dtype={self.dtype}, voxel_size={self.voxel_size})"
        )


# tensorstore ------------------------------------------------------------------------------------
_ts_state = {"user_pid": None, "helper": None, "helper_pid": None}
_ts_lock = threading.Lock()


class _Helper:
    """A ``python -P ts_worker.py`` process answering read requests over its stdin/stdout."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-P", ts_worker.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.lock = threading.Lock()
        weakref.finalize(self, _stop_helper, self.proc, os.getpid())

    def read(self, spec: dict, ranges, where: str) -> np.ndarray:
        with self.lock:
            try:
                pickle.dump((spec, ranges), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
                status, value = pickle.load(self.proc.stdout)
            except (EOFError, BrokenPipeError, OSError) as e:
                raise RuntimeError(
                    f"the tensorstore helper process reading {where} stopped (exit code {self.proc.poll()})"
                ) from e
        if status != "ok":
            raise ValueError(f"reading {where} failed: {value}")
        return value


def _stop_helper(proc: subprocess.Popen, owner: int) -> None:
    """End of input: the helper returns; only its owner process closes it (not a forked copy)."""
    if os.getpid() != owner:
        return
    for f in (proc.stdin, proc.stdout):
        f.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _ts_read(spec: dict, ranges, where: str, isolate: bool | None) -> np.ndarray:
    """Read in this process unless a parent process used tensorstore (or ``isolate`` says otherwise)."""
    pid = os.getpid()
    with _ts_lock:
        if isolate is None:
            if _ts_state["user_pid"] is None:
                _ts_state["user_pid"] = pid
            isolate = _ts_state["user_pid"] != pid
        if isolate and _ts_state["helper_pid"] != pid:
            _ts_state.update(helper=_Helper(), helper_pid=pid)
    if isolate:
        return _ts_state["helper"].read(spec, ranges, where)
    try:
        return ts_worker.read_ranges(spec, ranges)
    except Exception as e:  # noqa: BLE001  tensorstore's errors do not name the store
        raise ValueError(f"reading {where} failed: {type(e).__name__}: {e}") from e


def _kvstore(location: str) -> str:
    url = location if is_url(location) else Path(location).resolve().as_uri()
    return url.rstrip("/") + "/"


class TensorStoreVolume(_Geometry):
    """An N5 dataset or a neuroglancer precomputed volume (one scale), read box by box with tensorstore.

    Metadata (shape, dtype, voxel size, offset) is read from the JSON files directly, so building
    the volume does not touch tensorstore. N5: ``resolution`` / ``pixelResolution`` / ``offset`` /
    ``units`` attributes (x-first), or a ``transform`` with named axes. Precomputed: the scale's
    ``resolution`` (nanometers) and ``voxel_offset``; reads start at ``voxel_offset``, so voxel
    ``(0, 0, 0)`` is the first stored one and ``offset = voxel_offset * resolution``.
    """

    def __init__(
        self,
        location: str,
        driver: str,
        dataset: str | None = None,
        level: int | None = None,
        isolate: bool | None = None,
    ):
        self.location, self.isolate, self.kind = location, isolate, driver
        if driver == "n5":
            self._init_n5(location, dataset, level)
        elif driver == "precomputed":
            self._init_precomputed(location, dataset, level)
        else:
            raise ValueError(f"unknown tensorstore format {driver!r} for {location}")
        self.shape = self.full_shape[-3:]

    def _init_n5(self, location, dataset, level) -> None:
        base = _join(location, dataset) if dataset else location
        attrs = _read_json(base, "attributes.json")
        if attrs is None:
            raise FileNotFoundError(f"no N5 attributes.json at {base}")
        if "dimensions" not in attrs:  # a multiscale group: s0, s1, ...
            name = f"s{0 if level is None else int(level)}"
            sub = _read_json(_join(base, name), "attributes.json")
            if sub is None or "dimensions" not in sub:
                raise ValueError(f"{base} is an N5 group without dataset {name!r}: name one with dataset=...")
            base, attrs = _join(base, name), sub
        elif level not in (None, 0):
            raise ValueError(f"{base} is a single N5 dataset: it has no level {level}")
        dims = [int(d) for d in attrs["dimensions"]]
        if len(dims) < 3:
            raise ValueError(f"{base}: a volume needs (Z, Y, X) axes, got N5 dimensions {dims}")
        self.where = base
        self.full_shape = tuple(dims[::-1])
        self.dtype = np.dtype(attrs["dataType"])
        self._origin = [0] * len(dims)
        self._spec = {"driver": "n5", "kvstore": _kvstore(base)}
        transform = attrs.get("transform")
        if isinstance(transform, dict) and "axes" in transform:  # named axes (COSEM style)
            order = [transform["axes"].index(a) for a in ("z", "y", "x")]
            self.voxel_size = tuple(float(transform["scale"][i]) for i in order)
            self.offset = tuple(float(transform.get("translate", [0] * 3)[i]) for i in order)
            self.unit = normalize_unit((transform.get("units") or [None])[0])
            return
        pixel = attrs.get("pixelResolution") if isinstance(attrs.get("pixelResolution"), dict) else {}
        self.voxel_size, self.offset, self.unit = parse_geometry(
            {"resolution": pixel.get("dimensions"), "unit": pixel.get("unit"), **attrs}, base, x_first=True
        )

    def _init_precomputed(self, location, dataset, level) -> None:
        info = _read_json(location, "info")
        if info is None:
            raise FileNotFoundError(f"no neuroglancer precomputed info file at {location}")
        scales = info.get("scales") or []
        keys = [s.get("key") for s in scales]
        if dataset is not None:
            if dataset not in keys:
                raise ValueError(f"{location} has no scale {dataset!r}; scales: {keys}")
            k = keys.index(dataset)
        else:
            k = 0 if level is None else int(level)
            if not 0 <= k < len(scales):
                raise ValueError(f"{location} has scales 0..{len(scales) - 1} ({keys}), got level={level}")
        scale = scales[k]
        self.where = f"{location} (scale {scale.get('key')})"
        self.channels = int(info.get("num_channels", 1))
        size = [int(s) for s in scale["size"]]
        self.full_shape = ((self.channels,) if self.channels > 1 else ()) + tuple(size[::-1])
        self.dtype = np.dtype(info["data_type"])
        res = [float(r) for r in scale["resolution"]][::-1]
        vox = [int(v) for v in scale.get("voxel_offset", [0, 0, 0])]
        self.voxel_size = tuple(res)
        self.offset = tuple(float(v) * r for v, r in zip(vox[::-1], res, strict=True))
        self.unit = "nanometer"
        self._origin = vox + [0]
        self._spec = {"driver": "neuroglancer_precomputed", "kvstore": _kvstore(location), "scale_index": k}

    def _read_inside(self, box: Box) -> np.ndarray:
        # store order is x, y, z[, channel]: reverse the box, shift by the stored origin
        ranges = [(a + o, b + o) for (a, b), o in zip(box[::-1], self._origin, strict=False)]
        data = _ts_read(self._spec, ranges, self.where, self.isolate)
        data = np.transpose(data)  # -> ([channel,] z, y, x)
        if self.kind == "precomputed" and self.channels == 1:
            data = data[0]
        return np.ascontiguousarray(data)

    def __repr__(self) -> str:
        return (
            f"TensorStoreVolume({self.where}, {self.kind}, shape={self.full_shape}, dtype={self.dtype}, "
            f"voxel_size={self.voxel_size})"
        )
