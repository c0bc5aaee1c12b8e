import numpy as np
import pytest

from monai_em.data.volume import ArrayVolume, VolumeSource, normalize_box, read_reflected, reflect_indices


@pytest.mark.parametrize("length", [1, 2, 5, 8])
def test_reflect_indices_match_numpy_reflect_pad(length):
    pad = 3 * length + 2
    ref = np.pad(np.arange(length), pad, mode="reflect" if length > 1 else "edge")
    np.testing.assert_array_equal(reflect_indices(-pad, length + pad, length), ref)


def test_array_volume_reads_equal_reflect_padded_slices(rng):
    vol = rng.integers(0, 1000, (6, 9, 11)).astype(np.int32)
    padded = np.pad(vol, 5, mode="reflect")
    av = ArrayVolume(vol)
    assert isinstance(av, VolumeSource) and av.shape == (6, 9, 11) and av.dtype == np.int32
    for _ in range(40):
        start = rng.integers(-5, [6, 9, 11])
        stop = start + rng.integers(1, 6, 3)
        box = tuple(zip(start.tolist(), stop.tolist(), strict=True))
        np.testing.assert_array_equal(av.read(box), padded[tuple(slice(a + 5, b + 5) for a, b in box)])


def test_leading_channel_axis_kept_and_reader_gets_in_bounds_hull():
    vol = np.arange(2 * 4 * 5 * 6).reshape(2, 4, 5, 6)
    seen = []

    def inside(box):
        seen.append(box)
        assert all(0 <= a < b <= n for (a, b), n in zip(box, (4, 5, 6), strict=True))
        return vol[(slice(None),) + tuple(slice(a, b) for a, b in box)]

    out = read_reflected(inside, ((-2, 2), (0, 5), (4, 8)), (4, 5, 6))
    assert out.shape == (2, 4, 5, 4) and len(seen) == 1
    np.testing.assert_array_equal(
        out, np.pad(vol, ((0, 0), (2, 0), (0, 0), (0, 2)), mode="reflect")[:, :4, :, 4:8]
    )


def test_normalize_box_forms_and_errors():
    assert normalize_box([0, 2, 1, 3, 4, 6]) == ((0, 2), (1, 3), (4, 6))
    assert normalize_box((slice(0, 2), (1, 3), [4, 6])) == ((0, 2), (1, 3), (4, 6))
    with pytest.raises(ValueError, match="empty"):
        normalize_box(((0, 2), (3, 3), (0, 1)))
    with pytest.raises(ValueError, match="3 \\(start, stop\\) pairs"):
        normalize_box(((0, 2), (0, 3)))
    with pytest.raises(ValueError, match="shape \\(4, 4\\)"):
        ArrayVolume(np.zeros((4, 4)))


def test_torch_data_is_mirrored_like_numpy_on_its_device(rng):
    """The rejection crop reads torch tensors through the same mirrored read (gathered on their device)."""
    import torch

    vol = rng.integers(0, 1000, (2, 5, 7, 4)).astype(np.int64)
    padded = np.pad(vol, [(0, 0)] + [(9, 9)] * 3, mode="reflect")
    t = torch.from_numpy(vol)
    for _ in range(30):
        start = rng.integers(-9, [5, 7, 4])
        stop = start + rng.integers(1, 9, 3)
        box = tuple(zip(start.tolist(), stop.tolist(), strict=True))
        out = read_reflected(lambda b: t[(slice(None), *(slice(a, e) for a, e in b))], box, vol.shape[1:])
        assert isinstance(out, torch.Tensor) and out.device == t.device
        np.testing.assert_array_equal(
            out.numpy(), padded[(slice(None), *(slice(a + 9, b + 9) for a, b in box))]
        )
