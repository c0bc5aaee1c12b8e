import numpy as np
import pytest
from scipy import ndimage

from monai_em.data.synthetic import make_em_volume, membrane_mask


def test_same_seed_same_volume_different_seed_differs():
    a = make_em_volume((6, 64, 80), seed=3)
    b = make_em_volume((6, 64, 80), seed=3)
    c = make_em_volume((6, 64, 80), seed=4)
    for name in ("image", "label", "mito", "membrane"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.label, c.label)


@pytest.mark.parametrize("shape", [(1, 48, 64), (5, 33, 70), (12, 96, 96)])
def test_shapes_and_dtypes(shape):
    v = make_em_volume(shape, seed=0)
    assert v.image.shape == v.label.shape == v.mito.shape == v.membrane.shape == shape
    assert v.image.dtype == np.uint8 and v.label.dtype == np.int32 and v.mito.dtype == np.int32
    assert v.label.min() >= 1, "the cell label is dense"
    assert np.array_equal(np.unique(v.label), np.arange(1, v.label.max() + 1)), "ids are consecutive"


def test_membranes_lie_on_label_boundaries(synthetic_small):
    v = synthetic_small
    lab = v.label
    # every in-plane border between two cells is membrane ...
    border_y = lab[:, 1:, :] != lab[:, :-1, :]
    assert v.membrane[:, 1:, :][border_y].all() and v.membrane[:, :-1, :][border_y].all()
    # ... and every membrane pixel is within the band width of a border
    edge = membrane_mask(lab, 2)
    dist = ndimage.distance_transform_edt(~edge, sampling=(1e6, 1, 1))
    assert dist[v.membrane].max() <= 1.0


def test_image_is_dark_on_membranes_and_mitochondria(synthetic_small):
    v = synthetic_small
    cytoplasm = v.image[~v.membrane & (v.mito == 0)].mean()
    assert v.image[v.membrane].mean() < cytoplasm - 50
    assert v.mito.max() >= 3
    assert v.image[v.mito > 0].mean() < cytoplasm - 30


def test_mitochondria_stay_inside_one_cell(synthetic_small):
    v = synthetic_small
    for mid in range(1, int(v.mito.max()) + 1):
        cells = np.unique(v.label[v.mito == mid])
        assert len(cells) == 1, f"mitochondrion {mid} crosses cells {cells}"
    assert not (v.membrane & (v.mito > 0)).any()


def test_cells_are_smooth_in_z():
    v = make_em_volume((8, 96, 96), anisotropy=4.0, seed=1)
    same = (v.label[1:] == v.label[:-1]).mean()
    assert same > 0.8, f"only {same:.2f} of voxels keep their cell from one section to the next"


@pytest.mark.parametrize("bad", [dict(shape=(0, 10, 10)), dict(shape=(4, 10)), dict(anisotropy=0)])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError, match="shape|anisotropy"):
        make_em_volume(**bad)


@pytest.mark.parametrize("width", [2, 4, 6])
def test_membrane_width_is_exact(width):
    label = np.ones((1, 20, 40), np.int32)
    label[:, :, 20:] = 2  # one straight vertical border
    band = membrane_mask(label, width)
    assert band[0].sum(axis=1).tolist() == [width] * 20
    with pytest.raises(ValueError, match="even"):
        membrane_mask(label, width + 1)
