"""docs/migrating-from-pytc.md matches the code key by key."""

from __future__ import annotations

import re
from pathlib import Path

from monai_em.config import BUNDLE_IDS, pytc_defaults
from monai_em.config.pytc import _IGNORED_KEYS, IGNORED_SECTIONS, UNSUPPORTED_KEYS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "migrating-from-pytc.md").read_text()
CODE = set(re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", DOC, flags=re.S)))  # inline code, not fences


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_key_monai_em_reads_is_in_the_guide():
    missing = [k for k in _leaves(pytc_defaults()) if k not in CODE]
    assert not missing, f"keys read by monai_em.config but not in the migration guide: {missing}"


def test_every_key_in_the_guide_is_read():
    known = set(_leaves(pytc_defaults()))
    named = {c for c in CODE if re.fullmatch(r"(MODEL|DATASET|AUGMENTOR|SOLVER|INFERENCE)(\.[A-Z0-9_]+)+", c)}
    ignored = {f"{s}.{k}" for s, keys in _IGNORED_KEYS.items() for k in keys}
    typo = {"AUGMENTOR.MISALIGNMNT"}  # the guide's example of a misspelled key
    assert named - known - ignored - UNSUPPORTED_KEYS - typo == set()


def test_every_bundle_id_is_in_the_guide():
    for bundle, ids in BUNDLE_IDS.items():
        missing = [i for i in ids if i not in CODE]
        assert not missing, f"{bundle}.yaml ids mapped from PyTC keys but not in the guide: {missing}"


def test_ignored_sections_are_named():
    assert all(f"`{s}`" in DOC for s in IGNORED_SECTIONS)
