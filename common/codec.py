"""One strict codec between JSON (or a flat wire dict) and fedrisk's frozen dataclasses.

:func:`decode` and :func:`decode_json` check a JSON value against a type (a dataclass,
possibly nested, or a plain container) with pydantic: an unknown key, a missing key, a
value of the wrong type is an error; nothing is coerced ("1" is not 1, 1 is not True; an
int is read as a float where a float is expected). :func:`decode_wire` does the same for a
flat dict of Python values JSON cannot carry (bytes, in a Flower ConfigRecord) against a
``TypedDict``. Every problem is reported in one error of the caller's class, naming where
(``what.key[index]``) and what was found; hostile input (deep nesting, huge numbers,
junk) gives such an error, never a traceback. :func:`encode` is the inverse of
:func:`decode`: dataclasses become objects and tuples lists, values as they are (so the
bytes hashed or signed are what they always were); with ``omit_none`` a dataclass field
whose value is None is left out, as records write optional fields that older files lack.

    >>> @dataclass(frozen=True)
    ... class Point:
    ...     x: int
    >>> decode(Point, {"x": 1}, "point", ValueError)
    Point(x=1)
    >>> decode(Point, {"x": "1"}, "point", ValueError)
    Traceback (most recent call last):
    ...
    ValueError: point.x must be int, got str '1'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, PydanticSerializationError, to_jsonable_python

from common.array_json import encode_array

__all__ = [
    "Count",
    "ExactFloat",
    "hex_digits",
    "decode",
    "decode_json",
    "decode_wire",
    "encode",
    "describe_errors",
]

T = TypeVar("T")

#: A non-negative int (a sequence number, a size).
Count = Annotated[int, Field(ge=0)]


def _exact_float(value: Any) -> Any:
    if type(value) is not float:
        raise ValueError("must be a float written with a decimal point")
    return value


#: A float that must be written as one ("5.0", not "5"): one canonical form per value.
ExactFloat = Annotated[float, BeforeValidator(_exact_float)]


def hex_digits(digits: int) -> AfterValidator:
    """A check for ``Annotated[str, hex_digits(n)]``: exactly n lowercase hex digits."""

    def check(value: str) -> str:
        if len(value) != digits or value.strip("0123456789abcdef"):
            raise ValueError(f"must be {digits} lowercase hex digits")
        return value

    return AfterValidator(check)


#: One pydantic adapter per decoded type, built on first use.
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(tp)
    if adapter is None:
        adapter = _ADAPTERS[tp] = TypeAdapter(tp)
    return adapter


def decode_json(tp: type[T], text: str | bytes, where: str, error: type[Exception]) -> T:
    """JSON text parsed and checked as ``tp``; ``error`` names ``where`` and every problem."""
    try:
        return _adapter(tp).validate_json(text, strict=True, extra="forbid")  # type: ignore[no-any-return]
    except ValidationError as err:
        raise error(describe_errors(err, where)) from None


def decode(tp: type[T], obj: Any, where: str, error: type[Exception]) -> T:
    """A JSON value (as ``json.loads`` returns it) checked as ``tp``; see :func:`decode_json`."""
    try:
        text = json.dumps(obj)
    except (TypeError, ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise error(f"{where} is not a JSON value: {reason}") from None
    return decode_json(tp, text, where, error)


def decode_wire(tp: type[T], obj: Any, where: str, error: type[Exception]) -> T:
    """A flat dict of Python values (int, str, bytes, lists of them) checked as ``tp``, a
    ``typing_extensions.TypedDict``; strict: a bool is not an int, a str not bytes."""
    try:
        return _adapter(tp).validate_python(obj, strict=True, extra="forbid")  # type: ignore[no-any-return]
    except ValidationError as err:
        raise error(describe_errors(err, where)) from None


def encode(obj: Any, *, omit_none: bool = False) -> Any:
    """The JSON value of ``obj``: dataclasses become objects, tuples lists, arrays
    :mod:`common.array_json` objects; every other value is kept as it is. With
    ``omit_none``, dataclass fields that are None are left out (None in a dict is kept).

    >>> @dataclass(frozen=True)
    ... class Note:
    ...     text: str
    ...     extra: dict | None = None
    >>> encode([Note("a"), Note("b", {"k": None})], omit_none=True)
    [{'text': 'a'}, {'text': 'b', 'extra': {'k': None}}]
    """
    if omit_none:
        return _encode_omitting_none(obj)
    try:
        return to_jsonable_python(obj, fallback=_encode_other)
    except PydanticSerializationError as err:
        raise TypeError(str(err)) from None


def _encode_omitting_none(obj: Any) -> Any:
    """:func:`encode`, leaving out the dataclass fields that are None."""
    if is_dataclass(obj) and not isinstance(obj, type):
        values = ((f.name, getattr(obj, f.name)) for f in fields(obj))
        return {name: _encode_omitting_none(v) for name, v in values if v is not None}
    if isinstance(obj, list | tuple):
        return [_encode_omitting_none(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _encode_omitting_none(v) for k, v in obj.items()}
    return encode(obj)


def _encode_other(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_array(value)
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


# -- error messages ------------------------------------------------------------------------

#: What the error types expect, in JSON's terms.
_EXPECTED = {
    "int_type": "int",
    "int_parsing": "int",
    "int_from_float": "int",
    "float_type": "float",
    "float_parsing": "float",
    "string_type": "str",
    "bool_type": "bool",
    "bool_parsing": "bool",
    "bytes_type": "bytes",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "dict_type": "an object",
    "dataclass_type": "an object",
    "model_type": "an object",
    "none_required": "null",
}

_MOST = 8  # problems listed in one message


@dataclass(frozen=True)
class _Problem:
    path: str
    text: str


def describe_errors(err: ValidationError, where: str) -> str:
    """Every problem of ``err`` as ``where.path ...``, missing and unknown keys grouped."""
    missing: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    others: list[_Problem] = []
    for detail in err.errors(include_url=False):
        *parent, last = detail["loc"] or ("",)
        path = _path(where, tuple(parent))
        if detail["type"] == "missing":
            missing.setdefault(path, []).append(repr(last))
        elif detail["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            unknown.setdefault(path, []).append(repr(last))
        else:
            others.append(_Problem(_path(where, detail["loc"]), _what_is_wrong(detail)))
    lines = [f"{p} misses key(s) {', '.join(keys)}" for p, keys in missing.items()]
    lines += [f"{p} has unknown key(s) {', '.join(sorted(keys))}" for p, keys in unknown.items()]
    lines += [f"{p.path} {p.text}" for p in others]
    more = f"; and {len(lines) - _MOST} more" if len(lines) > _MOST else ""
    return "; ".join(lines[:_MOST]) + more


def _path(where: str, loc: tuple[int | str, ...]) -> str:
    text = where
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _what_is_wrong(detail: ErrorDetails) -> str:
    kind, context = detail["type"], detail.get("ctx") or {}
    if kind == "json_invalid":
        return f"is not valid JSON: {context.get('error', detail['msg'])}"
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}, got {_describe(detail['input'])}"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {_describe(detail['input'])}"
    message = detail["msg"].removeprefix("Value error, ").removeprefix("Input ")
    return f"{message}, got {_describe(detail['input'])}"


def _describe(value: Any) -> str:
    """The type of ``value`` and a short repr (never a hostile input in full)."""
    name = {dict: "object", type(None): "null"}.get(type(value), type(value).__name__)
    if isinstance(value, dict | list | tuple):
        return f"{name} of {len(value)}"
    if isinstance(value, int) and value.bit_length() > 100:
        return f"{name} of {value.bit_length()} bits"
    text = repr(value)
    return f"{name} {text[:40]}..." if len(text) > 40 else f"{name} {text}"
