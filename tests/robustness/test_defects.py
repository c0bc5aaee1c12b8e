"""The defect benchmark: stated rates hold exactly, shifts move image and labels by the stated amount, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monai_em.robustness.defects import (
    BLUR_SIGMA,
    DEFECTS,
    KINDS,
    PART_AREA,
    SLIP_PX,
    STEP_PX,
    apply_defects,
    corrupt,
    draw_defects,
)

Z, H, W = 20, 48, 56


@pytest.fixture(scope="module")
def volume():
    """A textured uint8 image and labels that name their own voxel: ``label = y * W + x + 1`` (any shift shows)."""
    rng = np.random.default_rng(7)
    image = rng.integers(30, 226, (Z, H, W), dtype=np.uint8)
    yy, xx = np.indices((H, W))
    label = np.broadcast_to((yy * W + xx + 1).astype(np.uint32), (Z, H, W)).copy()
    return image, label


def source_offset(label_section: np.ndarray) -> tuple[int, int]:
    """(dy, dx) by which a section's content moved, read from the centre voxel of a coordinate label."""
    y, x = H // 2, W // 2
    sy, sx = divmod(int(label_section[y, x]) - 1, W)
    return y - sy, x - sx


def altered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.flatnonzero((a != b).any(axis=(1, 2)))


@pytest.mark.parametrize("kind", [k for k in DEFECTS if k != "translation"])
@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5])
def test_exactly_the_stated_fraction_of_sections_is_altered(volume, kind, rate):
    image, label = volume
    out = corrupt(image, label, kind, rate, seed=3)
    n = round(rate * Z)
    assert len(out.defects) == n and len({d.section for d in out.defects}) == n
    assert altered(out.image, image).tolist() == sorted(d.section for d in out.defects)
    assert 0 not in altered(out.image, image)  # section 0 stays intact
    assert out.image.dtype == image.dtype and out.image.shape == image.shape
    if kind == "slip":  # content moved: labels moved on exactly the same sections
        assert altered(out.label, label).tolist() == altered(out.image, image).tolist()
    else:  # the tissue is still there: labels untouched
        np.testing.assert_array_equal(out.label, label)


def test_slip_moves_image_and_labels_by_the_stated_shift(volume):
    image, label = volume
    out = corrupt(image, label, "slip", 0.3, seed=11)
    for d in out.defects:
        dy, dx = d.shift
        assert SLIP_PX[0] - 1 <= math.hypot(dy, dx) <= SLIP_PX[1] + 1  # rounded to whole voxels
        assert source_offset(out.label[d.section]) == (dy, dx)
        inner = (slice(max(dy, 0), H + min(dy, 0)), slice(max(dx, 0), W + min(dx, 0)))
        src = (slice(max(-dy, 0), H + min(-dy, 0)), slice(max(-dx, 0), W + min(-dx, 0)))
        np.testing.assert_array_equal(out.image[d.section][inner], image[d.section][src])
        np.testing.assert_array_equal(out.label[d.section][inner], label[d.section][src])
    untouched = [z for z in range(Z) if z not in {d.section for d in out.defects}]
    np.testing.assert_array_equal(out.image[untouched], image[untouched])


def test_translation_steps_add_up_from_their_section_on(volume):
    image, label = volume
    out = corrupt(image, label, "translation", 0.25, seed=5)
    assert len(out.defects) == 5
    expected, total = [], np.zeros(2, int)
    steps = {d.section: d.shift for d in out.defects}
    for z in range(Z):
        total = total + steps.get(z, (0, 0))
        expected.append(tuple(int(v) for v in total))
        assert source_offset(out.label[z]) == expected[-1]
    changes = [z for z in range(1, Z) if expected[z] != expected[z - 1]]
    assert changes == sorted(steps)  # a relative jump exactly at the stated fraction of section interfaces
    assert all(STEP_PX[0] - 1 <= math.hypot(*s) <= STEP_PX[1] + 1 for s in steps.values())


def test_missing_sections_are_black_and_missing_parts_cover_their_area(volume):
    image, label = volume
    miss = corrupt(image, label, "missing_section", 0.2, seed=1)
    for d in miss.defects:
        assert (miss.image[d.section] == 0).all()
    part = corrupt(image, label, "missing_part", 0.5, seed=2)
    for d in part.defects:
        black = part.image[d.section] == 0
        assert PART_AREA[0] <= d.area <= PART_AREA[1]
        assert abs(black.mean() - d.area) < 0.03
        assert (part.image[d.section][~black] == image[d.section][~black]).all()


def test_blur_and_contrast_change_the_statistics_they_name(volume):
    image, label = volume
    blur = corrupt(image, label, "blur", 0.3, seed=4)
    for d in blur.defects:
        assert BLUR_SIGMA[0] <= d.sigma <= BLUR_SIGMA[1]
        assert blur.image[d.section].std() < 0.5 * image[d.section].std()  # smoothed noise loses its spread
    contrast = corrupt(image.astype(np.float32) / 255, None, "contrast", 0.5, seed=6)
    for d in contrast.defects:
        assert 1.5 - 1e-9 <= max(d.gain, 1 / d.gain) <= 2.0 + 1e-9
        before, after = image[d.section] / 255.0, contrast.image[d.section]
        inside = (after > 0) & (after < 1)  # not clipped
        expected = before.mean() + d.gain * (before - before.mean()) + d.offset
        np.testing.assert_allclose(after[inside], expected[inside], atol=1e-5)
    assert contrast.label is None


def test_combined_draws_every_kind_at_the_stated_rate(volume):
    image, label = volume
    out = corrupt(image, label, "combined", 0.5, seed=9)
    assert len(out.defects) == 10
    kinds = {d.kind for d in corrupt(image, label, "combined", 1.0, seed=0).defects}
    assert kinds == set(DEFECTS)


@pytest.mark.parametrize("kind", KINDS)
def test_reproducible_per_seed_and_different_across_seeds(volume, kind):
    image, label = volume
    a, b = corrupt(image, label, kind, 0.3, seed=21), corrupt(image, label, kind, 0.3, seed=21)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    c = corrupt(image, label, kind, 0.3, seed=22)
    assert a.defects != c.defects and not np.array_equal(a.image, c.image)


def test_rate_zero_is_the_clean_volume_and_nothing_global_moves(volume):
    image, label = volume
    state = np.random.get_state()[1].copy()
    out = corrupt(image, label, "combined", 0.0, seed=0)
    np.testing.assert_array_equal(out.image, image)
    np.testing.assert_array_equal(out.label, label)
    assert np.array_equal(np.random.get_state()[1], state)


def test_bad_arguments_are_named(volume):
    image, label = volume
    with pytest.raises(ValueError, match="kind must be one of"):
        draw_defects(Z, "fold", 0.1, 0)
    with pytest.raises(ValueError, match="rate must lie in"):
        draw_defects(Z, "blur", 1.5, 0)
    with pytest.raises(ValueError, match="label shape"):
        corrupt(image, label[:3], "blur", 0.1, 0)
    with pytest.raises(ValueError, match="section 20 is outside the 20 sections"):
        apply_defects(image, label, draw_defects(40, "blur", 1.0, 0))


def test_real_em_corruption_keeps_ids_and_alters_the_stated_sections(fib25):
    image, label = fib25[0][:20], fib25[1][:20]
    out = corrupt(image, label, "combined", 0.4, seed=0)
    drift = np.zeros((len(image), 2), int)  # translation steps move every later section too
    for d in out.defects:
        if d.kind == "translation":
            drift[d.section :] += d.shift
    expected = {d.section for d in out.defects} | set(np.flatnonzero(drift.any(axis=1)).tolist())
    assert altered(out.image, image).tolist() == sorted(expected)
    assert set(np.unique(out.label)) <= set(np.unique(label))  # labels move, never blend
