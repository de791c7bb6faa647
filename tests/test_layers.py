"""The layer rules of the code base, checked from its imports (README, Development).

Layers, low to high (imports only go down; packages of one layer do not import each
other): common < models, privacy, secagg, ledger < protocols < enterprise_node,
coordinator, auditor < harness < bench. Every ``import`` counts, at module level or inside
a function. ``KNOWN`` lists the imports that break a rule today, each with the step of
issue 11 that removes it; a new one anywhere fails this test, and so does an entry that
no longer occurs (the list only shrinks).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "common": 0,
    "models": 1,
    "privacy": 1,
    "secagg": 1,
    "ledger": 1,
    "protocols": 2,
    "enterprise_node": 3,
    "coordinator": 3,
    "auditor": 3,
    "harness": 4,
    "bench": 5,
}

#: (importing file, imported package) pairs that break a rule today, and why they go.
_LAB = "lab code (local federations, demos, planted defects): moves to harness/"
KNOWN: dict[tuple[str, str], str] = {
    ("coordinator/cli.py", "enterprise_node"): _LAB,
    ("coordinator/demo.py", "auditor"): _LAB,
    ("coordinator/demo.py", "enterprise_node"): _LAB,
    ("coordinator/deploy_demo.py", "enterprise_node"): _LAB,
    ("coordinator/evaluation.py", "enterprise_node"): _LAB,
    ("coordinator/federation.py", "enterprise_node"): _LAB,
    ("coordinator/loopback.py", "enterprise_node"): _LAB,
    ("models/defects.py", "enterprise_node"): _LAB,
}


def imports(path: Path) -> Iterator[str]:
    """The first-party packages ``path`` imports (absolute imports; relative ones stay
    inside the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LAYERS:
                yield top


def violations(root: Path = REPO) -> set[tuple[str, str]]:
    """Every (file, imported package) pair that imports sideways or up."""
    found = set()
    for package, layer in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            for imported in imports(path):
                if imported != package and LAYERS[imported] >= layer:
                    found.add((path.relative_to(root).as_posix(), imported))
    return found


def test_imports_only_go_down() -> None:
    found = violations()
    new = sorted(found - set(KNOWN))
    gone = sorted(set(KNOWN) - found)
    assert not new, f"imports that break the layer rules (README, Development): {new}"
    assert not gone, f"no longer imported: remove from KNOWN: {gone}"


def test_a_planted_import_of_a_party_from_another_is_caught(tmp_path: Path) -> None:
    # Prepare: a coordinator module that imports the node's code
    for package in LAYERS:
        (tmp_path / package).mkdir()
    (tmp_path / "coordinator" / "planted.py").write_text(
        "from enterprise_node.budget import BudgetGuard\n", encoding="utf-8"
    )
    (tmp_path / "models" / "fine.py").write_text("import common.errors\n", encoding="utf-8")
    # Execute / Assert
    assert violations(tmp_path) == {("coordinator/planted.py", "enterprise_node")}
