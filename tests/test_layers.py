"""The layer rules of the code base, checked from its imports (README, Development).

Layers, low to high (imports only go down; packages of one layer do not import each
other): common < models, privacy, secagg, ledger < protocols < enterprise_node,
coordinator, auditor < insurance < harness < bench. Every ``import`` counts, at module
level or inside a function, and no module imports itself round a loop of other modules.
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
    "insurance": 4,
    "harness": 5,
    "bench": 6,
}


def imported_modules(path: Path) -> Iterator[str]:
    """The dotted names ``path`` imports from our packages (``from a.b import c`` gives
    ``a.b`` and ``a.b.c``: c may be a module); relative imports are not used here."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] in LAYERS)


def modules(root: Path) -> dict[str, Path]:
    """Every module of our packages under ``root`` by dotted name."""
    found = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def violations(root: Path = REPO) -> set[tuple[str, str]]:
    """Every (file, imported package) pair that imports sideways or up."""
    found = set()
    for name, path in modules(root).items():
        package = name.split(".")[0]
        for imported in {m.split(".")[0] for m in imported_modules(path)}:
            if imported != package and LAYERS[imported] >= LAYERS[package]:
                found.add((path.relative_to(root).as_posix(), imported))
    return found


def import_loops(root: Path = REPO) -> list[list[str]]:
    """The import cycles among our modules (strongly connected components of more than one
    module, or a module importing itself), each sorted."""
    known = modules(root)
    graph = {
        name: sorted({m for m in imported_modules(path) if m in known} - {name})
        for name, path in known.items()
    }
    return [sorted(c) for c in _components(graph) if len(c) > 1]


def _components(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result


def test_imports_only_go_down() -> None:
    found = sorted(violations())
    assert not found, f"imports that break the layer rules (README, Development): {found}"


def test_no_import_loops() -> None:
    assert import_loops() == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in LAYERS:
        (tmp_path / package).mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_a_planted_import_of_a_party_from_another_is_caught(tmp_path: Path) -> None:
    # Prepare: a coordinator module that imports the node's code
    root = _tree(
        tmp_path,
        {
            "coordinator/planted.py": "from enterprise_node.budget import BudgetGuard\n",
            "models/fine.py": "import common.errors\n",
        },
    )
    # Execute / Assert
    assert violations(root) == {("coordinator/planted.py", "enterprise_node")}


def test_a_planted_import_loop_is_caught(tmp_path: Path) -> None:
    # Prepare: a -> b at module level, b -> a inside a function; c imports a (no loop)
    root = _tree(
        tmp_path,
        {
            "coordinator/a.py": "from coordinator.b import thing\n",
            "coordinator/b.py": "def thing():\n    from coordinator import a\n",
            "coordinator/c.py": "import coordinator.a\n",
        },
    )
    # Execute / Assert
    assert import_loops(root) == [["coordinator.a", "coordinator.b"]]
