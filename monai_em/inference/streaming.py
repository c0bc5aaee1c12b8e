"""2D inference: image lists streamed one image at a time, and a 2D network over a volume, section by section."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.atomic import write_atomically
from ..data.chunks import centre_start, resolve_rank_world, split_rank_world
from ..data.readers import read_hdf5
from ..data.sources import open_volume
from ..data.volume import read_reflected
from .settings import WindowSettings
from .window import named_error

__all__ = [
    "ImageListInference",
    "load_image_2d",
    "predict_images",
    "predict_sections",
    "read_path_list",
    "save_image",
]

_OUT_EXTS = ("png", "tif", "tiff", "h5", "npy")
IMAGE_EXTS = ("png", "tif", "tiff", "jpg", "jpeg", "h5", "npy")


def read_path_list(source, relative_to: str | os.PathLike | None = None) -> list[str]:
    """Image paths from a text file (one per line), a glob pattern, a folder, one path, or a list of those.

    A folder expands to its image files (``IMAGE_EXTS``, any case), sorted by name. In a text file, blank lines and lines starting with ``#`` are skipped; relative lines resolve
    against the text file's folder (PyTC's ``IS_ABSOLUTE_PATH: False`` joined them to a base folder).
    A glob pattern expands sorted. Every path must exist (checked now, naming the first missing one);
    an empty list or text file raises ValueError.
    """
    if isinstance(source, (list, tuple)):
        paths = [p for item in source for p in read_path_list(item, relative_to)]
    else:
        text = os.fspath(source)
        path = text if relative_to is None or os.path.isabs(text) else os.path.join(relative_to, text)
        if os.path.isdir(path):
            paths = sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.rsplit(".", 1)[-1].lower() in IMAGE_EXTS and os.path.isfile(os.path.join(path, name))
            )
            if not paths:
                raise FileNotFoundError(f"folder {path} holds no image file ({', '.join(IMAGE_EXTS)})")
        elif text.endswith(".txt"):
            if not os.path.isfile(text):
                raise FileNotFoundError(f"path list not found: {text}")
            base = Path(text).resolve().parent
            with open(text) as f:
                lines = [ln.strip() for ln in f]
            paths = [
                str(base / ln) if not os.path.isabs(ln) else ln
                for ln in lines
                if ln and not ln.startswith("#")
            ]
        elif glob.has_magic(text):
            paths = sorted(glob.glob(text))
            if not paths:
                raise FileNotFoundError(f"glob pattern {text!r} matches no file")
        else:
            paths = [path]
    if not paths:
        raise ValueError(f"no image listed for inference in {source!r} (empty list or text file)")
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"image listed for inference not found: {p}")
    return paths


def load_image_2d(path: str | os.PathLike, rgb: str = "gray") -> np.ndarray:
    """One 2D image as ``(C, Y, X)``: gray -> 1 channel; RGB is one section, ``rgb="gray"`` -> luminance
    (1 channel), ``"channels"`` -> 3 channels. PNG/JPEG/TIFF via PIL, ``.h5`` (first dataset), ``.npy``."""
    if rgb not in ("gray", "channels"):
        raise ValueError(f"rgb must be 'gray' or 'channels', got {rgb!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        array = read_hdf5(path)
    elif suffix == ".npy":
        array = np.load(path)
    else:
        try:
            with Image.open(path) as img:
                if getattr(img, "n_frames", 1) > 1:
                    raise ValueError(
                        f"{path} has {img.n_frames} pages; a 2D image list needs one section per file"
                    )
                if img.mode in ("RGB", "RGBA", "P", "LA"):
                    img = img.convert("L") if rgb == "gray" else img.convert("RGB")
                array = np.asarray(img)
        except OSError as e:
            raise ValueError(f"cannot read image {path}: {e}") from e
    if array.ndim == 3 and array.shape[-1] in (3, 4) and suffix not in (".h5", ".hdf5", ".npy"):
        array = np.moveaxis(array, -1, 0)
    array = array[None] if array.ndim == 2 else array
    if array.ndim != 3:
        raise ValueError(f"{path}: a 2D image must be (Y, X) or (C, Y, X), got shape {array.shape}")
    return array


def save_image(array: np.ndarray, path: str | os.PathLike) -> list[Path]:
    """Save a ``(C, Y, X)`` prediction atomically (temp file + rename); returns the files written.

    ``.png``: uint8 only; 1 channel gray, 3 channels RGB, else one file per channel (``name_c1.png``).
    ``.tif``: uint8 or float; one page per channel. ``.h5`` (dataset ``main``) and ``.npy``: as is.
    """
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in _OUT_EXTS:
        raise ValueError(f"output extension must be one of {_OUT_EXTS}, got {path.name!r}")
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"save_image expects (C, Y, X), got shape {array.shape} for {path}")
    if ext == "png":
        if array.dtype != np.uint8:
            raise ValueError(
                f"PNG output needs uint8 (output_dtype='uint8'), got {array.dtype} for {path}; use tif/h5"
            )
        if array.shape[0] in (1, 3):
            items = [(path, array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1))]
        else:
            items = [
                (path.with_name(f"{path.stem}_c{c}{path.suffix}"), array[c]) for c in range(array.shape[0])
            ]
        for p, a in items[::-1]:  # channel 0 last: its file marks the image as done
            write_atomically(
                p, lambda tmp, a=a: Image.fromarray(np.ascontiguousarray(a)).save(tmp, format="PNG")
            )
        return [p for p, _ in items]
    if ext in ("tif", "tiff"):
        pages = [
            Image.fromarray(np.ascontiguousarray(a if a.dtype == np.uint8 else a.astype(np.float32)))
            for a in array
        ]
        write_atomically(
            path, lambda tmp: pages[0].save(tmp, format="TIFF", save_all=True, append_images=pages[1:])
        )
    elif ext == "h5":
        write_atomically(path, lambda tmp: _save_h5(tmp, array))
    else:
        write_atomically(path, lambda tmp: np.save(tmp, array))
    return [path]


def _save_h5(tmp: Path, array: np.ndarray) -> None:
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("main", data=array)


class ImageListInference:
    """Streamed 2D inference over a list of images (PyTC ``DO_SINGLY``): load, predict, save, one at a time.

    Memory is bounded by one image. Each input ``dir/name.ext`` gives ``output_dir/name{suffix}.{output_ext}``;
    an input whose output exists is skipped (resumable). Inputs are split between ranks as chunks are.

    Args:
        network: 2D torch module (or callable) mapping ``(B, C, H, W)`` to ``(B, C', H, W)``.
        roi_size: window ``(H, W)``.
        output_dir: folder of the outputs.
        overlap, mode, sigma_scale, sw_batch_size, activation, tta, output_dtype, intensity_scale,
            device, rank, world_size, progress: as for :class:`~monai_em.inference.chunked.ChunkedInference`.
        output_ext: ``"png"`` (uint8), ``"tif"``, ``"h5"`` or ``"npy"``.
        suffix: appended to each input's stem for its output name.
        rgb: ``"gray"`` (RGB images -> luminance, 1 channel) or ``"channels"`` (3 input channels).

    Example:
        >>> infer = ImageListInference(net, roi_size=(256, 256), output_dir="pred")  # doctest: +SKIP
        >>> infer("datasets/test_path.txt")  # doctest: +SKIP
    """

    def __init__(
        self,
        network: Callable,
        roi_size: Sequence[int],
        output_dir: str | os.PathLike,
        overlap: float | Sequence[float] = 0.5,
        mode: str = "gaussian",
        sigma_scale: float | Sequence[float] = 0.125,
        sw_batch_size: int = 1,
        activation: str | None = None,
        tta=None,
        output_dtype: str = "uint8",
        intensity_scale: float | str | None = "auto",
        device: str | None = None,
        output_ext: str = "png",
        suffix: str = "",
        rgb: str = "gray",
        rank: int | None = None,
        world_size: int | None = None,
        progress: bool = True,
    ):
        if output_ext not in _OUT_EXTS:
            raise ValueError(f"output_ext must be one of {_OUT_EXTS}, got {output_ext!r}")
        self.window = WindowSettings(
            roi_size, 2, overlap, mode, sigma_scale, sw_batch_size, activation, tta, output_dtype, intensity_scale,
            device,
        )  # fmt: skip
        if output_ext == "png" and output_dtype != "uint8":
            raise ValueError(f"output_ext 'png' needs output_dtype 'uint8', got {output_dtype!r}")
        if rgb not in ("gray", "channels"):
            raise ValueError(f"rgb must be 'gray' or 'channels', got {rgb!r}")
        self.roi = self.window.roi[1:]
        self.predictor = self.window.predictor(network)
        self.output_dir, self.output_ext, self.suffix, self.rgb = Path(output_dir), output_ext, suffix, rgb
        self.rank, self.world_size = resolve_rank_world(rank, world_size)
        self.progress = progress

    def output_path(self, image_path: str | os.PathLike) -> Path:
        """Output file of one input image."""
        return self.output_dir / f"{Path(image_path).stem}{self.suffix}.{self.output_ext}"

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """Prediction ``(C', Y, X)`` of one ``(C, Y, X)`` image, in ``output_dtype``."""
        shape = image.shape[1:]
        size = [max(r, s) for r, s in zip(self.roi, shape, strict=True)]  # at least one window, centred
        before = centre_start(size, shape)
        box = [(-b, n - b) for b, n in zip(before, size, strict=True)]
        padded = read_reflected(lambda b: image[(slice(None), *(slice(a, e) for a, e in b))], box, shape)
        crop = tuple(slice(b, b + s) for b, s in zip(before, shape, strict=True))
        return self.window.predict(self.predictor, padded, crop, "image")

    def __call__(self, images) -> list[Path]:
        """Predict every listed image without an output yet; returns this rank's output paths."""
        paths = read_path_list(images)
        outputs = [self.output_path(p) for p in paths]
        seen: dict[Path, str] = {}
        for p, o in zip(paths, outputs, strict=True):
            if o in seen:
                raise ValueError(
                    f"inputs {seen[o]} and {p} would both write {o}; rename one or use distinct lists"
                )
            seen[o] = p
        inputs = {Path(p).resolve(): p for p in paths}
        clash = next((o for o in outputs if o.resolve() in inputs), None)
        if clash is not None:
            raise ValueError(
                f"output {clash} would overwrite the input image {inputs[clash.resolve()]} (output_dir "
                f"{self.output_dir} is the input folder, suffix {self.suffix!r}); set a suffix such as '_pred' "
                "or another output_dir"
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        share = split_rank_world(len(paths), self.rank, self.world_size)
        done = []
        for i in tqdm(share, desc="images", unit="image", disable=not self.progress, file=sys.stderr):
            if not _is_done(outputs[i]):
                try:
                    pred = self.predict_image(load_image_2d(paths[i], self.rgb))
                except Exception as e:
                    raise named_error(e, f"predicting image {paths[i]} failed") from e
                done.extend(save_image(pred, outputs[i]))
            else:
                done.append(outputs[i])
        return done


def _is_done(path: Path) -> bool:
    """An image is done when its output exists (channel-split PNGs: channel 0's file, which is written last)."""
    return path.exists() or path.with_name(f"{path.stem}_c0{path.suffix}").exists()


def predict_images(network: Callable, images, output_dir, roi_size: Sequence[int], **kwargs) -> list[Path]:
    """Functional form of :class:`ImageListInference`: ``images`` is a txt list, a glob, a path or a list."""
    return ImageListInference(network, roi_size, output_dir, **kwargs)(images)


def predict_sections(
    network: Callable,
    volume,
    roi_size: Sequence[int],
    overlap: float | Sequence[float] = 0.5,
    mode: str = "gaussian",
    sigma_scale: float | Sequence[float] = 0.125,
    sw_batch_size: int = 1,
    activation: str | None = None,
    tta=None,
    output_dtype: str = "float32",
    intensity_scale: float | str | None = "auto",
    device: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """A 2D network over a volume, section by section, stacked to ``(C', Z, Y, X)`` in memory.

    For volumes that fit in memory; for larger ones use ``ChunkedInference(spatial_dims=2)``,
    which does the same per chunk. ``volume`` is anything :func:`~monai_em.data.sources.open_volume` accepts.
    """
    source = open_volume(volume)
    infer = ImageListInference(
        network, roi_size, ".", overlap=overlap, mode=mode, sigma_scale=sigma_scale, sw_batch_size=sw_batch_size,
        activation=activation, tta=tta, output_dtype=output_dtype, intensity_scale=intensity_scale, device=device,
        output_ext="npy", rank=0, world_size=1, progress=False,
    )  # fmt: skip
    out = None
    nz, ny, nx = source.shape
    for z in tqdm(range(nz), desc="sections", unit="section", disable=not progress, file=sys.stderr):
        section = source.read(((z, z + 1), (0, ny), (0, nx)))
        section = section[:, 0] if section.ndim == 4 else section  # (C, Y, X)
        pred = infer.predict_image(section)
        if out is None:
            out = np.empty((pred.shape[0], nz, ny, nx), dtype=pred.dtype)
        out[:, z] = pred
    return out
