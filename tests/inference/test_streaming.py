"""2D inference: path lists, one image at a time with outputs named after inputs, memory flat in N."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_em.inference import (
    ImageListInference,
    load_image_2d,
    predict_images,
    predict_sections,
    read_path_list,
)

from .helpers import Pointwise, pointwise_reference


def write_images(folder: Path, n: int, rgb_index: int | None = None) -> list[Path]:
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        shape = (20 + 3 * i, 31 + i)
        img = rng.integers(0, 256, size=shape + ((3,) if i == rgb_index else ()), dtype=np.uint8)
        paths.append(folder / f"sec_{i:03d}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def test_read_path_list_txt_glob_and_list(tmp_path):
    paths = write_images(tmp_path / "img", 3)
    txt = tmp_path / "list.txt"
    txt.write_text(f"{paths[2]}\n\n# comment\n{paths[0]}\nimg/sec_001.png\n")
    assert read_path_list(str(txt)) == [str(paths[2]), str(paths[0]), str(tmp_path / "img" / "sec_001.png")]
    assert read_path_list(str(tmp_path / "img" / "*.png")) == [str(p) for p in paths]
    assert read_path_list([str(paths[1]), str(paths[0])]) == [str(paths[1]), str(paths[0])]
    txt.write_text(f"{paths[0]}\n{tmp_path / 'gone.png'}\n")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_path_list(str(txt))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        read_path_list(str(tmp_path / "*.tif"))


def test_txt_list_gives_one_output_per_image_with_names_and_sizes(tmp_path):
    paths = write_images(tmp_path / "img", 6, rgb_index=2)
    txt = tmp_path / "test_path.txt"
    txt.write_text("\n".join(str(p) for p in paths) + "\n")
    net = Pointwise(dims=2)
    seen_channels = []
    orig = net.forward
    net.forward = lambda x: (seen_channels.append(x.shape[1]), orig(x))[1]
    outs = predict_images(net, str(txt), tmp_path / "out", (16, 16), output_ext="tif", output_dtype="float32",
                          suffix="_pred", progress=False)  # fmt: skip
    assert [o.name for o in outs] == [f"sec_{i:03d}_pred.tif" for i in range(6)]
    assert set(seen_channels) == {1}  # the RGB image is one gray section, not 3 z-slices
    for p, o in zip(paths, outs, strict=True):
        img = Image.open(p)
        gray = np.asarray(img.convert("L"))
        with Image.open(o) as tif:
            pages = [np.asarray(tif.copy())]
            tif.seek(1)
            pages.append(np.asarray(tif.copy()))
        assert pages[0].shape == gray.shape  # sizes match the inputs
        np.testing.assert_allclose(np.stack(pages), pointwise_reference(gray[None])[:, 0], atol=1e-5)
    calls = net.calls
    predict_images(net, str(txt), tmp_path / "out", (16, 16), output_ext="tif", output_dtype="float32",
                   suffix="_pred", progress=False)  # fmt: skip
    assert net.calls == calls  # existing outputs are skipped


def test_rgb_as_channels_and_png_outputs(tmp_path):
    paths = write_images(tmp_path / "img", 3, rgb_index=1)
    net = torch.nn.Conv2d(3, 1, 1)
    with pytest.raises(RuntimeError):  # gray images fed to a 3-channel network: torch rejects them
        predict_images(net, [str(p) for p in paths], tmp_path / "o", (8, 8), rgb="channels", progress=False)
    assert load_image_2d(paths[1], rgb="channels").shape == (3, 23, 32)
    assert load_image_2d(paths[1]).shape == (1, 23, 32)
    net = Pointwise(dims=2)
    outs = predict_images(net, str(paths[0]), tmp_path / "p", (8, 8), activation="sigmoid", progress=False)
    assert [o.name for o in outs] == ["sec_000_c0.png", "sec_000_c1.png"]  # 2 channels: one PNG each
    assert np.asarray(Image.open(outs[0])).shape == (20, 31)
    assert outs[0].stat().st_mtime_ns >= outs[1].stat().st_mtime_ns  # channel 0 written last: it marks "done"
    calls = net.calls
    outs[0].unlink()  # as if killed between the two channel files
    predict_images(net, str(paths[0]), tmp_path / "p", (8, 8), activation="sigmoid", progress=False)
    assert net.calls > calls and outs[0].exists()


def test_partial_output_of_a_crash_is_redone(tmp_path):
    paths = write_images(tmp_path / "img", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".sec_000.1234.tmp.npy").write_bytes(b"half")  # left by a killed run
    net = Pointwise(dims=2)
    predict_images(
        net, [str(p) for p in paths], out, (16, 16), output_ext="npy", output_dtype="float32", progress=False
    )
    assert np.load(out / "sec_000.npy").shape == (2, 20, 31) and net.calls > 0


def test_duplicate_output_names_and_bad_args(tmp_path):
    a = write_images(tmp_path / "a", 1)[0]
    b = write_images(tmp_path / "b", 1)[0]
    with pytest.raises(ValueError, match="would both write"):
        predict_images(Pointwise(dims=2), [str(a), str(b)], tmp_path / "o", (8, 8), progress=False)
    with pytest.raises(ValueError, match="'png' needs output_dtype 'uint8'"):
        ImageListInference(Pointwise(dims=2), (8, 8), tmp_path, output_dtype="float32")
    with pytest.raises(ValueError, match="roi_size must be two"):
        ImageListInference(Pointwise(dims=2), (8, 8, 8), tmp_path)


def test_predict_sections_equals_per_section_2d(tmp_path):
    vol = np.random.default_rng(3).integers(0, 256, size=(4, 21, 19), dtype=np.uint8)
    out = predict_sections(Pointwise(dims=2), vol, (8, 8), overlap=0.25)
    assert out.shape == (2, 4, 21, 19)
    np.testing.assert_allclose(out, pointwise_reference(vol), atol=1e-5)


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def test_peak_memory_does_not_grow_with_number_of_images(tmp_path):
    """Peak RSS (VmHWM, reset after a warm-up) stays flat while 45 more images stream through."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux)
    except OSError as e:
        pytest.skip(f"cannot reset the peak-RSS counter: {e}")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(50):
        paths.append(str(tmp_path / f"im{i:03d}.png"))
        Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8)).save(paths[-1])
    kw = dict(output_ext="npy", output_dtype="float32", progress=False, sw_batch_size=4)
    net = Pointwise(dims=2)
    predict_images(net, paths[:5], tmp_path / "out", (128, 128), **kw)  # warm-up: allocator, first buffers
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _status_kib("VmRSS")
    outs = predict_images(net, paths, tmp_path / "out", (128, 128), **kw)
    peak = _status_kib("VmHWM")
    assert len(outs) == 50 and all(o.exists() for o in outs)
    # 45 more 256x256 images -> 2-channel float32 outputs: keeping the outputs alone would add > 22 MiB
    assert peak - start < 12 * 1024, f"peak RSS rose {peak - start} KiB above {start} KiB over 45 more images"


def test_read_path_list_expands_a_folder_to_its_sorted_images(tmp_path):
    folder = tmp_path / "imgs"
    paths = write_images(folder, 3)
    np.save(folder / "a.npy", np.zeros((4, 4), np.uint8))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "Z.TIF")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub.png").mkdir()  # a folder named like an image is no image
    want = sorted([*map(str, paths), str(folder / "a.npy"), str(folder / "Z.TIF")])
    assert read_path_list(str(folder)) == want
    assert read_path_list(folder) == want  # a Path too
    assert read_path_list("imgs", relative_to=tmp_path) == want
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty holds no image file"):
        read_path_list(str(tmp_path / "empty"))


def test_failure_while_predicting_an_image_names_it(tmp_path):
    paths = write_images(tmp_path / "img", 2)
    with pytest.raises(RuntimeError, match="sec_001.png.*injected failure") as info:
        # 1 window per image (roi covers both images): the second image's first call fails
        predict_images(Pointwise(dims=2, fail_at_call=2), [str(p) for p in paths], tmp_path / "out", (40, 40),
                       overlap=0.0, progress=False)  # fmt: skip
    assert "injected failure" in str(info.value.__cause__)


def test_an_image_smaller_than_the_window_is_mirrored_as_volumes_are(tmp_path):
    """The image is centred in one window and mirrored (numpy ``reflect``) per axis, like every other
    read: a one-pixel-high image is still mirrored along x (it used to be edge-padded on every axis)."""
    right = torch.nn.Conv2d(1, 1, (1, 3), padding=(0, 1), bias=False)  # out(x) = in(x + 1)
    with torch.no_grad():
        right.weight.copy_(torch.tensor([0.0, 0.0, 1.0]).view(1, 1, 1, 3))
    infer = ImageListInference(
        right,
        (8, 8),
        tmp_path,
        output_dtype="float32",
        output_ext="npy",
        intensity_scale=None,
        progress=False,
    )
    for shape in [(1, 5), (3, 5), (6, 2)]:
        image = np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape)
        out = infer.predict_image(image)
        mirrored = np.pad(image[0], [(0, 0), (0, 1)], mode="reflect")  # the voxel after the last one
        np.testing.assert_allclose(out[0], mirrored[:, 1:], atol=1e-5)
