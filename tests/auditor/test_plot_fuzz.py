"""The epsilon plot on any values: a file or None (nothing it can draw), never an exception.

Hypothesis generates rows of points with any times (before 1970, after 9999, non-finite)
and any epsilons and caps (huge, tiny, negative, non-finite): what the auditor's tables hold
after a hostile but signed ledger.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_fuzz import SLOW_EXAMPLES, fuzz_settings

from auditor.node_epsilon import EpsilonPoint, NodeEpsilonRow
from auditor.plot import PLOT_FILE, write_epsilon_plot

_values = st.floats() | st.floats(-10.0, 100.0) | st.sampled_from([0.0, 1e6, 1e308, 5e-324])
_times = st.floats() | st.floats(1.6e9, 1.8e9) | st.sampled_from([0.0, 253402300799.0])


@st.composite
def _rows(draw: st.DrawFn) -> tuple[NodeEpsilonRow, ...]:
    rows = []
    for node in range(draw(st.integers(0, 3))):
        points = tuple(
            EpsilonPoint(seq, draw(_times), "r", 1, "model", draw(_values), draw(_values), 1.0)
            for seq in range(draw(st.integers(0, 4)))
        )
        rows.append(
            NodeEpsilonRow(f"{node:016x}", "record", len(points), 0.0, 0.0, 0.0, draw(_values),
                           1e-5, points)
        )  # fmt: skip
    return tuple(rows)


def plot(rows: tuple[NodeEpsilonRow, ...]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_epsilon_plot(rows, Path(directory))
        assert path is None or path == Path(directory) / PLOT_FILE and path.exists()


@pytest.mark.integration
@fuzz_settings(100)
@given(rows=_rows())
def test_fuzz_epsilon_plot(rows: tuple[NodeEpsilonRow, ...]) -> None:
    plot(rows)


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@given(rows=_rows())
def test_fuzz_epsilon_plot_at_length(rows: tuple[NodeEpsilonRow, ...]) -> None:
    plot(rows)
