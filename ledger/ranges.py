"""The sane ranges of what a ledger line may hold: its size, its dates, its numbers.

A ledger is evidence read by auditors who must reach a verdict on any bytes, including a
ledger its owner forged and signed. So a ledger file larger than :data:`MAX_LEDGER_BYTES`
is not read (an auditor holds a whole ledger in memory) and a line longer than
:data:`MAX_LINE_BYTES` is not parsed; an entry time or tree head timestamp must be a date
a report can show (UNIX seconds from 1970 to the end of year 9999, :data:`MAX_TIME`);
every number in an entry's body must be finite and every integer fit in 64 bits. The JSON
parser itself refuses nesting deeper than 200 (:mod:`common.codec`). The writer refuses to
write what verification would flag, so an honest ledger never trips these bounds.

    >>> out_of_range_time(1.0e12)
    'is 1e+12 s, after the end of year 9999 (253402300799 s)'
    >>> out_of_range_numbers({"steps": 2**64, "ok": [1.5]})
    'body.steps is an integer of 66 bits (at most 64)'
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "MAX_LEDGER_BYTES",
    "MAX_LINE_BYTES",
    "MAX_TIME",
    "MAX_INT_BITS",
    "out_of_range_time",
    "out_of_range_numbers",
]

#: Largest entries.jsonl or tree_heads.jsonl an auditor reads (1 GiB: about two million
#: entries, hundreds of runs of a large federation; a longer history is audited per era).
MAX_LEDGER_BYTES = 1 << 30
#: Longest line of entries.jsonl or tree_heads.jsonl parsed (1 MiB; real entries are < 64 KiB).
MAX_LINE_BYTES = 1 << 20
#: 9999-12-31T23:59:59Z: the last second a report can print as a date.
MAX_TIME = 253_402_300_799.0
#: Integers in a body fit in a signed 64-bit integer (the bits of its magnitude, plus sign).
MAX_INT_BITS = 64


def out_of_range_time(seconds: float) -> str | None:
    """Why ``seconds`` is not a sane ledger time, or None if it is."""
    if not math.isfinite(seconds):
        return f"is {seconds}, not a finite number of seconds"
    if seconds < 0.0:
        return f"is {seconds:g} s, before 1970"
    if seconds > MAX_TIME:
        return f"is {seconds:g} s, after the end of year 9999 ({MAX_TIME:.0f} s)"
    return None


def out_of_range_numbers(value: Any, where: str = "body") -> str | None:
    """The first number in the JSON value ``value`` (at ``where``) that is not finite or
    an integer wider than 64 bits, described; None if every number is sane."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value}, not a finite number"
    if isinstance(value, int) and value.bit_length() + 1 > MAX_INT_BITS:
        return f"{where} is an integer of {value.bit_length() + 1} bits (at most {MAX_INT_BITS})"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = out_of_range_numbers(
            item, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
        )
        if found is not None:
            return found
    return None
