"""The one mirror-padded read (``read_reflected``) follows every numpy.pad mode PyTC's PAD_MODE allows."""

from __future__ import annotations

import numpy as np
import pytest

from monai_em.data.volume import PAD_MODES, ArrayVolume, read_reflected, reflect_indices


@pytest.mark.parametrize("pad_mode", PAD_MODES)
@pytest.mark.parametrize("length", [1, 2, 5])
def test_indices_follow_numpy_pad_even_past_the_volume(pad_mode, length):
    values = np.arange(length)
    for before, after in ((0, 0), (1, 2), (3 * length + 1, 2 * length + 3)):
        fill = {"constant_values": -1} if pad_mode == "constant" else {}
        expected = np.pad(values, (before, after), mode=pad_mode, **fill)
        got = reflect_indices(-before, length + after, length, pad_mode)
        np.testing.assert_array_equal(np.where(got >= 0, values[np.maximum(got, 0)], -1), expected)


@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_read_equals_numpy_pad_with_leading_channels_and_reads_only_inside(pad_mode):
    rng = np.random.default_rng(0)
    vol = rng.integers(1, 200, size=(2, 3, 5, 4)).astype(np.uint8)  # (C, Z, Y, X)
    boxes = []

    def inside(box):
        boxes.append(box)
        assert all(0 <= a < b <= n for (a, b), n in zip(box, vol.shape[1:], strict=True)), box
        return vol[(slice(None), *(slice(a, b) for a, b in box))]

    pads = [(2, 4), (0, 3), (5, 1)]
    out = read_reflected(
        inside,
        [(-a, n + b) for (a, b), n in zip(pads, vol.shape[1:], strict=True)],
        vol.shape[1:],
        pad_mode,
        7,
    )
    expected = np.pad(
        vol, [(0, 0), *pads], mode=pad_mode, **({"constant_values": 7} if pad_mode == "constant" else {})
    )
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == vol.dtype and len(boxes) == 1


def test_constant_box_wholly_outside_is_all_fill_and_bad_modes_are_named():
    vol = ArrayVolume(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
    out = read_reflected(vol.read, ((5, 7), (0, 3), (0, 4)), vol.shape, "constant", -3)
    assert out.shape == (2, 3, 4) and (out == -3).all()
    with pytest.raises(ValueError, match="pad_mode must be one of .*'wrap'"):
        read_reflected(vol.read, ((0, 2), (0, 3), (0, 4)), vol.shape, "wrap")
