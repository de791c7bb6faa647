"""Hypothesis strategies for hostile ledger bytes, and the fuzz tiers' settings.

Ledgers are generated three ways: arbitrary bytes and JSON-like lines (what a parser
must survive), file-level mutations of a real signed ledger (flipped, inserted, deleted,
duplicated, swapped bytes and lines), and re-signed content mutations (a value anywhere
in an entry replaced by a generated JSON value, then every tree head signed again with
the owner's key, as an attacker holding it would). The fast tier runs
:data:`FAST_EXAMPLES` examples per target, the slow tier :data:`SLOW_EXAMPLES`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from signed_ledgers import sign_heads

from ledger.log import ENTRIES_FILE, TREE_HEADS_FILE
from privacy.mechanisms import Mechanism

__all__ = [
    "FAST_EXAMPLES",
    "SLOW_EXAMPLES",
    "fuzz_settings",
    "json_values",
    "json_text",
    "lines",
    "ledger_bytes",
    "file_mutation",
    "apply_file_mutation",
    "content_mutation",
    "apply_content_mutation",
    "typed_mutation",
    "apply_typed_mutation",
    "mutations",
    "mutate_ledger",
]

FAST_EXAMPLES = 200
#: The slow tier's examples per target: 1,000 in `make test` (the whole suite stays under
#: 20 minutes on CI), 10,000 in `make fuzz` (FEDRISK_FUZZ_EXAMPLES), the issue's bar.
SLOW_EXAMPLES = int(os.environ.get("FEDRISK_FUZZ_EXAMPLES", "1000"))


def fuzz_settings(examples: int) -> settings:
    """No deadline (the first audit warms caches), no example database on disk."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


_NUMBER_TEXT = st.sampled_from(
    ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e308", "-0.0", "1e-400", "0", "-1"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.floats(min_value=-1e12, max_value=1e13)
    | st.text(max_size=20)
    | st.sampled_from(["coordinator", "record", "enterprise", "model", "curve", "ok", "a" * 64])
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON-like values: scalars (huge and non-finite numbers included), lists, objects."""
    return st.recursive(
        _SCALARS,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def json_text(value: Any) -> bytes:
    """``value`` as JSON text, NaN and infinities written as Python's json writes them."""
    return json.dumps(value, allow_nan=True).encode()


def lines() -> st.SearchStrategy[bytes]:
    """One line: raw bytes, JSON text of a generated value, or a number literal."""
    return st.one_of(
        st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
        json_values().map(json_text),
        _NUMBER_TEXT.map(str.encode),
        st.integers(0, 400).map(lambda d: b"[" * d + b"]" * d),
    )


def ledger_bytes() -> st.SearchStrategy[bytes]:
    """The bytes of a ledger file: generated lines, with or without a final newline."""
    return st.tuples(st.lists(lines(), max_size=6), st.booleans()).map(
        lambda t: b"\n".join(t[0]) + (b"\n" if t[1] and t[0] else b"")
    )


# -- file-level mutations --------------------------------------------------------------------

_FILE_OPS = ("flip", "insert", "delete", "duplicate-line", "swap-lines", "drop-line", "truncate")


def file_mutation() -> st.SearchStrategy[tuple[str, int, int, bytes]]:
    """(operation, position, other position, bytes) applied by :func:`apply_file_mutation`."""
    return st.tuples(
        st.sampled_from(_FILE_OPS),
        st.integers(0, 1 << 16),
        st.integers(0, 1 << 16),
        st.binary(min_size=1, max_size=16),
    )


def apply_file_mutation(data: bytes, mutation: tuple[str, int, int, bytes]) -> bytes:
    """``data`` with one file-level mutation applied (positions taken modulo the size)."""
    op, at, other, payload = mutation
    if not data:
        return payload
    i, j = at % len(data), other % len(data)
    rows = data.split(b"\n")
    a, b = at % len(rows), other % len(rows)
    if op == "flip":
        return data[:i] + bytes([data[i] ^ (payload[0] or 1)]) + data[i + 1 :]
    if op == "insert":
        return data[:i] + payload + data[i:]
    if op == "delete":
        return data[: min(i, j)] + data[max(i, j) + 1 :]
    if op == "duplicate-line":
        rows.insert(b, rows[a])
    elif op == "swap-lines":
        rows[a], rows[b] = rows[b], rows[a]
    elif op == "drop-line":
        del rows[a]
    else:
        return data[:i]
    return b"\n".join(rows)


# -- re-signed content mutations -------------------------------------------------------------


def content_mutation() -> st.SearchStrategy[tuple[int, int, Any]]:
    """(line index, path choice, new value) applied by :func:`apply_content_mutation`."""
    return st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16), json_values(8))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``value`` (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def apply_content_mutation(entry_lines: list[bytes], mutation: tuple[int, int, Any]) -> list[bytes]:
    """``entry_lines`` with one value inside one entry replaced by the mutation's value,
    written canonically where JSON allows (so only the content differs)."""
    line_at, path_at, value = mutation
    if not entry_lines:
        return entry_lines
    index = line_at % len(entry_lines)
    obj = json.loads(entry_lines[index])
    paths = _paths(obj)[1:]  # never the whole entry
    path = paths[path_at % len(paths)]
    target = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    out = list(entry_lines)
    out[index] = text.encode("utf-8", errors="surrogatepass")
    return out


# -- re-signed typed mutations ---------------------------------------------------------------

_FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 5e-324, 1e-300, 1e-3, 0.5, 1.0, 2.0, -1.0, 1e6, 1e12, 1e308]
)
_INTS = st.integers(-(2**63), 2**63 - 1) | st.sampled_from(
    [0, 1, -1, 2, 200, 2**31, 10**9, 10**9 + 1, 2**53 + 1, 2**63 - 1]
)
_STRINGS = st.text(max_size=12) | st.sampled_from(
    ["coordinator", "record", "enterprise", "model", "curve", "ok", "failed", "*",
     *Mechanism, "completed", "run-1", "run-2"]
)  # fmt: skip


def typed_mutation() -> st.SearchStrategy[tuple[int, int, float, int, str]]:
    """(line, leaf, float, int, str): the value of one leaf replaced by one of its type, so
    the record still parses and the audit goes past the ledger checks."""
    return st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16), _FLOATS, _INTS, _STRINGS)


def apply_typed_mutation(
    entry_lines: list[bytes], mutation: tuple[int, int, float, int, str]
) -> list[bytes]:
    """``entry_lines`` with one number or string leaf of one entry's body replaced by a
    value of the same type, written canonically (the entry's time counts as a leaf)."""
    line_at, leaf_at, new_float, new_int, new_str = mutation
    if not entry_lines:
        return entry_lines
    index = line_at % len(entry_lines)
    obj = json.loads(entry_lines[index])
    leaves = [p for p in _paths(obj) if p and isinstance(_at(obj, p), float | int | str)]
    leaves = [p for p in leaves if p[0] in ("body", "time")]
    if not leaves:
        return entry_lines
    path = leaves[leaf_at % len(leaves)]
    old = _at(obj, path)
    new: Any = new_str if isinstance(old, str) else new_float if isinstance(old, float) else new_int
    if isinstance(old, bool):
        new = not old
    _at(obj, path[:-1])[path[-1]] = new
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    out = list(entry_lines)
    out[index] = text.encode("utf-8", errors="surrogatepass")
    return out


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


# -- one mutation of a ledger directory ------------------------------------------------------


def mutations() -> st.SearchStrategy[tuple[str, tuple[Any, ...]]]:
    """(how, mutation): "entries"/"heads" file-level, "content"/"typed" re-signed."""
    return (
        st.tuples(st.sampled_from(["entries", "heads"]), file_mutation())
        | st.tuples(st.just("content"), content_mutation())
        | st.tuples(st.just("typed"), typed_mutation())
    )


def mutate_ledger(
    directory: Path, key: Ed25519PrivateKey, ledger_id: str, how: str, mutation: tuple[Any, ...]
) -> None:
    """Apply one mutation of :func:`mutations` to the ledger in ``directory``; the
    re-signed ones sign every tree head again with ``key``."""
    entries, heads = directory / ENTRIES_FILE, directory / TREE_HEADS_FILE
    if how == "entries":
        entries.write_bytes(apply_file_mutation(entries.read_bytes(), mutation))  # type: ignore[arg-type]
        return
    if how == "heads":
        heads.write_bytes(apply_file_mutation(heads.read_bytes(), mutation))  # type: ignore[arg-type]
        return
    apply = apply_content_mutation if how == "content" else apply_typed_mutation
    rows = apply(entries.read_bytes().splitlines(), mutation)  # type: ignore[operator]
    entries.write_bytes(b"".join(r + b"\n" for r in rows))
    heads.write_bytes(b"".join(h + b"\n" for h in sign_heads(key, ledger_id, rows)))
