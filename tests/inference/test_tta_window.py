"""Flip TTA merges and the Gaussian window weights (real Gaussian for 1-section windows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_em.inference import ChunkedInference, TestTimeFlips, WindowPredictor, window_weights

from .helpers import Pointwise


def ramp_net(x: torch.Tensor) -> torch.Tensor:
    """Not flip-equivariant: adds the x coordinate (0..W-1)."""
    return x + torch.arange(x.shape[-1], dtype=x.dtype)


def test_variant_counts():
    assert len(TestTimeFlips().variants(3)) == 16  # PyTC AUG_NUM 16
    assert len(TestTimeFlips(transpose_xy=False).variants(3)) == 8
    assert len(TestTimeFlips().variants(2)) == 8  # z ignored for 2D windows
    assert TestTimeFlips().variants(3)[0] == ((), False)  # identity first


def test_equivariant_network_is_unchanged_by_tta():
    x = torch.rand(2, 1, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    net = Pointwise()
    with torch.no_grad():
        plain = net(x)
        for merge in ("mean", "min", "max"):
            torch.testing.assert_close(TestTimeFlips(merge=merge)(x, net), plain)
    assert not torch.equal(x, torch.zeros_like(x))  # input left intact (identity-like nets return views)


def test_merges_undo_each_flip():
    x = torch.zeros(1, 1, 2, 3, 5)
    mean = TestTimeFlips(flip_axes="x", transpose_xy=False)(x, ramp_net)
    torch.testing.assert_close(mean, torch.full_like(x, 2.0))  # (ramp + reversed ramp) / 2 = (W - 1) / 2
    mx = TestTimeFlips(flip_axes="x", transpose_xy=False, merge="max")(x, ramp_net)
    torch.testing.assert_close(mx[0, 0, 0, 0], torch.tensor([4.0, 3.0, 2.0, 3.0, 4.0]))
    mn = TestTimeFlips(flip_axes=("x",), transpose_xy=False, merge="min")(x, ramp_net)
    torch.testing.assert_close(mn[0, 0, 0, 0], torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0]))
    # transpose: the ramp runs along y in the transposed window and is transposed back onto... y -> x
    tr = TestTimeFlips(flip_axes=(), transpose_xy=True)(torch.zeros(1, 1, 4, 4), ramp_net)
    expected = (torch.arange(4.0)[None, :] + torch.arange(4.0)[:, None]) / 2
    torch.testing.assert_close(tr[0, 0], expected)


def test_tta_in_chunked_inference(tmp_path):
    vol = np.random.default_rng(0).integers(0, 256, size=(6, 20, 20), dtype=np.uint8)
    kw = dict(roi_size=(6, 20, 20), output_dir=tmp_path, output_dtype="float32", progress=False, stitch=False)
    infer = ChunkedInference(ramp_net, tta=TestTimeFlips(flip_axes=("x",), transpose_xy=False), **kw)
    out = infer.predict_chunk(infer_source := __import__("monai_em").data.open_volume(vol), 0)
    np.testing.assert_allclose(out[0], vol / 255 + 9.5, atol=1e-5)
    assert infer_source.shape == vol.shape


def test_bad_tta_arguments():
    with pytest.raises(ValueError, match="flip_axes"):
        TestTimeFlips(flip_axes=("w",))
    with pytest.raises(ValueError, match="merge must be one of"):
        TestTimeFlips(merge="median")


def test_gaussian_weights_of_a_one_section_window_are_a_real_gaussian():
    w = window_weights((1, 33, 33)).numpy()
    assert w.shape == (1, 33, 33)
    centre, corner, edge = w[0, 16, 16], w[0, 0, 0], w[0, 16, 0]
    assert centre / corner > 100 and centre / edge > 10  # PyTC's collapses to a constant here
    # a Gaussian: log-weights are a downward parabola in y and x, symmetric about the centre
    # (MONAI floors the tails at 1e-3 of the peak, so fit the part above the floor)
    pos = np.arange(6, 27) - 16
    row = np.log(w[0, 16, 6:27])
    coef = np.polyfit(pos, row, 2)
    assert coef[0] < 0 and abs(coef[1]) < 1e-6 and np.allclose(np.polyval(coef, pos), row, atol=1e-3)
    np.testing.assert_allclose(w[0], w[0].T, rtol=1e-6)
    assert np.allclose(window_weights((1, 8, 8), mode="constant").numpy(), 1)
    with pytest.raises(ValueError, match="blend mode"):
        window_weights((1, 8, 8), mode="cosine")


def test_gaussian_blending_weighs_window_centres():
    """Two windows that disagree: gaussian blending follows the window whose centre is nearer."""
    calls = []

    def window_index_net(x):
        calls.append(1)
        return torch.full_like(x, float(len(calls)))  # first window -> 1, second -> 2

    predictor = WindowPredictor(window_index_net, spatial_dims=2)
    from monai_em.inference.window import sliding_window_block

    block = torch.zeros(1, 1, 8, 12)
    out = sliding_window_block(
        block, predictor, (1, 8, 8), overlap=(0, 0, 0.5), mode="gaussian", sw_batch_size=1
    )
    row = out[0, 0, 4].numpy()  # windows cover x 0-7 and 4-11
    assert len(calls) == 2 and row[4] < 1.5 < row[7]  # overlap zone leans to the nearer window centre
    assert np.all(np.diff(row[4:8]) > 0)
