"""Multi-volume picking: frequencies follow crop-position counts; the dataset feeds the rejection crop."""

from __future__ import annotations

import numpy as np
import pytest
from monai.data import DataLoader

from monai_em.data.multi_volume import MultiVolumeDataset, RandVolumePicker, crop_positions
from monai_em.transforms.sampling import RandRejectionCropd


def test_crop_positions_counts_every_start():
    # brute force: enumerate all starts of a 3x5 box in a 6x7 plane
    brute = sum(1 for y in range(6) for x in range(7) if y + 3 <= 6 and x + 5 <= 7)
    assert crop_positions((6, 7), (3, 5)) == brute == 12
    assert crop_positions((2, 7), (3, 5)) == 0
    assert crop_positions((2, 7), (3, 5), allow_padding=True) == 3
    assert crop_positions((70_000, 70_000, 70_000), (1, 1, 1)) == 70_000**3  # no int overflow


def test_picker_frequencies_follow_position_counts():
    shapes = [(8, 40, 40), (8, 20, 40), (4, 64, 64)]
    size = (4, 16, 16)
    counts = np.array([crop_positions(s, size) for s in shapes], float)
    expected = counts / counts.sum()
    picker = RandVolumePicker(shapes, size).set_random_state(0)
    n = 6000
    freq = np.bincount([picker() for _ in range(n)], minlength=3) / n
    assert np.all(np.abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / n)), (freq, expected)


def test_picker_rejects_small_volume_by_index():
    with pytest.raises(
        ValueError, match=r"volumes \{1: \(2, 8, 8\)\} .* smaller than spatial_size \(4, 16, 16\)"
    ):
        RandVolumePicker([(8, 40, 40), (2, 8, 8)], (4, 16, 16))


def _volume(shape, value):
    label = np.zeros((1, *shape), np.int32)
    label[0, 1:3, 4:10, 4:10] = value  # one small object per volume, id = volume number
    return {"image": label.astype(np.float32), "label": label}


def test_dataset_samples_every_volume_reuses_tables_and_is_reproducible():
    vols = [_volume((8, 40, 40), 1), _volume((8, 24, 24), 2)]
    crop = RandRejectionCropd(
        ["image", "label"], "label", (4, 16, 16), size_thres=8, reject_p=1.0, max_trials=5000
    )
    ds = MultiVolumeDataset(vols, crop, (4, 16, 16), samples_per_epoch=40).set_random_state(3)
    items = [ds[i][0] for i in range(len(ds))]
    seen = {it["volume_index"] for it in items}
    assert seen == {0, 1}
    for it in items:
        # the crop came from the volume it says, and met the threshold there
        assert set(np.unique(it["label"].numpy())) == {0, it["volume_index"] + 1}
        assert np.count_nonzero(it["label"].numpy()) >= 8
    assert crop.sampler.cache.builds == 2  # one integral volume per volume, reused for 40 samples
    again = MultiVolumeDataset(vols, crop, (4, 16, 16), samples_per_epoch=40).set_random_state(3)
    assert [it["crop_start"].tolist() for it in items] == [
        again[i][0]["crop_start"].tolist() for i in range(40)
    ]


def test_dataset_through_monai_dataloader_collates():
    vols = [_volume((8, 40, 40), 1), _volume((8, 32, 40), 2)]
    crop = RandRejectionCropd(["image", "label"], "label", (4, 16, 16), num_samples=2)
    ds = MultiVolumeDataset(vols, crop, (4, 16, 16), samples_per_epoch=6)
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))
    assert batch["image"].shape == (6, 1, 4, 16, 16)  # 3 items x 2 samples, flattened by list_data_collate
    assert batch["crop_start"].shape == (6, 3)


def test_dataset_errors_name_the_problem():
    with pytest.raises(ValueError, match="samples_per_epoch"):
        MultiVolumeDataset([_volume((8, 40, 40), 1)], None, (4, 16, 16), samples_per_epoch=0)
    with pytest.raises(ValueError, match="volume 0: no array under key 'mask'"):
        MultiVolumeDataset([_volume((8, 40, 40), 1)], None, (4, 16, 16), shape_key="mask")


def test_ddp_ranks_draw_differently_from_the_same_seed(monkeypatch):
    import monai_em.data.multi_volume as mv

    data = [{"image": np.zeros((1, 8, 32, 32), np.float32)}, {"image": np.zeros((1, 8, 64, 64), np.float32)}]

    def draws(rank):
        monkeypatch.setattr(mv, "_ddp_rank", lambda: rank)
        ds = mv.MultiVolumeDataset(data, None, spatial_size=(4, 16, 16), samples_per_epoch=40)
        ds.set_random_state(seed=0)  # what set_determinism gives every rank
        return [ds.randomize() for _ in range(40)]

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)
