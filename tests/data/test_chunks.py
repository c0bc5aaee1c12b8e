import numpy as np
import pytest

from monai_em.data.chunks import (
    axis_bounds,
    centre_start,
    chunk_box,
    chunk_boxes,
    chunk_id_to_zyx,
    chunk_name,
    pad_box,
    round_permutation,
    split_rank_world,
    worker_share,
)


def test_spec_check_values():
    assert [axis_bounds(100, 2, i, train=True) for i in range(2)] == [(0, 66), (33, 100)]
    assert [axis_bounds(100, 2, i, train=False) for i in range(2)] == [(0, 50), (50, 100)]
    # [2, 4, 4] chunks of (2000, 6400, 6400) at inference: 2000 / 2 by 6400 / 4 by 6400 / 4
    box = chunk_box((2000, 6400, 6400), (2, 4, 4), 0, train=False)
    assert box == ((0, 1000), (0, 1600), (0, 1600))
    assert chunk_box((100, 800, 800), (1, 1, 1), 0, train=False, pad_size=(4, 64, 64)) == (
        (-4, 104),
        (-64, 864),
        (-64, 864),
    )


@pytest.mark.parametrize("length,n", [(100, 2), (97, 3), (10, 10), (1000, 7)])
def test_axis_formula_and_train_overlap(length, n):
    for i in range(n):
        assert axis_bounds(length, n, i, True) == (
            int(np.floor(i / (n + 1) * length)),
            int(np.floor((i + 2) / (n + 1) * length)),
        )
        assert axis_bounds(length, n, i, False) == (
            int(np.floor(i / n * length)),
            int(np.floor((i + 1) / n * length)),
        )
    train = [axis_bounds(length, n, i, True) for i in range(n)]
    assert train[0][0] == 0 and train[-1][1] == length
    for (a0, b0), (a1, _b1) in zip(train, train[1:], strict=False):
        assert a1 < b0  # neighbours overlap
        assert abs((b0 - a1) - (b0 - a0) / 2) <= 1  # by half a chunk


def test_inference_chunks_cover_every_voxel_once():
    shape, num = (13, 17, 11), (3, 4, 2)
    count = np.zeros(shape, np.int32)
    for box in chunk_boxes(shape, num, train=False):
        count[tuple(slice(a, b) for a, b in box)] += 1
    assert (count == 1).all()
    train = np.zeros(shape, np.int32)
    for box in chunk_boxes(shape, num, train=True):
        train[tuple(slice(a, b) for a, b in box)] += 1
    assert train.min() >= 1 and train.max() > 1


def test_chunk_ids_are_z_major():
    num = (2, 3, 4)
    seen = [chunk_id_to_zyx(i, num) for i in range(24)]
    assert seen == [(z, y, x) for z in range(2) for y in range(3) for x in range(4)]
    with pytest.raises(ValueError, match="chunk id 24"):
        chunk_id_to_zyx(24, num)


def test_names_padding_and_errors():
    assert chunk_name(((0, 50), (0, 128), (64, 128))) == "0-50-0-128-64-128"
    assert pad_box(((0, 10), (5, 9), (0, 1)), 2) == ((-2, 12), (3, 11), (-2, 3))
    with pytest.raises(ValueError, match="too short"):
        chunk_box((3, 10, 10), (4, 1, 1), 0, train=False)
    with pytest.raises(ValueError, match="chunk_num"):
        chunk_boxes((10, 10, 10), (0, 1, 1), train=False)


def test_split_rank_world_is_contiguous_partition():
    shares = [split_rank_world(10, r, 3) for r in range(3)]
    assert [list(s) for s in shares] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    with pytest.raises(ValueError, match="rank 3"):
        split_rank_world(10, 3, 3)


@pytest.mark.parametrize("n_chunks,n_workers", [(8, 4), (10, 3), (5, 5)])
def test_worker_shares_partition_each_round(n_chunks, n_workers):
    for rnd in range(3):
        shares = [worker_share(n_chunks, w, n_workers, seed=7, round_key=(0, rnd)) for w in range(n_workers)]
        assert sorted(sum(shares, [])) == list(range(n_chunks))
    # the permutation is the same wherever it is computed, and differs between rounds / seeds
    np.testing.assert_array_equal(round_permutation(50, 7, (0, 1)), round_permutation(50, 7, (0, 1)))
    assert not np.array_equal(round_permutation(50, 7, (0, 1)), round_permutation(50, 7, (0, 2)))
    assert not np.array_equal(round_permutation(50, 7, (0, 1)), round_permutation(50, 8, (0, 1)))


def test_more_workers_than_chunks_never_leaves_a_worker_idle():
    shares = [worker_share(3, w, 5, seed=0, round_key=0) for w in range(5)]
    assert all(len(s) == 1 for s in shares)
    assert sorted({s[0] for s in shares}) == [0, 1, 2]


def test_centre_start_centres_with_the_larger_half_after():
    rng = np.random.default_rng(0)
    for _ in range(200):
        inner = rng.integers(1, 40, size=3)
        outer = inner + rng.integers(0, 9, size=3)
        start = np.asarray(centre_start(outer, inner))
        before, after = start, outer - inner - start
        assert (before >= 0).all() and ((after == before) | (after == before + 1)).all()
    assert centre_start((5, 6), (2, 2)) == (1, 2)


def test_centre_crop_and_rejection_test_region_share_the_centring():
    """The augmentor keeps, and the rejection crop tests, the same region of a sample: odd margins included."""
    from monai_em.transforms.compose import EMAugmentor
    from monai_em.transforms.sampling import RejectionSampler

    for size, input_size in [((9, 37, 40), (4, 16, 17)), ((7, 33, 33), (7, 32, 30))]:
        sampler = RejectionSampler(size, test_size=input_size)
        crop = EMAugmentor([], input_size, fuse=False).crop
        assert (
            tuple(sampler.test_offset.tolist())
            == crop.window("image", (1, *size))
            == centre_start(size, input_size)
        )


@pytest.mark.parametrize(
    "pad, error, match",
    [
        ((0, -2, 0), ValueError, r"pad_size must be >= 0 per axis, got \(0, -2, 0\)"),
        ((1, 2), ValueError, r"pad_size needs 1 or 3 values, got \(1, 2\)"),
        ("2", TypeError, r"pad_size must be integers, got '2'"),
    ],
)
def test_every_pad_size_is_checked_by_one_rule(tmp_path, pad, error, match):
    import torch

    from monai_em.data.tile_dataset import TileDataset
    from monai_em.inference import ChunkedInference

    with pytest.raises(error, match=match):
        pad_box(((0, 4), (0, 4), (0, 4)), pad)
    with pytest.raises(error, match=match):
        TileDataset({"image": np.zeros((8, 16, 16), np.uint8)}, pad_size=pad)
    with pytest.raises(error, match=match):
        ChunkedInference(torch.nn.Identity(), (4, 8, 8), tmp_path / "out", pad_size=pad)
    assert list(tmp_path.iterdir()) == []
