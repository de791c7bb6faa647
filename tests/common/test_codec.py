"""The one strict codec (common.codec): what it accepts, what it refuses, how it says so."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

import numpy as np
import pytest
from typing_extensions import TypedDict

from common.codec import Count, ExactFloat, decode, decode_json, decode_wire, encode, hex_digits
from common.errors import StateError


@dataclass(frozen=True)
class Reason:
    node: str
    reason: str


@dataclass(frozen=True)
class Report:
    name: str
    count: Count
    share: float
    unit: Literal["record", "enterprise"]
    reasons: tuple[Reason, ...]
    note: str | None = None


@dataclass(frozen=True)
class Stamp:
    time: ExactFloat
    digest: Annotated[str, hex_digits(8)]


class Wire(TypedDict):
    node_id: int
    keys: list[bytes]
    extra_note: NotRequired[str]


def a_report() -> Report:
    return Report("r", 3, 0.5, "record", (Reason("a", "over budget"),))


def test_a_dataclass_round_trips_through_json() -> None:
    report = a_report()
    body = encode(report)
    assert body == {
        "name": "r",
        "count": 3,
        "share": 0.5,
        "unit": "record",
        "reasons": [{"node": "a", "reason": "over budget"}],
        "note": None,
    }
    assert decode(Report, json.loads(json.dumps(body)), "report", StateError) == report
    assert decode_json(Report, json.dumps(body), "report", StateError) == report


def test_encode_keeps_values_as_they_are_and_arrays_as_array_json() -> None:
    # an int stays an int and a NaN a NaN: the caller's serialiser decides (canonical JSON
    # refuses NaN), the codec never rewrites what will be hashed
    assert encode({"x": (1, 2.0), "n": math.nan})["x"] == [1, 2.0]
    assert math.isnan(encode({"n": math.nan})["n"])
    assert encode(np.arange(2.0))["shape"] == [2]
    with pytest.raises(TypeError, match="cannot encode a object"):
        encode({"x": object()})


def test_an_int_reads_as_a_float_but_nothing_else_is_coerced() -> None:
    body = encode(a_report()) | {"share": 1}
    assert decode(Report, body, "report", StateError).share == 1.0
    with pytest.raises(StateError, match="report.count must be int, got str '3'"):
        decode(Report, body | {"count": "3"}, "report", StateError)
    with pytest.raises(StateError, match="report.share must be float, got str '1'"):
        decode(Report, body | {"share": "1"}, "report", StateError)
    with pytest.raises(StateError, match="report.name must be str, got bool True"):
        decode(Report, body | {"name": True}, "report", StateError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, r"report has unknown key\(s\) 'extra'"),
        ({"reasons": [{"node": "a"}]}, r"report.reasons\[0\] misses key\(s\) 'reason'"),
        ({"reasons": [{"node": "a", "reason": "b", "x": 0}]}, r"reasons\[0\] has unknown key"),
        ({"unit": "site"}, "report.unit must be one of 'record' or 'enterprise', got str 'site'"),
        ({"count": -1}, "report.count should be greater than or equal to 0, got int -1"),
        ({"count": 2.0}, "report.count must be int, got float 2.0"),
        ({"reasons": "a,b"}, "report.reasons must be a list, got str 'a,b'"),
        ({"note": 5}, "report.note must be str, got int 5"),
    ],
)
def test_a_bad_value_or_key_is_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StateError, match=message):
        decode(Report, encode(a_report()) | change, "report", StateError)


def test_missing_keys_are_listed_together_in_field_order() -> None:
    with pytest.raises(ValueError, match=r"^report misses key\(s\) 'count', 'share', 'unit'"):
        decode(Report, {"name": "r", "reasons": []}, "report", ValueError)


def test_every_problem_is_reported_in_one_error_of_the_callers_class() -> None:
    with pytest.raises(KeyError) as err:
        decode(Report, {"name": 1, "count": "x", "share": 0.1, "unit": "record"}, "r", KeyError)
    text = str(err.value)
    assert "r misses key(s) 'reasons'" in text and "r.name must be str" in text
    assert "r.count must be int" in text


def test_exact_floats_and_hex_digits() -> None:
    assert decode(Stamp, {"time": 5.0, "digest": "0a" * 4}, "stamp", StateError).time == 5.0
    with pytest.raises(StateError, match="stamp.time must be a float written with a decimal"):
        decode(Stamp, {"time": 5, "digest": "0a" * 4}, "stamp", StateError)
    with pytest.raises(StateError, match="stamp.digest must be 8 lowercase hex digits"):
        decode(Stamp, {"time": 5.0, "digest": "0A" * 4}, "stamp", StateError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "report is not valid JSON: recursion limit exceeded"),
        ('{"count": ' + "9" * 10_000 + "}", "report is not valid JSON: number out of range"),
        ('{"name": "r"', "report is not valid JSON: EOF"),
        ("[1, 2]", "report must be an object, got list of 2"),
        ("null", "report must be an object, got null"),
        ("", "report is not valid JSON"),
    ],
)
def test_hostile_json_text_gives_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(StateError, match=message) as err:
        decode_json(Report, text, "report", StateError)
    assert len(str(err.value)) < 300  # the input is never echoed in full


def test_hostile_python_values_give_a_clear_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(StateError, match="report is not a JSON value: nested too deeply"):
        decode(Report, deep, "report", StateError)
    with pytest.raises(StateError, match="report is not a JSON value"):
        decode(Report, {"name": b"bytes"}, "report", StateError)
    huge = encode(a_report()) | {"count": 10**5000, "name": "x" * 10_000}
    with pytest.raises(StateError) as err:
        decode(Report, huge, "report", StateError)
    assert len(str(err.value)) < 400


def test_a_wire_dict_is_checked_strictly() -> None:
    wire = {"node_id": 1, "keys": [b"k"]}
    assert decode_wire(Wire, wire, "keys", ValueError) == wire
    assert decode_wire(Wire, wire | {"extra_note": "n"}, "keys", ValueError)["extra_note"] == "n"
    for change, message in [
        ({"node_id": True}, "keys.node_id must be int, got bool True"),
        ({"keys": ["k"]}, r"keys.keys\[0\] must be bytes, got str 'k'"),
        ({"keys": "k"}, "keys.keys must be a list, got str 'k'"),
        ({"other": 1}, r"keys has unknown key\(s\) 'other'"),
        ({"extra_note": 1}, "keys.extra_note must be str, got int 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            decode_wire(Wire, wire | change, "keys", ValueError)
    with pytest.raises(ValueError, match=r"keys misses key\(s\) 'keys'"):
        decode_wire(Wire, {"node_id": 1}, "keys", ValueError)


def test_encode_can_leave_out_none_fields_but_keeps_none_in_dicts() -> None:
    # Prepare
    report = Report("r", 1, 0.5, "record", (), None)
    # Execute
    body = encode({"report": report, "blob": {"k": None}}, omit_none=True)
    # Assert
    assert "note" not in body["report"] and body["blob"] == {"k": None}
    assert encode(report)["note"] is None
