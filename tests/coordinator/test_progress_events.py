"""Progress events (coordinator.progress_events): written and read through their types,
byte for byte as the code before them wrote progress.jsonl; a torn last line is left for
the next read, anything else unreadable is an error naming the file and the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coordinator.progress_events import (
    EVENT_TYPES,
    NodesReady,
    ProgressError,
    RoundEnd,
    RunEnd,
    event_line,
)
from coordinator.round_summary import NodeNote
from coordinator.run_store import RunStore

#: progress.jsonl lines written before the events were typed: a run with enterprise-level
#: DP and a budget stop, a Newton run's steps, a failed run, and a resumed run's events.
BEFORE = Path(__file__).parent / "data" / "progress_before_typed_events.jsonl"


def store_with(tmp_path: Path, text: str) -> RunStore:
    """Factory: a run store whose progress.jsonl holds ``text``."""
    store = RunStore(tmp_path / "run")
    store.progress_path.write_text(text, encoding="utf-8")
    return store


def test_lines_written_before_the_types_read_and_write_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    # Prepare
    store = RunStore(tmp_path / "run")
    shutil.copy(BEFORE, store.progress_path)
    # Execute
    events = store.read_events()
    # Assert: every kind is there, and each event is the very line it was read from
    assert {type(e) for e in events} == set(EVENT_TYPES.values())
    lines = BEFORE.read_text(encoding="utf-8").splitlines()
    assert [event_line(e) for e in events] == lines


def test_an_event_written_is_the_event_read(tmp_path: Path) -> None:
    # Prepare
    store = RunStore(tmp_path / "run")
    failed = (NodeNote("site-3", "no reply within 9 s"),)
    written = [
        RoundEnd(2, "model", ("site-1", "site-2"), (), failed, 1.25, epsilon_max=0.5),
        RunEnd("failed", 3.5, "round 2: too few nodes"),
        RunEnd("completed", 9.0),
    ]
    # Execute
    for event in written:
        store.event(event)
    # Assert: optional fields left out when None, as before the types
    assert store.read_events() == written
    assert "delta_max" not in store.progress_path.read_text()
    assert store.progress_path.read_text().count('"error"') == 1


def test_a_torn_last_line_is_left_for_the_next_read(tmp_path: Path) -> None:
    # Prepare: the last line is being written (no newline yet)
    whole = event_line(NodesReady(4, time=1.0))
    store = store_with(tmp_path, whole + "\n" + whole[:20])
    # Execute / Assert
    assert store.read_events() == [NodesReady(4, time=1.0)]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"event": "round_ended", "time": 1.0}', "unknown event 'round_ended'"),
        (event_line(NodesReady(4, time=1.0)).replace('"nodes": 4', '"nodes": "4"'), "nodes"),
        (event_line(NodesReady(4, time=1.0)).replace(', "time": 1.0', ""), "'time'"),
        (event_line(NodesReady(4, time=1.0)).replace("}", ', "extra": 1}'), "'extra'"),
    ],
)
def test_a_complete_line_that_is_not_an_event_names_the_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    # Prepare: a good first line, then the bad one
    store = store_with(tmp_path, event_line(NodesReady(4, time=1.0)) + "\n" + line + "\n")
    # Execute / Assert
    with pytest.raises(ProgressError) as error:
        store.read_events()
    assert f"{store.progress_path} line 2" in str(error.value)
    assert problem in str(error.value)


def test_each_kind_is_named_once() -> None:
    assert len(EVENT_TYPES) == len({cls.KIND for cls in EVENT_TYPES.values()}) == 13
