"""Volumes in every chunked format, each written by its own library, plus a loopback HTTP server."""

from __future__ import annotations

import functools
import json
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import zarr

VOXEL_SIZE = (40.0, 8.0, 4.0)  # (z, y, x), nanometers
OFFSET = (80.0, 16.0, 12.0)  # (z, y, x), nanometers: voxel (2, 2, 3)
FORMATS = ("zarr2", "zarr3", "zarr3_sharded", "ome_zarr_04", "ome_zarr_05", "n5", "precomputed")


def sample_volume(shape=(9, 21, 26), dtype=np.uint16) -> np.ndarray:
    """Distinct values everywhere, so any misplaced voxel shows."""
    return np.random.default_rng(7).permutation(int(np.prod(shape))).reshape(shape).astype(dtype)


def write_format(kind: str, root: Path, data: np.ndarray) -> str:
    """Write ``data`` ``(Z, Y, X)`` as ``kind`` under ``root``; returns its folder name."""
    name = f"vol_{kind}" + {"n5": ".n5", "precomputed": ""}.get(kind, ".zarr")
    path = root / name
    zyx_attrs = {"resolution": list(VOXEL_SIZE), "offset": list(OFFSET), "unit": "nanometer"}
    if kind in ("zarr2", "zarr3", "zarr3_sharded"):
        zarr.create_array(
            str(path),
            data=data,
            chunks=(4, 8, 8),
            shards=(4, 16, 16) if kind == "zarr3_sharded" else None,
            zarr_format=2 if kind == "zarr2" else 3,
            attributes=zyx_attrs,
        )
    elif kind in ("ome_zarr_04", "ome_zarr_05"):
        from ome_zarr.format import FormatV04, FormatV05
        from ome_zarr.writer import write_multiscale

        fmt = FormatV04() if kind == "ome_zarr_04" else FormatV05()
        group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
        pyramid = [data, data[:, ::2, ::2]]
        transforms = [
            [
                {"type": "scale", "scale": list(VOXEL_SIZE)},
                {"type": "translation", "translation": list(OFFSET)},
            ],
            [
                {"type": "scale", "scale": [VOXEL_SIZE[0], VOXEL_SIZE[1] * 2, VOXEL_SIZE[2] * 2]},
                {"type": "translation", "translation": list(OFFSET)},
            ],
        ]
        write_multiscale(
            pyramid,
            group,
            fmt=fmt,
            axes=[{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"],
            coordinate_transformations=transforms,
            storage_options={"chunks": (4, 8, 8)},
        )
    elif kind == "n5":
        import tensorstore as ts

        store = ts.open(
            {
                "driver": "n5",
                "kvstore": {"driver": "file", "path": str(path)},
                "metadata": {
                    "dimensions": list(data.shape[::-1]),  # N5 lists x first
                    "blockSize": [8, 8, 4],
                    "dataType": str(data.dtype),
                    "compression": {"type": "gzip"},
                },
            },
            create=True,
        ).result()
        store[...] = data.T  # tensorstore's N5 axes are (x, y, z)
        attrs = json.loads((path / "attributes.json").read_text())
        attrs.update(resolution=list(VOXEL_SIZE[::-1]), offset=list(OFFSET[::-1]), units=["nm"] * 3)
        (path / "attributes.json").write_text(json.dumps(attrs))
    elif kind == "precomputed":
        import tensorstore as ts

        voxel_offset = [round(o / v) for o, v in zip(OFFSET[::-1], VOXEL_SIZE[::-1], strict=True)]
        store = ts.open(
            {
                "driver": "neuroglancer_precomputed",
                "kvstore": {"driver": "file", "path": str(path)},
                "multiscale_metadata": {"type": "image", "data_type": str(data.dtype), "num_channels": 1},
                "scale_metadata": {
                    "size": list(data.shape[::-1]),
                    "resolution": list(VOXEL_SIZE[::-1]),
                    "voxel_offset": voxel_offset,
                    "chunk_size": [8, 8, 4],
                    "encoding": "raw",
                },
            },
            create=True,
        ).result()
        store.translate_to[0][...] = data.T[..., None]  # (x, y, z, channel) from voxel_offset on
    else:
        raise ValueError(kind)
    return name


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with HTTP ``Range`` support (sharded zarr reads byte ranges, as from S3 or GCS)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        spec = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        if not spec.startswith("bytes=") or not path.is_file():
            return super().do_GET()
        blob = path.read_bytes()
        start, _, stop = spec[len("bytes=") :].partition("-")
        if start == "":  # suffix range: the last `stop` bytes
            first, last = max(0, len(blob) - int(stop)), len(blob) - 1
        else:
            first, last = int(start), min(int(stop) if stop else len(blob) - 1, len(blob) - 1)
        part = blob[first : last + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(blob)}")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part)


@contextmanager
def serve_folder(root: Path):
    """``http://127.0.0.1:<port>`` serving ``root`` from a thread, for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
