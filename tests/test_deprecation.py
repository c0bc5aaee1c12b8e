"""Renamed parameters (``mode`` -> ``grayscale_mode`` / ``stage``): the old name warns and behaves identically."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.utils import DeprecatedError

from monai_em import deprecation
from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_dataset import TileDataset
from monai_em.transforms.intensity import RandGrayscale, RandGrayscaled


def _quiet(factory):
    """``factory()`` with no warning at all (raises on any)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return factory()


@pytest.mark.parametrize("value", ["mix", "2D", "3D"])
def test_grayscale_old_name_warns_and_draws_the_same(value):
    x = torch.rand(1, 5, 12, 12, generator=torch.Generator().manual_seed(0))
    new = _quiet(lambda: RandGrayscale(grayscale_mode=value, prob=1.0))
    with pytest.warns(DeprecationWarning, match=r"`mode`.*removed in version 0\.3\.0.*`grayscale_mode`"):
        old = RandGrayscale(mode=value, prob=1.0)
    for seed in range(4):
        a, b = new.set_random_state(seed)(x), old.set_random_state(seed)(x)
        assert torch.equal(a, b) and old.params == new.params
    assert old.gray_mode == value and old.mode == new.mode == "bilinear"  # `mode` stays interpolation


def test_grayscale_dict_old_name_and_config_use_the_new_name():
    data = {"image": torch.rand(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    new = _quiet(lambda: RandGrayscaled("image", grayscale_mode="2D", prob=1.0))
    with pytest.warns(DeprecationWarning, match="grayscale_mode"):
        old = RandGrayscaled("image", mode="2D", prob=1.0)
    assert torch.equal(new.set_random_state(3)(data)["image"], old.set_random_state(3)(data)["image"])
    config = {"t": {"_target_": "RandGrayscaled", "keys": "image", "grayscale_mode": "3D"}}
    parsed = _quiet(lambda: ConfigParser(config).get_parsed_content("t"))
    assert parsed.transform.gray_mode == "3D"
    positional = _quiet(lambda: RandGrayscale(0.3, 0.3, "2D"))  # the new name took the old position
    assert positional.gray_mode == "2D"


def test_both_names_or_a_bad_value_name_the_parameter_the_caller_used():
    with pytest.raises(ValueError, match=r"both `mode`='2D' and `grayscale_mode`='3D'"):
        RandGrayscale(mode="2D", grayscale_mode="3D")
    with pytest.raises(ValueError, match=r"^grayscale_mode must be"):
        RandGrayscale(grayscale_mode="4D")
    with pytest.raises(ValueError, match=r"^mode must be"):
        RandGrayscale(mode="4D")
    vol = make_em_volume((4, 16, 16), seed=0).image
    with pytest.raises(ValueError, match=r"^stage must be one of \('train', 'inference'\), got 'eval'"):
        TileDataset({"image": vol}, stage="eval")
    with pytest.raises(ValueError, match=r"both `mode`='train' and `stage`='inference'"):
        TileDataset({"image": vol}, mode="train", stage="inference")


def test_tile_dataset_old_name_warns_and_reads_the_same_chunks():
    vol = make_em_volume((6, 24, 24), seed=2)
    volumes = {"image": vol.image, "label": vol.label}
    new = _quiet(lambda: TileDataset(volumes, chunk_num=(2, 2, 1), stage="inference", prefetch=False))
    with pytest.warns(DeprecationWarning, match=r"`mode`.*`stage`"):
        old = TileDataset(volumes, chunk_num=(2, 2, 1), mode="inference", prefetch=False)
    a, b = list(new), list(old)
    assert [c["chunk_name"] for c in a] == [c["chunk_name"] for c in b] and len(a) == 4
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["label"], y["label"])
    assert old.stage == "inference"
    with pytest.warns(DeprecationWarning, match=r"TileDataset\.mode.*`stage`"):
        assert old.mode == "inference"


def test_old_names_are_refused_from_the_removal_version(monkeypatch):
    monkeypatch.setattr(deprecation, "__version__", deprecation.REMOVED)

    @deprecation.renamed_arg("mode", "stage")
    def build(stage="train", *, mode=None):
        return deprecation.renamed_value("mode", mode, "stage", stage)[0]

    assert build(stage="inference") == "inference"
    with pytest.raises(DeprecatedError, match="`mode` was removed in version 0.3.0"):
        build(mode="inference")


def test_each_old_name_warns_once_at_the_callers_line():
    """The warning is attributed to the line that used the old name (not to a library module), so
    Python's default filters, which show DeprecationWarnings of ``__main__`` only, show it in a script."""
    vol = make_em_volume((4, 16, 16), seed=0).image
    calls = {
        "RandGrayscale": lambda: RandGrayscale(mode="2D"),
        "RandGrayscaled": lambda: RandGrayscaled("image", mode="2D"),
        "TileDataset": lambda: TileDataset({"image": vol}, mode="inference", prefetch=False),
        "TileDataset.mode": lambda: ds.mode,
    }
    ds = _quiet(lambda: TileDataset({"image": vol}, stage="inference", prefetch=False))
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert [w.category for w in caught] == [DeprecationWarning], name
        assert (caught[0].filename, caught[0].lineno) == (__file__, call.__code__.co_firstlineno), name
        assert name.split(".")[0] in str(caught[0].message)
