"""Chunked, resumable sliding-window inference of volumes too large for memory, and the stitch step.

Each inference chunk (a cell of ``chunk_num``, enlarged by ``pad_size`` of mirrored context) is
read from a :class:`~monai_em.data.volume.VolumeSource`, predicted window by window, cropped back
and written to ``<output_dir>/<z0-z1-y0-y1-x0-x1>.h5`` (dataset ``"main"``) via a temporary file
and an atomic rename. Each file carries a fingerprint of the network weights and the settings
that change outputs; a rerun skips a chunk only when its file exists with the same fingerprint.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from ..data.atomic import remove_leftovers, write_atomically
from ..data.chunks import (
    Block,
    check_pad,
    chunk_box,
    chunk_boxes,
    chunk_grid,
    resolve_rank_world,
    split_rank_world,
)
from ..data.ome_zarr import open_ome_zarr
from ..data.sources import open_volume
from .backends import BACKENDS, run_blocks
from .blockwise import BlockJob, prediction_job
from .settings import WindowSettings
from .window import named_error
from .writers import (
    CHUNK_DATASET,
    FINGERPRINT_ATTR,
    chunk_path,
    fingerprint_attr,
    fingerprint_of,
    network_digest,
    read_fingerprint,
)
from .writers import write_chunk_file as _write_chunk

__all__ = [
    "CHUNK_DATASET",
    "ChunkedInference",
    "chunk_path",
    "network_digest",
    "predict_chunks",
    "read_fingerprint",
    "save_sections",
    "stitch_chunks",
]

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("hdf5", "ome-zarr")
DEFAULT_OUTPUT_CHUNKS = (64, 256, 256)


class ChunkedInference:
    """Resumable chunked sliding-window inference of a large ``(Z, Y, X)`` volume (PyTC tiled inference).

    Peak memory is one padded chunk (input, blended float32 output and its weight map), never the
    volume: chunks are predicted one at a time and written to disk, and :meth:`stitch` copies them
    into the output HDF5 chunk by chunk. Each chunk file holds a :meth:`fingerprint` of the network
    weights and the output-changing settings; a rerun skips only chunks whose fingerprint matches and
    recomputes the others (with a warning). Chunks are split between processes with ``rank`` /
    ``world_size`` (contiguous shares, as PyTC's ``rank-world``; see :meth:`predict`).

    Args:
        network: torch module (or callable) mapping ``(B, C, *roi)`` windows to ``(B, C', *roi)``;
            put it in eval mode first (it is called under ``torch.no_grad`` but not switched).
        roi_size: window size ``(z, y, x)``, or ``(y, x)`` with ``spatial_dims=2``.
        output_dir: folder of the chunk files; also holds the stitched output by default.
        chunk_num: inference chunk grid ``[nz, ny, nx]`` (disjoint chunks covering the volume).
        pad_size: mirrored context added around each chunk per side, int or ``(z, y, x)``; use at
            least half the window (or the network's receptive radius) so chunk borders match a
            whole-volume prediction. Chunks (plus pad) smaller than a window are enlarged to it.
            An int with ``spatial_dims=2`` pads y and x only.
        overlap: window overlap fraction, float or per axis (e.g. ``(0.5, 0.25, 0.25)``, anisotropy).
        mode: window blending, ``"gaussian"`` (default) or ``"constant"``.
        sigma_scale: Gaussian sigma as a fraction of the window size, float or per axis.
        sw_batch_size: windows per network call.
        spatial_dims: 3 for a 3D network; 2 for a 2D network run section by section (windows
            ``(1, H, W)``; the output is still ``(C, Z, Y, X)``; a 2D affinity model gives 2 channels).
        activation: ``None``, ``"sigmoid"``, ``"softmax"`` or ``"tanh"`` on each window's output.
        tta: optional :class:`~monai_em.inference.tta.TestTimeFlips`.
        output_dtype: ``"uint8"`` (``round(255 * p)``, as PyTC; needs probabilities), ``"float16"``
            or ``"float32"``; used for the chunk files and the stitched volume.
        intensity_scale: ``"auto"`` (integer input divided by its dtype max), a factor (the input
            is multiplied by it and clipped to [0, 1], as training's ``1 / intensity_max``), or None.
        device: device of the windows (default: the network's); the blend buffer stays on the CPU.
        output_file: stitched HDF5 path (default ``<output_dir>/prediction.h5``).
        output_dataset: dataset name in ``output_file``.
        section_dir / section_ext: also save the stitched volume as one ``png``/``tif`` per section
            (``png`` needs ``output_dtype="uint8"``).
        compression: HDF5 compression of chunk and output files (e.g. ``"gzip"``), default none.
        rank / world_size: this process's share of chunks; default torch.distributed, else env
            ``RANK`` / ``WORLD_SIZE``, else 0 / 1.
        stitch: stitch after predicting (rank 0 only, once every chunk file exists with this fingerprint).
        progress: tqdm bar over chunks (with ETA) on stderr.
        input_dataset: HDF5 dataset name when the source is an HDF5 path.
        output_format: ``"hdf5"`` (chunk files, then the stitched file) or ``"ome-zarr"`` (blocks written
            straight into one OME-Zarr image :attr:`output_file`, default ``prediction.ome.zarr``; see
            :meth:`predict_blockwise`): blocks of ``ceil(shape / chunk_num)`` rounded up to whole output chunks.
        output_chunks: OME-Zarr chunk ``(z, y, x)``; default the block capped at ``(64, 256, 256)``.
        backend: ``"local"`` / ``"torch"`` (this process; ranks split the missing blocks), ``"dask"`` or
            ``"daisy"`` (OME-Zarr only; see :func:`~monai_em.inference.backends.run_blocks`).
        scheduler_address / client: the dask cluster (default: a ``LocalCluster`` for the run).
        resources: dask worker resources one block needs, e.g. ``{"GPU": 1}``.
        window_progress: also a tqdm bar over the windows inside each chunk or block (long blocks).

    Example:
        >>> infer = ChunkedInference(net, roi_size=(8, 64, 64), output_dir="pred", chunk_num=(2, 4, 4),
        ...                          pad_size=(4, 32, 32), activation="sigmoid")  # doctest: +SKIP
        >>> infer("volume.json")  # tile JSON, HDF5, npy, TIFF or a VolumeSource  # doctest: +SKIP
        PosixPath('pred/prediction.h5')
    """

    def __init__(
        self,
        network: Callable,
        roi_size: Sequence[int],
        output_dir: str | os.PathLike,
        chunk_num: Sequence[int] = (1, 1, 1),
        pad_size: int | Sequence[int] = 0,
        overlap: float | Sequence[float] = 0.5,
        mode: str = "gaussian",
        sigma_scale: float | Sequence[float] = 0.125,
        sw_batch_size: int = 1,
        spatial_dims: int = 3,
        activation: str | None = None,
        tta=None,
        output_dtype: str = "uint8",
        intensity_scale: float | str | None = "auto",
        device: str | None = None,
        output_file: str | os.PathLike | None = None,
        output_dataset: str = "main",
        section_dir: str | os.PathLike | None = None,
        section_ext: str = "png",
        compression: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        stitch: bool = True,
        progress: bool = True,
        input_dataset: str | None = None,
        output_format: str = "hdf5",
        output_chunks: Sequence[int] | None = None,
        backend: str = "local",
        scheduler_address: str | None = None,
        client=None,
        resources: dict | None = None,
        window_progress: bool = False,
    ):
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend in ("dask", "daisy") and output_format != "ome-zarr":
            raise ValueError(
                f"backend {backend!r} writes blocks into one OME-Zarr image: set output_format='ome-zarr'"
            )
        self.window = WindowSettings(
            roi_size, spatial_dims, overlap, mode, sigma_scale, sw_batch_size, activation, tta, output_dtype,
            intensity_scale, device, window_progress,
        )  # fmt: skip
        self.predictor = self.window.predictor(network)
        self.chunk_num = [int(n) for n in chunk_num]
        self.n_chunks = chunk_grid(self.chunk_num)
        self.pad_size = check_pad(pad_size)
        if spatial_dims == 2 and np.ndim(pad_size) == 0:
            self.pad_size = (0, *self.pad_size[1:])  # a 2D network needs no context across sections
        if section_ext not in ("png", "tif", "tiff"):
            raise ValueError(f"section_ext must be 'png' or 'tif', got {section_ext!r}")
        if section_dir is not None and section_ext == "png" and output_dtype != "uint8":
            raise ValueError(f"section_ext 'png' needs output_dtype 'uint8', got {output_dtype!r}; use 'tif'")
        self.output_dtype = output_dtype
        self.output_dir = Path(output_dir)
        default_name = "prediction.h5" if output_format == "hdf5" else "prediction.ome.zarr"
        self.output_file = Path(output_file) if output_file is not None else self.output_dir / default_name
        self.output_format, self.output_chunks = output_format, output_chunks
        self.backend, self.scheduler_address, self.client = backend, scheduler_address, client
        self.resources = resources
        self.output_dataset, self.compression = output_dataset, compression
        self.section_dir, self.section_ext = section_dir, section_ext
        self.rank, self.world_size = resolve_rank_world(rank, world_size)
        self.do_stitch, self.progress, self.input_dataset = stitch, progress, input_dataset

    def settings(self) -> dict:
        """The settings that change the chunk files' contents (part of the fingerprint)."""
        return {**self.window.as_dict(), "pad_size": list(self.pad_size), "chunk_num": list(self.chunk_num)}

    def fingerprint(self) -> str:
        """SHA-1 of the network's weights (:func:`network_digest`) and :meth:`settings`, stored in each chunk file."""
        return fingerprint_of(self.predictor.network, self.settings())

    def chunk_block(self, shape: Sequence[int], chunk_id: int) -> Block:
        """Chunk ``chunk_id`` of a ``(Z, Y, X)`` volume as a block: write box = the chunk (the inference
        partition of ``chunk_num``), read box = chunk + ``pad_size``, enlarged to one window."""
        return Block.around(chunk_id, chunk_box(shape, self.chunk_num, chunk_id, train=False), self.pad_size,
                            self.window.roi)  # fmt: skip

    def missing_chunk_ids(self, shape: Sequence[int], fingerprint: str | None = None) -> list[int]:
        """Chunk ids of a ``(Z, Y, X)`` volume without a file holding ``fingerprint`` (default: :meth:`fingerprint`)."""
        fingerprint = self.fingerprint() if fingerprint is None else fingerprint
        return [
            i
            for i in range(self.n_chunks)
            if read_fingerprint(chunk_path(self.output_dir, self.chunk_block(shape, i).write_box))
            != fingerprint
        ]

    def chunk_ids(self, shape: Sequence[int] | None = None, fingerprint: str | None = None) -> list[int]:
        """This rank's chunk ids.

        With ``shape``: a contiguous share of :meth:`missing_chunk_ids` (every rank lists the same
        missing chunks when they list before any rank writes, so shares are disjoint and balanced).
        Without: a contiguous share of all chunk ids (the static ``rank-world`` split of independent jobs).
        """
        if shape is None:
            return list(split_rank_world(self.n_chunks, self.rank, self.world_size))
        missing = self.missing_chunk_ids(shape, fingerprint)
        return [missing[i] for i in split_rank_world(len(missing), self.rank, self.world_size)]

    def predict_chunk(self, source, chunk_id: int) -> np.ndarray:
        """Prediction ``(C', z, y, x)`` of one unpadded chunk, in ``output_dtype``."""
        block = self.chunk_block(source.shape, chunk_id)
        data = source.read(block.read_box)
        data = data[None] if data.ndim == 3 else data
        return self.window.predict(
            self.predictor, data, block.crop, f"chunk {block.name} of volume {source!r}"
        )

    def predict(self, source, fingerprint: str | None = None) -> list[Path]:
        """Predict this rank's chunks that have no file with the current fingerprint; returns the files written.

        Under ``torch.distributed`` (and with one process) the chunks still missing are listed first
        and split between ranks, and ranks meet at a barrier before anyone writes. Independent jobs
        (``rank``/``world_size`` without ``torch.distributed``) keep the static split of all chunk ids
        and skip finished ones, so jobs started at different times still cover every chunk once.
        """
        source = open_volume(source, dataset=self.input_dataset)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        fingerprint = self.fingerprint() if fingerprint is None else fingerprint  # once per run
        synced = _distributed() and self.world_size > 1
        if synced or self.world_size == 1:
            ids = self.chunk_ids(source.shape, fingerprint)
            if synced:
                torch.distributed.barrier()  # every rank has listed the missing chunks before any writes
        else:
            missing = set(self.missing_chunk_ids(source.shape, fingerprint))
            ids = [i for i in self.chunk_ids() if i in missing]
        paths = []
        bar = tqdm(ids, desc=f"chunks (rank {self.rank}/{self.world_size})", unit="chunk",
                   disable=not self.progress, file=sys.stderr)  # fmt: skip
        for chunk_id in bar:
            box = self.chunk_block(source.shape, chunk_id).write_box
            path = chunk_path(self.output_dir, box)
            if path.exists():
                logger.warning("chunk file %s was written by another network or other settings "
                               "(fingerprint %s, now %s): recomputing it",
                               path, read_fingerprint(path), fingerprint)  # fmt: skip
            remove_leftovers(path)  # a killed run's half-written temp file
            try:
                pred = self.predict_chunk(source, chunk_id)
            except Exception as e:
                raise named_error(e, f"predicting chunk {chunk_id} ({path.stem}) failed") from e
            _write_chunk(path, pred, box, self.compression, fingerprint)
            paths.append(path)
        return paths

    def stitch(self, shape: Sequence[int], fingerprint: str | None = None) -> Path:
        """Stitch all chunk files of a volume of ``(Z, Y, X)`` ``shape`` into :attr:`output_file`.

        Every chunk file must hold ``fingerprint`` (default: :meth:`fingerprint`, this network and settings).
        """
        out = stitch_chunks(
            self.output_dir, shape, self.chunk_num, self.output_file, self.output_dataset, self.compression,
            progress=self.progress, fingerprint=self.fingerprint() if fingerprint is None else fingerprint,
        )  # fmt: skip
        if self.section_dir is not None:
            save_sections(out, self.section_dir, self.section_ext, self.output_dataset)
        return out

    def __call__(self, source) -> Path | None:
        """Predict this rank's chunks, then (rank 0) stitch; returns the output file, or None.

        With ``output_format="ome-zarr"``: :meth:`predict_blockwise` instead.
        """
        if self.output_format == "ome-zarr":
            return self.predict_blockwise(source)
        source = open_volume(source, dataset=self.input_dataset)
        fingerprint = self.fingerprint()
        self.predict(source, fingerprint)
        if _distributed() and self.world_size > 1:
            torch.distributed.barrier()
        if not self.do_stitch or self.rank != 0:
            return None
        missing = self.missing_chunk_ids(source.shape, fingerprint)
        if missing:
            box = self.chunk_block(source.shape, missing[0]).write_box
            logger.warning("not stitching yet: %d chunk files missing or from another network/settings "
                           "(other ranks still running?), e.g. %s",
                           len(missing), chunk_path(self.output_dir, box))  # fmt: skip
            return None
        return self.stitch(source.shape, fingerprint)

    def blockwise_job(self, source) -> BlockJob:
        """The blockwise job of ``source``: blocks of ``ceil(shape / chunk_num)`` rounded up to whole output
        chunks (``output_chunks``, default the block capped at ``(64, 256, 256)``), halo ``pad_size``."""
        shape = open_volume(source, dataset=self.input_dataset).shape
        block = tuple(-(-s // n) for s, n in zip(shape, self.chunk_num, strict=True))
        chunks = self.output_chunks or tuple(
            min(b, c) for b, c in zip(block, DEFAULT_OUTPUT_CHUNKS, strict=True)
        )
        return prediction_job(self.predictor.network, source, self.output_file, self.window, chunks, block,
                              self.pad_size, self.input_dataset)  # fmt: skip

    def predict_blockwise(self, source) -> Path | None:
        """Predict the missing or stale blocks into the OME-Zarr :attr:`output_file` on :attr:`backend`;
        returns it when every block is done (``None`` on a rank whose peers may still be writing).

        ``source``: give a path when the backend runs blocks in other processes (each opens it).
        """
        job = self.blockwise_job(source)
        run_blocks(job, self.backend, client=self.client, scheduler_address=self.scheduler_address,
                   resources=self.resources, rank=self.rank, world_size=self.world_size,
                   progress=self.progress)  # fmt: skip
        if _distributed() and self.world_size > 1:
            torch.distributed.barrier()
        missing = job.missing()
        if missing:
            logger.warning("%s: %d of %d blocks not done yet (other ranks still running?)",
                           self.output_file, len(missing), len(job.plan))  # fmt: skip
            return None
        if self.section_dir is not None and self.rank == 0:
            save_sections(self.output_file, self.section_dir, self.section_ext)
        return self.output_file


def _distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def predict_chunks(network: Callable, source, output_dir, roi_size: Sequence[int], **kwargs) -> list[Path]:
    """Functional form of :meth:`ChunkedInference.predict` (no stitching); kwargs as for the class."""
    kwargs.setdefault("stitch", False)
    infer = ChunkedInference(network, roi_size, output_dir, **kwargs)
    return infer.predict(source)


def _missing_chunks(chunk_dir, shape, chunk_num) -> list[Path]:
    paths = [chunk_path(chunk_dir, box) for box in chunk_boxes(shape, chunk_num, train=False)]
    return [p for p in paths if not p.exists()]


def stitch_chunks(
    chunk_dir: str | os.PathLike,
    shape: Sequence[int],
    chunk_num: Sequence[int],
    output_file: str | os.PathLike,
    dataset: str = "main",
    compression: str | None = None,
    progress: bool = False,
    fingerprint: str | None = None,
) -> Path:
    """Copy every chunk file into one ``(C, Z, Y, X)`` HDF5 dataset, one chunk in memory at a time.

    The output is written to a temporary file and renamed when complete; its dataset keeps the
    chunks' fingerprint (attribute ``fingerprint``).

    Raises:
        FileNotFoundError: chunk files are missing (the message counts them and names the first).
        ValueError: a chunk file's shape, channels or dtype disagrees with the others, or the chunk
            files hold different fingerprints (written by different networks or settings), or one
            differs from ``fingerprint`` when given.
    """
    shape = tuple(int(s) for s in shape)
    missing = _missing_chunks(chunk_dir, shape, chunk_num)
    if missing:
        raise FileNotFoundError(
            f"cannot stitch: {len(missing)} chunk file(s) missing in {chunk_dir}, e.g. {missing[0].name}"
        )
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as out:
            ds = None
            ids = tqdm(
                range(chunk_grid(chunk_num)),
                desc="stitch",
                unit="chunk",
                disable=not progress,
                file=sys.stderr,
            )
            for chunk_id, box in zip(ids, chunk_boxes(shape, chunk_num, train=False), strict=True):
                path = chunk_path(chunk_dir, box)
                with h5py.File(path, "r") as h5:
                    data, found = h5[CHUNK_DATASET][()], fingerprint_attr(h5[CHUNK_DATASET])
                if chunk_id == 0:
                    first = (path, found)
                    if fingerprint is not None and found != fingerprint:
                        raise ValueError(f"chunk file {path} has fingerprint {found}, expected {fingerprint} "
                                         "(written by another network or settings): rerun the prediction")  # fmt: skip
                elif found != first[1]:
                    raise ValueError(f"cannot stitch chunk files of different networks or settings: {path} has "
                                     f"fingerprint {found}, {first[0]} has {first[1]}; rerun the prediction")  # fmt: skip
                want = tuple(b - a for a, b in box)
                if data.ndim != 4 or data.shape[1:] != want:
                    raise ValueError(f"chunk file {path} holds shape {data.shape}, expected (C, {want})")
                if ds is None:
                    ds = out.create_dataset(dataset, shape=(data.shape[0], *shape), dtype=data.dtype,
                                            compression=compression, chunks=True)  # fmt: skip
                    if found is not None:
                        ds.attrs[FINGERPRINT_ATTR] = found
                elif data.shape[0] != ds.shape[0] or data.dtype != ds.dtype:
                    raise ValueError(f"chunk file {path} has {data.shape[0]} channels of {data.dtype}, "
                                     f"other chunks {ds.shape[0]} of {ds.dtype}")  # fmt: skip
                ds[(slice(None), *(slice(a, b) for a, b in box))] = data

    write_atomically(output_file, write)
    return output_file


def save_sections(volume_file, folder, ext: str = "png", dataset: str = "main") -> list[Path]:
    """Write a stitched ``(C, Z, Y, X)`` volume (an HDF5 file's ``dataset``, or an OME-Zarr image's level 0)
    as one image per section, reading one section at a time.

    PNG needs uint8: 1 channel -> gray, 3 -> RGB, else one file per channel (``0000_c1.png``).
    TIFF (``tif``) takes uint8 or float: one page per channel.
    """
    from .streaming import save_image  # shared image writer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if Path(volume_file).is_dir():  # an OME-Zarr image
        ds = open_ome_zarr(volume_file)
        for z in range(ds.shape[1]):
            paths += save_image(ds[:, z], folder / f"{z:04d}.{ext}")
        return paths
    with h5py.File(volume_file, "r") as h5:
        ds = h5[dataset]
        for z in range(ds.shape[1]):
            paths += save_image(ds[:, z], folder / f"{z:04d}.{ext}")
    return paths
