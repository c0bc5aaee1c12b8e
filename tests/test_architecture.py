"""The layers of docs/architecture.md hold: a part of monai_em imports only parts of lower layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "monai_em"
DOC = Path(__file__).parents[1] / "docs" / "architecture.md"

# layer of each top-level module or package of monai_em (the table in docs/architecture.md)
LAYERS = {
    "roles": 0,
    "deprecation": 0,
    "data": 1,
    "losses": 1,
    "visualize": 1,
    "transforms": 2,
    "inference": 2,
    "training": 2,
    "segmentation": 3,
    "config": 4,
    "robustness": 5,
    "convert": 5,
    "demo": 5,
    "__init__": 5,
}


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_parts(path: Path) -> set[str]:
    """Top-level parts of monai_em that ``path`` imports (module level or inside functions)."""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            full = base + (node.module.split(".") if node.module else [])
            if full[:1] == ["monai_em"]:  # ``__version__`` is set before __init__ imports anything
                found |= (
                    {full[1]} if len(full) > 1 else {a.name for a in node.names if a.name != "__version__"}
                )
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("monai_em.")}
    return found


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer():
    parts = {_part(p) for p in _modules()}
    assert parts <= set(LAYERS), f"add {sorted(parts - set(LAYERS))} to LAYERS and to docs/architecture.md"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    part = _part(path)
    upward = {p for p in _imported_parts(path) - {part} if LAYERS.get(p, 99) >= LAYERS[part]}
    assert not upward, f"monai_em/{path.relative_to(PACKAGE)} (layer {LAYERS[part]}) imports {sorted(upward)}"


def test_the_doc_lists_the_same_layers():
    """The layer table of docs/architecture.md is this test's table."""
    documented = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            documented.update({name.strip(" `"): int(cells[0]) for name in cells[1].split(",")})
    assert documented == {k: v for k, v in LAYERS.items() if k != "__init__"}
