"""Convert a volume (tile JSON, HDF5, TIFF, a folder of section images, zarr, N5, ...) to OME-Zarr.

    python -m monai_em.convert SRC DST [--dataset volumes/raw] [--chunks 32 128 128] [--levels 3]

Block by block (memory bounded: one block of ``--block`` chunks in memory), with a progress bar.
Resumable: a block is marked done (an empty file under ``DST/.monai_em_convert/``) after its data is
written, and a rerun skips marked blocks; the markers are removed once every block is written.
The voxel size, offset and unit come from the source (override with ``--voxel-size`` etc.).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from .data.ome_zarr import (
    create_ome_labels,
    create_ome_zarr,
    open_ome_zarr,
    read_ngff_transform,
    write_pyramid,
)
from .data.sources import open_volume
from .data.stores import is_store
from .data.tile_format import write_tile_json
from .data.volume import geometry

__all__ = ["convert", "main"]

MARKERS = ".monai_em_convert"
STATE_ATTR = "monai_em_convert"


def _open_source(src, dataset: str | None, level: int | None, role: str, tmp: str):
    """A VolumeSource for ``src``; a folder of section images gets a tile JSON in ``tmp``."""
    if isinstance(src, (str, os.PathLike)) and Path(src).is_dir() and not is_store(src):
        src = write_tile_json(src, Path(tmp) / "volume.json")
    return open_volume(src, role=role, dataset=dataset, level=level, strict=True)


def _blocks(shape: Sequence[int], block: Sequence[int]):
    """Boxes of a grid of ``block`` over ``shape`` (``(Z, Y, X)``), the last ones clipped."""
    ranges = [range(0, n, b) for n, b in zip(shape, block, strict=True)]
    for start in itertools.product(*ranges):
        yield tuple((a, min(a + b, n)) for a, b, n in zip(start, block, shape, strict=True))


def convert(
    src,
    dst,
    *,
    dataset: str | None = None,
    level: int | None = None,
    chunks: Sequence[int] = (32, 128, 128),
    block: Sequence[int] = (1, 4, 4),
    voxel_size: Sequence[float] | None = None,
    offset: Sequence[float] | None = None,
    unit: str | None = None,
    ngff_version: str = "0.5",
    shards: Sequence[int] | None = None,
    levels: int = 0,
    label_name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> zarr.Array:
    """Copy a volume into an OME-Zarr image (or, with ``label_name``, into ``dst/labels/<label_name>``).

    Args:
        src: anything :func:`~monai_em.data.sources.open_volume` opens, or a folder of section images.
        dst: the OME-Zarr image to write (with ``label_name``: an existing image to add labels to).
        dataset, level: which array of ``src`` (HDF5 dataset, zarr/N5 array, pyramid level).
        chunks: output chunks ``(z, y, x)``.
        block: chunks per block ``(z, y, x)``: the unit read, written and marked done.
        voxel_size, offset, unit: override what the source says.
        ngff_version, shards: see :func:`~monai_em.data.ome_zarr.create_ome_zarr`.
        levels: add this many y/x-halved pyramid levels at the end.
        label_name: write an instance/semantic label image into the image ``dst``'s ``labels`` group.
        overwrite: start over even if ``dst`` exists (default: resume an unfinished conversion).
        progress: show a tqdm progress bar (stderr).

    Returns:
        the level-0 array written.

    Raises:
        ValueError: ``dst`` holds a different conversion (other shape, dtype or chunks) and
            ``overwrite`` is False.
    """
    with tempfile.TemporaryDirectory() as tmp:
        vol = _open_source(src, dataset, level, "image" if label_name is None else "label", tmp)
        full_shape = tuple(int(s) for s in getattr(vol, "full_shape", vol.shape))
        if len(full_shape) not in (3, 4):
            raise ValueError(f"{src}: can convert (Z, Y, X) or (C, Z, Y, X) volumes, got shape {full_shape}")
        src_vs, src_off, src_unit = geometry(vol)
        meta = {
            "voxel_size": src_vs if voxel_size is None else voxel_size,
            "offset": src_off if offset is None else offset,
            "unit": (src_unit or "nanometer") if unit is None else unit,
        }
        if label_name is not None:
            meta = _label_geometry(dst, meta, (voxel_size, offset, unit), (src_vs, src_off, src_unit), src)
        chunks = tuple(min(int(c), n) for c, n in zip(chunks, vol.shape, strict=True))
        step = tuple(int(c) * int(b) for c, b in zip(chunks, block, strict=True))
        state = {"source": str(src), "shape": list(full_shape), "dtype": str(vol.dtype), "chunks": list(chunks),
                 "block": list(step)}  # fmt: skip
        out, complete = _open_output(dst, label_name, full_shape, vol.dtype, chunks, meta, state,
                                            ngff_version, shards, overwrite)  # fmt: skip
        markers = _Markers(_level0_parent(dst, label_name))
        done = markers.done()
        todo = [] if complete else [b for b in _blocks(vol.shape, step) if _name(b) not in done]
        lead = (slice(None),) * (len(full_shape) - 3)
        for box in tqdm(todo, desc=f"convert -> {dst}", unit="block", disable=not progress, file=sys.stderr):
            data = np.asarray(vol.read(box))
            out[lead + tuple(slice(a, b) for a, b in box)] = data.reshape(out.shape[:-3] + data.shape[-3:])
            markers.mark(_name(box))
    if not complete:
        where = _level0_parent(dst, label_name)
        if levels:
            write_pyramid(where, int(levels), label=label_name is not None)
        # reopened: the pyramid rewrote the metadata this process holds for the group
        zarr.open_group(where, mode="r+").attrs[STATE_ATTR] = {**state, "complete": True}
        markers.clear()
    return out


def _label_geometry(image, meta: dict, given, source, src) -> dict:
    """Labels sit on their image's voxels: a source without geometry takes the image's; one that
    disagrees with it is refused."""
    img_vs, img_off, img_unit = read_ngff_transform(image)
    unknown = source == ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), None)
    vs = img_vs if given[0] is None and unknown else tuple(float(v) for v in meta["voxel_size"])
    off = img_off if given[1] is None and unknown else tuple(float(v) for v in meta["offset"])
    if not (np.allclose(vs, img_vs) and np.allclose(off, img_off)):
        raise ValueError(
            f"labels {src} have voxel size {vs} and offset {off} but the image {image} has {img_vs} and "
            f"{img_off}: give --voxel-size/--offset if the label file's metadata is wrong"
        )
    return {"voxel_size": vs, "offset": off, "unit": img_unit if given[2] is None else given[2]}


def _level0_parent(dst, label_name: str | None) -> str:
    loc = os.fspath(dst)
    return loc if label_name is None else f"{loc.rstrip('/')}/labels/{label_name}"


def _open_output(dst, label_name, shape, dtype, chunks, meta, state, ngff_version, shards, overwrite):
    """``(level-0 array, complete)``: new, or reopened to resume (or already complete)."""
    where = _level0_parent(dst, label_name)
    if not overwrite:
        try:
            group = zarr.open_group(where, mode="r+")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            group = None
        if group is not None:
            old = group.attrs.get(STATE_ATTR)
            same = old is not None and {k: old.get(k) for k in state if k != "source"} == {
                k: v for k, v in state.items() if k != "source"
            }
            if not same:
                raise ValueError(
                    f"{where} exists and is not an unfinished conversion of this volume "
                    f"(it records {old}, this one is {state}): pass overwrite=True (--overwrite) to replace it"
                )
            return open_ome_zarr(where, mode="r+"), bool(old.get("complete"))
    kwargs = dict(meta, shards=shards, overwrite=overwrite, attrs=None)
    if label_name is None:
        arr = create_ome_zarr(dst, shape, dtype, chunks, ngff_version=ngff_version, **kwargs)
    else:
        arr = create_ome_labels(dst, label_name, shape, dtype, chunks, **kwargs)
    zarr.open_group(where, mode="r+").attrs[STATE_ATTR] = {**state, "complete": False}
    return arr, False


def _name(box) -> str:
    return "_".join(f"{a}-{b}" for a, b in box)


class _Markers:
    """Per-block done-markers: empty files ``<image>/.monai_em_convert/<box>``, through fsspec."""

    def __init__(self, image: str):
        import fsspec

        self.fs, base = fsspec.core.url_to_fs(os.fspath(image))
        self.dir = f"{base.rstrip('/')}/{MARKERS}"

    def done(self) -> set[str]:
        if not self.fs.exists(self.dir):
            return set()
        return {Path(p).name for p in self.fs.ls(self.dir, detail=False)}

    def mark(self, name: str) -> None:
        self.fs.makedirs(self.dir, exist_ok=True)
        self.fs.touch(f"{self.dir}/{name}")

    def clear(self) -> None:
        if self.fs.exists(self.dir):
            self.fs.rm(self.dir, recursive=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m monai_em.convert",
        description="Convert a volume (tile JSON, HDF5, TIFF, folder of section images, zarr, N5, precomputed) "
        "to OME-Zarr, block by block, resumable.",
    )
    p.add_argument("src", help="source volume: file, folder or URL")
    p.add_argument("dst", help="OME-Zarr image to write (with --label: the image to add labels to)")
    p.add_argument("--dataset", help="HDF5 dataset / zarr or N5 array inside SRC")
    p.add_argument("--level", type=int, help="pyramid level of SRC (OME-Zarr, N5 s0..sN, precomputed)")
    p.add_argument("--chunks", type=int, nargs=3, default=(32, 128, 128), metavar=("Z", "Y", "X"))
    p.add_argument("--block", type=int, nargs=3, default=(1, 4, 4), metavar=("Z", "Y", "X"),
                   help="chunks per block (the unit read, written and marked done)")  # fmt: skip
    p.add_argument("--shards", type=int, nargs=3, metavar=("Z", "Y", "X"), help="shard shape (zarr v3 only)")
    p.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="override the source's")
    p.add_argument("--offset", type=float, nargs=3, metavar=("Z", "Y", "X"), help="override the source's")
    p.add_argument("--unit", help="spatial unit (default: the source's, else nanometer)")
    p.add_argument("--ngff-version", choices=("0.4", "0.5"), default="0.5")
    p.add_argument("--levels", type=int, default=0, help="y/x-halved pyramid levels to add")
    p.add_argument(
        "--label", metavar="NAME", help="write SRC as DST/labels/NAME (DST must be an OME-Zarr image)"
    )
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    convert(
        args.src,
        args.dst,
        dataset=args.dataset,
        level=args.level,
        chunks=args.chunks,
        block=args.block,
        voxel_size=args.voxel_size,
        offset=args.offset,
        unit=args.unit,
        ngff_version=args.ngff_version,
        shards=args.shards,
        levels=args.levels,
        label_name=args.label,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(args.dst if args.label is None else _level0_parent(args.dst, args.label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
