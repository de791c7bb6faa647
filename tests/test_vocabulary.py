"""One spelling per name (issue 11): no string literal names a DP mechanism, a message
type or a progress event outside the one module that defines it, tests included; code
uses ``privacy.mechanisms.Mechanism``, the constants of ``protocols.messages`` and the
event records of ``coordinator.progress_events``. (Production code names ledger record
kinds by their classes' ``KIND`` too; tests still spell them where they pin what a
ledger holds.)

Most names are distinctive ("distributed_discrete_gaussian_glm", "query.sa_keys",
"round_end"): any literal equal to one is a finding. Some are also words of other
vocabularies ("dp_sgd" is a training method, "curve" a task kind, "train" Flower's message
type, "run_resumed" a ledger record, "newton_step" a function): those count where the
literal is used as a mechanism, message type or event (the value of a ``mechanism=`` /
``message_type=`` / ``event=`` argument or of such a key, or compared with such an
attribute). ``tests/privacy/test_mechanisms.py`` pins the names as
written to disk and is the one place they are spelled out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from test_layers import LAYERS, REPO

import protocols.messages as messages
from coordinator.progress_events import EVENT_TYPES
from privacy.mechanisms import Mechanism

#: value -> the module that defines it
VOCABULARY: dict[str, str] = {
    **{m.value: "privacy/mechanisms.py" for m in Mechanism},
    **{
        getattr(messages, name): "protocols/messages.py"
        for name in (
            "CURVE_ACTION",
            "SECAGG_KEYS_ACTION",
            "SECAGG_SHARES_ACTION",
            "SECAGG_UNMASK_ACTION",
            "MODEL_TASK",
            "CURVE_TASK",
            "SECAGG_KEYS",
            "SECAGG_SHARES",
            "SECAGG_UNMASK",
        )
    },
    **{kind: "coordinator/progress_events.py" for kind in EVENT_TYPES},
}
#: spellings shared with another vocabulary: only their use in this role counts
SHARED_WORDS = {"dp_sgd", "curve", "train", "run_resumed", "newton_step", "enterprise_dp"}
ROLES = {"mechanism", "message_type", "event"}
PINNING = {"tests/privacy/test_mechanisms.py"}


def _role(node: ast.AST) -> str | None:
    """The attribute, keyword or key name an expression stands for, if any."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def _role_literals(tree: ast.AST) -> Iterator[ast.Constant]:
    """String literals used as a mechanism or message type."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ROLES:
            yield from _constants(node.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in ROLES:
                    yield from _constants(value)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_role(side) in ROLES for side in sides):
                for side in sides:
                    yield from _constants(side)


def _constants(node: ast.AST) -> Iterator[ast.Constant]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub


def findings(root: Path = REPO) -> list[str]:
    """``file:line 'literal'`` for every literal that spells a name outside its module."""
    found = set()
    paths = [p for package in (*LAYERS, "tests") for p in sorted((root / package).rglob("*.py"))]
    for path in paths:
        where = path.relative_to(root).as_posix()
        if "_pb2" in path.name or where in PINNING:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            value = node.value
            if value in VOCABULARY and value not in SHARED_WORDS and where != VOCABULARY[value]:
                found.add(f"{where}:{node.lineno} {value!r}")
        for node in _role_literals(tree):
            if node.value in VOCABULARY and where != VOCABULARY[node.value]:
                found.add(f"{where}:{node.lineno} {node.value!r}")
    return sorted(found)


def test_no_literal_spells_a_mechanism_message_type_or_event_outside_its_module() -> None:
    assert findings() == []


def test_a_planted_literal_is_caught(tmp_path: Path) -> None:
    # Prepare: a distinctive name anywhere, a shared word as a mechanism, one as a method
    (tmp_path / "coordinator").mkdir()
    (tmp_path / "coordinator" / "planted.py").write_text(
        'A = "distributed_discrete_gaussian_glm"\n'
        'receipt(mechanism="dp_sgd")\n'
        'method = "dp_sgd"\n'
        'if reply.message_type == "train": pass\n'
        'if line["event"] == "round_end": pass\n'
        'record = {"event": "run_resumed"}\n'
        'kind = "run_resumed"\n',
        encoding="utf-8",
    )
    # Execute / Assert
    assert findings(tmp_path) == [
        "coordinator/planted.py:1 'distributed_discrete_gaussian_glm'",
        "coordinator/planted.py:2 'dp_sgd'",
        "coordinator/planted.py:4 'train'",
        "coordinator/planted.py:5 'round_end'",
        "coordinator/planted.py:6 'run_resumed'",
    ]
