"""Copy-paste (per sample) and mixup (per batch) against the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from scipy.ndimage import distance_transform_cdt

from monai_em.transforms.mixing import RandCopyPasted, RandMixup, RandMixupd
from tests.utils import to_numpy

BIG = 2**33


def blob_sample():
    """One elongated object off-centre; image = 0.8 on the object, 0.1 elsewhere (explained by the label)."""
    label = np.zeros((1, 4, 40, 40), np.int64)
    label[:, 1:3, 4:12, 6:30] = BIG + 5
    image = np.where(label > 0, 0.8, 0.1).astype(np.float32)
    return image, label


def test_copypaste_adds_the_pasted_object_to_label_and_image():
    image, label = blob_sample()
    t = RandCopyPasted("image", prob=1.0)
    out = t({"image": image, "label": label})
    o_img, o_lab = to_numpy(out["image"]), to_numpy(out["label"])
    assert o_lab.dtype == np.int64 and o_img.dtype == np.float32
    new = (o_lab != 0) & (label == 0)
    assert np.array_equal(o_lab[label != 0], label[label != 0])  # original object untouched
    assert set(np.unique(o_lab[new])) == {BIG + 5}
    size = (label != 0).sum()
    assert 0.5 * size < new.sum() <= size  # a copy, minus what fell near the original or outside
    # the image changed exactly where the label gained the object, and shows object intensity there
    changed = o_img != image
    assert np.array_equal(changed, new & (np.abs(o_img - 0.1) > 1e-6))
    assert np.mean(np.abs(o_img[new] - 0.8) < 0.05) > 0.8
    # nothing pasted within the dilation of the original (chessboard distance 3)
    dist = distance_transform_cdt(label[0] == 0, metric="chessboard")
    assert dist[new[0]].min() > 3
    assert t.params.overlap == 0 and t.params.pasted == new.sum()


def test_copypaste_relabel_gives_new_ids_and_thresholds():
    image, label = blob_sample()
    label[:, 1:3, 14:18, 6:12] = BIG + 9
    out = RandCopyPasted("image", relabel=True, prob=1.0)({"image": image, "label": label})
    o_lab = to_numpy(out["label"])
    new_ids = set(np.unique(o_lab[(o_lab != 0) & (label == 0)]))
    assert new_ids and new_ids <= {2 * BIG + 9 + 5, 2 * BIG + 9 + 9}
    # too much foreground, or none: nothing happens
    full = np.ones_like(label)
    assert np.array_equal(to_numpy(RandCopyPasted(prob=1.0)({"image": image, "label": full})["label"]), full)
    empty = np.zeros_like(label)
    out = RandCopyPasted(prob=1.0)({"image": image, "label": empty})
    assert np.array_equal(to_numpy(out["image"]), image)
    with pytest.raises(ValueError, match="label key 'seg'"):
        RandCopyPasted(label_key="seg", prob=1.0)({"image": image, "label": label})
    assert RandCopyPasted(prob=0.0)({"image": image, "label": label})["label"].shape == label.shape


def test_copypaste_on_fib25_neuron(fib25):
    image, label = fib25
    image, label = image[None, :6, :80, :80], label[None, :6, :80, :80]
    ids, counts = np.unique(label[label > 0], return_counts=True)
    keep = ids[np.argsort(counts)[len(ids) // 2]]  # a mid-sized neuron as the only foreground
    fg = np.where(label == keep, label, 0)
    out = RandCopyPasted("image", prob=1.0)({"image": MetaTensor(torch.as_tensor(image)), "label": fg})
    o_img, o_lab = out["image"], to_numpy(out["label"])
    assert isinstance(o_img, MetaTensor) and o_img.dtype == torch.uint8
    new = (o_lab != 0) & (fg == 0)
    assert new.sum() > 0 and set(np.unique(o_lab)) == {0, keep}
    changed = to_numpy(o_img) != image
    assert not (changed & ~new).any()  # the image only changes where the object was pasted


# ---------------------------------------------------------------- mixup


def test_mixup_mixes_num_aug_samples_with_ratio_in_range():
    values = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    batch = np.broadcast_to(values[:, None, None, None, None], (5, 1, 2, 3, 3)).astype(np.float32)
    label = np.arange(5)[:, None, None, None, None] * np.ones((5, 1, 2, 3, 3), np.int64)
    for seed in range(15):
        t = RandMixupd("image", min_ratio=0.6, max_ratio=0.8, num_aug=2).set_random_state(seed)
        out = t({"image": batch, "label": label})
        assert np.array_equal(to_numpy(out["label"]), label)  # labels untouched
        img = to_numpy(out["image"])
        changed = [b for b in range(5) if not np.allclose(img[b], batch[b])]
        assert len(changed) == 2
        for b in changed:
            v = float(img[b].mean())
            assert np.allclose(img[b], v, atol=1e-4)
            # some other sample j explains it with a ratio in [0.6, 0.8]
            ratios = [(v - values[j]) / (values[b] - values[j]) for j in range(5) if j != b]
            assert any(0.6 - 1e-4 <= r <= 0.8 + 1e-4 for r in ratios)


def test_mixup_edge_cases_and_after_collation():
    one = torch.rand(1, 1, 2, 4, 4)
    assert torch.equal(RandMixup().set_random_state(0)(one), one)
    three = torch.arange(3.0)[:, None, None, None, None].expand(3, 1, 2, 4, 4).contiguous()
    out = RandMixup(num_aug=5).set_random_state(0)(three)
    assert all(not torch.equal(out[b], three[b]) for b in range(3))  # min(num_aug, B) = 3 samples mixed
    samples = [
        {"image": MetaTensor(torch.full((1, 2, 4, 4), float(i))), "label": torch.full((1, 2, 4, 4), i)}
        for i in range(4)
    ]
    batch = list_data_collate(samples)
    mixed = RandMixupd("image", num_aug=4).set_random_state(1)(batch)
    assert isinstance(mixed["image"], MetaTensor) and mixed["image"].shape == (4, 1, 2, 4, 4)
    assert torch.equal(mixed["label"], batch["label"])
    assert not torch.equal(mixed["image"].as_tensor(), batch["image"].as_tensor())
    with pytest.raises(ValueError, match="min_ratio"):
        RandMixup(min_ratio=0.9, max_ratio=0.5)
    with pytest.raises(ValueError, match="batch size"):
        RandMixupd(["a", "b"])({"a": torch.zeros(2, 1, 4), "b": torch.zeros(3, 1, 4)})
