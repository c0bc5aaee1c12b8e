"""Targets (boundary, affinity, masks, classes, distance, PyTC options), weights and losses, against hand-built oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser

from monai_em.losses import VoxelWeightedLoss
from monai_em.transforms.target_options import loss_for_target, target_channels, target_from_pytc_option
from monai_em.transforms.targets import (
    AffinityTarget,
    AffinityTargetd,
    BinaryTarget,
    BoundaryTarget,
    BoundaryTargetd,
    DistanceTarget,
    SemanticTarget,
    ValidMaskToWeightd,
)
from tests.utils import ARRAY_TYPE_NAMES, as_type, same_container, to_numpy


def two_halves(width_x: int = 8, split: int = 4, ids=(3, 9)) -> np.ndarray:
    """(1, 2, 3, X) label: id ids[0] left of ``split``, ids[1] from ``split`` on."""
    label = np.full((1, 2, 3, width_x), ids[0], dtype=np.int64)
    label[..., split:] = ids[1]
    return label


def brute_boundary(label: np.ndarray, before: int, after: int, axes) -> np.ndarray:
    """Definition: a voxel is on the boundary when its window (edges clamped) holds two ids."""
    lab = label[0]
    out = np.zeros(lab.shape, dtype=np.float32)
    for p in itertools.product(*(range(s) for s in lab.shape)):
        ids = set()
        ranges = [range(-before, after + 1) if a in axes else range(1) for a in range(lab.ndim)]
        for off in itertools.product(*ranges):
            q = tuple(min(max(c + o, 0), s - 1) for c, o, s in zip(p, off, lab.shape, strict=True))
            ids.add(int(lab[q]))
        out[p] = len(ids) > 1
    return out[None]


# ---------------------------------------------------------------- boundary


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
def test_boundary_band_is_width_voxels_across_a_straight_contour(width):
    out = to_numpy(BoundaryTarget(width=width)(two_halves(width_x=12, split=6)))
    assert out.shape == (1, 2, 3, 12)
    row = out[0, 1, 1]
    assert row.sum() == width  # every row, every section: exactly `width` voxels
    assert np.all(out.sum(axis=-1) == width)
    marked = np.flatnonzero(row)
    assert (
        marked.min() == 6 - width // 2 and marked.max() == 6 + (width + 1) // 2 - 1
    )  # odd: extra on the high side


def test_boundary_matches_definition_on_random_labels(rng):
    label = rng.integers(0, 4, size=(1, 3, 7, 6))
    for width, in_plane in [(1, True), (2, True), (3, False), (2, False)]:
        axes = (1, 2) if in_plane else (0, 1, 2)
        expected = brute_boundary(label, (width + 1) // 2, width // 2, axes)
        got = to_numpy(BoundaryTarget(width=width, in_plane=in_plane)(label))
        np.testing.assert_array_equal(got, expected, err_msg=f"width {width} in_plane {in_plane}")


def test_in_plane_ignores_changes_along_z():
    label = np.ones((1, 4, 5, 5), dtype=np.int32)
    label[:, 2:] = 2  # cells change only between sections 1 and 2
    assert to_numpy(BoundaryTarget(in_plane=True)(label)).sum() == 0
    out3d = to_numpy(BoundaryTarget(width=2, in_plane=False)(label))
    assert np.all(out3d[0, 1:3] == 1) and np.all(out3d[0, [0, 3]] == 0)


def test_volume_edges_are_not_boundaries():
    label = np.full((1, 3, 6, 6), 5, dtype=np.int64)
    assert to_numpy(BoundaryTarget(width=3, in_plane=False)(label)).sum() == 0


def test_bg_mode_include_vs_exclude():
    label = np.zeros((1, 1, 8, 12), dtype=np.int64)
    label[0, 0, 2:6, 2:5] = 1  # cell 1 on background
    label[0, 0, 2:6, 5:9] = 2  # cell 2 touching cell 1 at x = 5
    inc = to_numpy(BoundaryTarget(width=2, bg_mode="include")(label))[0, 0]
    exc = to_numpy(BoundaryTarget(width=2, bg_mode="exclude")(label))[0, 0]
    assert inc[0, 0] == 0 and inc[1, 3] == 1 and inc[2, 3] == 1  # background row above the cell is marked
    # exclude: only the 1|2 contour (columns 4 and 5, rows 2..5; the window reaches rows 1..6)
    assert set(zip(*np.nonzero(exc), strict=True)) == {(r, c) for r in range(1, 7) for c in (4, 5)}
    assert np.all(inc[exc == 1] == 1)


def test_large_ids_stay_distinct():
    a = 2**40  # a float32 round trip would merge a and a + 1
    label = two_halves(ids=(a, a + 1))
    assert to_numpy(BoundaryTarget(width=2)(label)).sum() == 2 * 3 * 2
    assert to_numpy(BoundaryTarget(width=2)(label.astype(np.uint64))).sum() == 2 * 3 * 2
    aff = to_numpy(AffinityTarget()(label))
    assert aff[2, 0, 0, 4] == 0 and aff[2, 0, 0, 5] == 1


@pytest.mark.parametrize("kind", ARRAY_TYPE_NAMES)
def test_array_types_give_the_same_target(kind):
    label = two_halves()
    ref = to_numpy(BoundaryTarget()(label))
    for transform in (BoundaryTarget(), AffinityTarget()):
        inp = as_type(label, kind)
        out = transform(inp)
        assert same_container(out, inp) and isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(to_numpy(BoundaryTarget()(as_type(label, kind))), ref)


def test_float_labels_accepted_only_when_whole():
    label = two_halves().astype(np.float32)
    np.testing.assert_array_equal(to_numpy(BoundaryTarget()(label)), to_numpy(BoundaryTarget()(two_halves())))
    with pytest.raises(ValueError, match="fractional"):
        BoundaryTarget()(label + 0.5)


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="width"):
        BoundaryTarget(width=0)
    with pytest.raises(ValueError, match="bg_mode"):
        BoundaryTarget(bg_mode="ignore")
    with pytest.raises(ValueError, match=r"channel-first.*\(4, 4, 4\)"):
        BoundaryTarget()(np.zeros((4, 4, 4), np.int32)[0:4])  # (Z, Y, X) without the channel
    with pytest.raises(ValueError, match="zero offset"):
        AffinityTarget(offsets=[[0, 0, 0]])
    with pytest.raises(ValueError, match="axes"):
        AffinityTarget(offsets=[[1, 0]])(two_halves())


# ---------------------------------------------------------------- affinity


def test_affinity_hand_built_3d():
    label = np.array(
        [
            [[1, 1, 1], [1, 1, 1]],
            [[1, 1, 2], [0, 0, 2]],
        ]
    )[None]  # (1, Z=2, Y=2, X=3)
    aff = to_numpy(AffinityTarget()(label))
    assert aff.shape == (3, 2, 2, 3)
    z, y, x = aff
    np.testing.assert_array_equal(z[0], 0)  # no previous section
    np.testing.assert_array_equal(z[1], [[1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(y[:, 0], 0)  # no previous row
    np.testing.assert_array_equal(y[:, 1], [[1, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(x[..., 0], 0)
    np.testing.assert_array_equal(x[1], [[0, 1, 0], [0, 0, 0]])  # background pairs are not affine
    np.testing.assert_array_equal(x[0], [[0, 1, 1], [0, 1, 1]])


def test_affinity_2d_has_two_channels_and_in_plane_matches_3d_yx():
    label = np.random.default_rng(0).integers(0, 3, size=(1, 3, 6, 5))
    aff3 = to_numpy(AffinityTarget()(label))
    aff_in_plane = to_numpy(AffinityTarget(in_plane=True)(label))
    assert aff_in_plane.shape == (2, 3, 6, 5)
    np.testing.assert_array_equal(aff_in_plane, aff3[1:])
    aff2d = to_numpy(AffinityTarget()(label[:, 1]))
    assert aff2d.shape == (2, 6, 5)
    np.testing.assert_array_equal(aff2d, aff3[1:, 1])


def test_long_range_and_negative_offsets():
    label = np.array([[[1, 1, 1, 2, 2]]])  # (1, 1, 5)
    aff = to_numpy(AffinityTarget(offsets=[[0, 2], [0, -1]])(label))
    np.testing.assert_array_equal(aff[0, 0], [0, 0, 1, 0, 0])  # x vs x - 2
    np.testing.assert_array_equal(aff[1, 0], [1, 1, 0, 1, 0])  # x vs x + 1; last has no neighbour
    w = to_numpy(AffinityTarget(offsets=[[0, 2], [0, -1]]).weight(None, label))
    np.testing.assert_array_equal(w[:, 0], [[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])


# ---------------------------------------------------------------- weights


def partial_annotation():
    """(label, valid): two cells, annotated only for x < 5."""
    label = two_halves(width_x=10, split=3)
    valid = np.zeros(label.shape, dtype=np.uint8)
    valid[..., :5] = 1
    label = label * valid  # unannotated voxels carry no label
    return label, valid


def test_boundary_weight_zero_where_window_touches_unannotated():
    label, valid = partial_annotation()
    w = to_numpy(BoundaryTarget(width=2).weight(valid, label))
    # window of x is [x - 1, x + 1]: x = 4 sees the blank x = 5
    np.testing.assert_array_equal(w[0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    bd = to_numpy(BoundaryTarget(width=2)(label))
    assert np.all(bd[..., 4:6] == 1)  # the fake contour at the annotation edge exists ...
    assert np.all(w[..., 4:6] == 0)  # ... but carries no weight
    assert np.all(bd[..., 2:4] == 1) and np.all(w[..., 2:4] == 1)  # the real 3|9 contour does


def test_affinity_weight_needs_both_voxels_annotated_and_inside():
    label, valid = partial_annotation()
    w = to_numpy(AffinityTarget().weight(valid, label))
    np.testing.assert_array_equal(w[0, 0], 0)  # z: first section has no neighbour
    np.testing.assert_array_equal(w[0, 1, 0], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(w[1, :, 0], 0)  # y: first row
    np.testing.assert_array_equal(
        w[2, 0, 1], [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    )  # x: x=0 outside, x=5 pairs with blank


def test_dict_wrappers_write_target_and_weight():
    label, valid = partial_annotation()
    d = BoundaryTargetd(keys="label", valid_key="valid_mask", weight_key="weight")(
        {"label": label, "valid_mask": valid, "image": np.zeros(label.shape, np.float32)}
    )
    np.testing.assert_array_equal(to_numpy(d["label"]), to_numpy(BoundaryTarget()(label)))
    np.testing.assert_array_equal(to_numpy(d["weight"]), to_numpy(BoundaryTarget().weight(valid, label)))
    assert d["valid_mask"] is valid
    d = AffinityTargetd(keys="label", weight_key="weight")({"label": label})  # no valid key: only borders
    np.testing.assert_array_equal(to_numpy(d["weight"]), to_numpy(AffinityTarget().weight(None, label)))
    with pytest.raises(ValueError, match="valid_key 'valid_mask' is not in the data"):
        BoundaryTargetd(keys="label", valid_key="valid_mask", weight_key="w")({"label": label})
    with pytest.raises(ValueError, match="exactly one label key"):
        BoundaryTargetd(keys=["a", "b"], weight_key="w")


def test_valid_mask_to_weightd():
    label, valid = partial_annotation()
    d = ValidMaskToWeightd(keys="valid_mask", channels=2)({"valid_mask": valid})
    w = to_numpy(d["weight"])
    assert w.shape == (2, *valid.shape[1:]) and w.dtype == np.float32
    np.testing.assert_array_equal(w[1], valid[0])
    d = ValidMaskToWeightd(keys="valid_mask", target=AffinityTarget())({"valid_mask": valid})
    np.testing.assert_array_equal(to_numpy(d["weight"]), to_numpy(AffinityTarget().weight(valid, label)))
    assert ValidMaskToWeightd(allow_missing_keys=True)({"label": label}).keys() == {"label"}
    with pytest.raises(TypeError, match="target"):
        ValidMaskToWeightd(target="boundary")


def test_short_names_resolve_in_a_bundle_config():
    parser = ConfigParser(
        {
            "imports": ["$import monai_em"],
            "bd": {"_target_": "BoundaryTargetd", "keys": "label", "width": 3, "weight_key": "weight"},
            "aff": {"_target_": "AffinityTargetd", "keys": "label", "in_plane": True},
            "w": {"_target_": "ValidMaskToWeightd", "keys": "valid_mask"},
            "loss": {"_target_": "VoxelWeightedLoss", "loss": "bce+dice"},
        }
    )
    assert type(parser.get_parsed_content("bd")) is BoundaryTargetd
    assert parser.get_parsed_content("bd").target.width == 3
    assert type(parser.get_parsed_content("aff")) is AffinityTargetd
    assert type(parser.get_parsed_content("w")) is ValidMaskToWeightd
    assert type(parser.get_parsed_content("loss")) is VoxelWeightedLoss


# ---------------------------------------------------------------- loss


@pytest.mark.parametrize("loss", ["bce", "mse", "dice", "bce+dice"])
def test_loss_ignores_unannotated_voxels(loss):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 4, 6, 6, generator=g, requires_grad=True)
    target = (torch.rand(2, 3, 4, 6, 6, generator=g) > 0.5).float()
    weight = torch.zeros_like(target)
    weight[..., :3] = 1
    fn = VoxelWeightedLoss(loss)
    value = fn(pred, torch.cat([target, weight], 1))
    value.backward()
    assert torch.all(pred.grad[..., 3:] == 0) and torch.any(pred.grad[..., :3] != 0)
    changed = pred.detach().clone()
    changed[..., 3:] = torch.randn(changed[..., 3:].shape, generator=g) * 10
    assert torch.isclose(fn(changed, target, weight), value.detach())
    # change an annotated voxel: the loss moves
    changed[0, 0, 0, 0, 0] += 5
    assert not torch.isclose(fn(changed, target, weight), value.detach())


def test_weighted_bce_is_the_mean_over_annotated_voxels():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(1, 2, 5, 5, generator=g), (torch.rand(1, 2, 5, 5, generator=g) > 0.5).float()
    weight = (torch.rand(1, 2, 5, 5, generator=g) > 0.3).float()
    sel = weight.bool()
    expected = F.binary_cross_entropy_with_logits(pred[sel], target[sel])
    assert torch.isclose(VoxelWeightedLoss("bce")(pred, target, weight), expected)
    assert VoxelWeightedLoss("bce")(pred, target, torch.zeros_like(weight)) == 0


def test_loss_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="2 target \\+ 2 weight channels"):
        VoxelWeightedLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="loss must be one of"):
        VoxelWeightedLoss("focal")


# ---------------------------------------------------------------- masks, classes, distances, PyTC options


def isbi_like_single_membrane() -> np.ndarray:
    """(1, 1, 6, 9) ISBI-style mask: 255 = cell interior, one membrane line (0) at x = 4."""
    mask = np.full((1, 1, 6, 9), 255, dtype=np.uint8)
    mask[..., 4] = 0
    return mask


def test_membrane_mask_gives_a_single_line_where_a_contour_gives_two():
    mask = isbi_like_single_membrane()
    target = to_numpy(BinaryTarget(invert=True)(mask))
    expected = np.zeros(mask.shape, np.float32)
    expected[..., 4] = 1
    np.testing.assert_array_equal(target, expected)  # one line, one pixel wide, exactly where the membrane is
    # the pitfall the issue describes: a contour of the mask marks both edges of the membrane
    contour = to_numpy(BoundaryTarget(width=2)(mask.astype(np.int64)))
    assert sorted(set(np.flatnonzero(contour[0, 0, 0]))) == [3, 4, 5]


def test_two_touching_objects_give_one_boundary():
    label = two_halves(width_x=10, split=5)  # ids 3 | 9 touching at x = 5
    out = to_numpy(target_from_pytc_option("4-1-0")(dict(label=label))["label"])
    cols = np.flatnonzero(out[0, 0, 0])
    assert list(cols) == [4, 5]  # one band across the single contact, nothing at the volume edges
    assert np.all(out.sum(-1) == 2)


def test_binary_target_of_an_object_mask_and_chosen_values():
    mito = np.array([[[0, 4, 4, 0, 7]]])
    assert to_numpy(BinaryTarget()(mito))[0, 0].tolist() == [0, 1, 1, 0, 1]
    assert to_numpy(BinaryTarget(foreground=[7])(mito))[0, 0].tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="channel-first mask"):
        BinaryTarget()(mito[0])


def test_semantic_target_keeps_classes_and_rejects_out_of_range():
    classes = np.array([[[0, 1, 2, 2]]])
    assert to_numpy(SemanticTarget(3)(classes))[0, 0].tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match=r"outside 0..1 \(num_classes=2\)"):
        SemanticTarget(2)(classes)


def test_distance_target_peaks_at_one_in_each_object_centre():
    label = np.zeros((1, 1, 7, 13), np.int64)
    label[0, 0, :, :6] = 1  # object 1: x 0..5
    label[0, 0, :, 6:] = 2  # object 2: x 6..12
    out = to_numpy(DistanceTarget()(label))[0, 0]
    # edge voxels (x = 5 and 6, where the ids meet) are 0; the volume border is not an edge
    assert np.all(out[:, 5] == 0) and np.all(out[:, 6] == 0)
    for obj in (1, 2):
        assert out[label[0, 0] == obj].max() == pytest.approx(1.0)
    # inside object 2 the distance grows with the distance to the contact (x = 6): x = 7 .. 12 -> 1 .. 6
    np.testing.assert_allclose(out[3, 7:], np.arange(1, 7) / 6)


def test_pytc_option_table():
    assert type(target_from_pytc_option("0")).__name__ == "BinaryTargetd"
    aff = target_from_pytc_option("2", do_2d=True)
    assert aff.target.offsets_for(3) == ((0, 1, 0), (0, 0, 1))
    bd = target_from_pytc_option("4-2-1")
    assert (bd.target.width, bd.target.bg_mode) == (4, "include")
    assert target_from_pytc_option("4").target.width == 2
    assert target_from_pytc_option("5-3d-0-0-5.0").target.z_res == 5.0
    assert target_from_pytc_option("9-4").target.num_classes == 4
    assert target_channels("2") == 3 and target_channels("2", do_2d=True) == 2 and target_channels("9-4") == 4
    assert loss_for_target("5").loss == "mse" and loss_for_target("membrane").loss == "bce+dice"
    assert loss_for_target("9").loss == "ce"
    with pytest.raises(ValueError, match="skeleton-aware distance"):
        target_from_pytc_option("6")
    with pytest.raises(ValueError, match="unknown target 'x'"):
        target_from_pytc_option("x")
    with pytest.raises(ValueError, match="must be integers"):
        target_from_pytc_option("4-a-1")


def test_pytc_option_writes_target_and_weight_that_the_loss_takes():
    label = np.zeros((1, 4, 8, 8), np.int64)
    label[..., 4:] = 2
    valid = np.ones_like(label)
    valid[..., :2] = 0
    d = target_from_pytc_option("0", valid_key="valid")(dict(label=label, valid=valid))
    assert to_numpy(d["weight"]).tolist() == (valid != 0).astype(np.float32).tolist()
    target = torch.cat([torch.as_tensor(d["label"]), torch.as_tensor(d["weight"])])[None]
    loss = loss_for_target("0")(torch.zeros(1, 1, 4, 8, 8), target)
    assert torch.isfinite(loss)


def test_cross_entropy_loss_is_weighted_mean_over_annotated_voxels():
    pred = torch.randn(1, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    index = torch.randint(0, 3, (1, 1, 2, 4, 4), generator=torch.Generator().manual_seed(1)).float()
    weight = torch.zeros(1, 1, 2, 4, 4)
    weight[..., :2] = 1
    got = VoxelWeightedLoss("ce")(pred, torch.cat([index, weight], 1))
    per_voxel = -torch.log_softmax(pred, 1).gather(1, index.long())
    assert torch.isclose(got, per_voxel[weight > 0].mean())
    with pytest.raises(ValueError, match="outside the 3 predicted classes"):
        VoxelWeightedLoss("ce")(pred, torch.cat([index + 3, weight], 1))
