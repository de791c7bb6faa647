"""Size limits that keep the code readable (issue 11): every module of the packages under
450 lines, every class at most 12 methods (``def``s in its body: dunders, properties and
class methods count). Generated gRPC stubs are not ours and do not count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from test_layers import LAYERS, REPO

MAX_MODULE_LINES = 450
MAX_CLASS_METHODS = 12


def _modules(root: Path) -> Iterator[Path]:
    for package in LAYERS:
        yield from (p for p in sorted((root / package).rglob("*.py")) if "_pb2" not in p.name)


def long_modules(root: Path = REPO) -> list[tuple[str, int]]:
    """(module, lines) for every module at or over the limit."""
    found = []
    for path in _modules(root):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines >= MAX_MODULE_LINES:
            found.append((path.relative_to(root).as_posix(), lines))
    return found


def large_classes(root: Path = REPO) -> list[tuple[str, str, int]]:
    """(module, class, methods) for every class over the limit."""
    found = []
    for path in _modules(root):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                methods = [
                    b for b in node.body if isinstance(b, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
                if len(methods) > MAX_CLASS_METHODS:
                    found.append((path.relative_to(root).as_posix(), node.name, len(methods)))
    return found


def test_every_module_is_under_the_line_limit() -> None:
    assert long_modules() == []


def test_no_class_has_more_methods_than_the_limit() -> None:
    assert large_classes() == []


def test_the_limits_catch_a_planted_long_module_and_large_class(tmp_path: Path) -> None:
    # Prepare: a 450-line module and a class of 13 methods
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "long.py").write_text("x = 1\n" * 450, encoding="utf-8")
    methods = "".join(f"    def m{i}(self) -> None: ...\n" for i in range(13))
    (tmp_path / "models" / "big.py").write_text(f"class Big:\n{methods}", encoding="utf-8")
    # Execute / Assert
    assert long_modules(tmp_path) == [("models/long.py", 450)]
    assert large_classes(tmp_path) == [("models/big.py", "Big", 13)]
