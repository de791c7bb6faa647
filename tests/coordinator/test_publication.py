"""Publication rules: enough enterprises and enough (noisy) failures per segment, or withheld."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.publication import (
    apply_publication_rules,
    segment_contributors,
    withheld_summary,
)
from coordinator.run_summary import WithheldSegment
from models.curves import RiskCurve
from models.histogram import ExitCounts
from models.life_table import life_table

EDGES = np.array([0.0, 6.0, 12.0])


def counts(per_segment_units: list[int]) -> ExitCounts:
    """Factory: a node with the given unit totals per segment (all censored in interval 1)."""
    exits = np.zeros((len(per_segment_units), 2, 2), dtype=np.int64)
    exits[:, 0, 1] = per_segment_units
    return ExitCounts(exits=exits, entries=None, survivors=np.zeros(len(per_segment_units), int))


def curve(segment: str, failures: float) -> RiskCurve:
    table = life_table(np.array([failures, 0.0]), np.array([100.0, 50.0]), edges=EDGES)
    return RiskCurve.from_life_table(segment, table)


def test_contributors_count_enterprises_with_enough_noised_units() -> None:
    # Prepare: 4 nodes; segment 0 everywhere, segment 1 at two nodes, one tiny (noise-level)
    parts = [counts([500, 300]), counts([400, 0]), counts([250, 5]), counts([90, -3])]
    # Execute
    contributors = segment_contributors(parts, min_units=20)
    # Assert
    np.testing.assert_array_equal(contributors, [4, 1])


@pytest.mark.parametrize(
    ("enterprises", "failures", "published", "reason"),
    [
        (3, 10.0, True, ""),
        (2, 50.0, False, "2 enterprise(s) contributed, fewer than 3"),
        (5, 9.4, False, "9 failures (noisy count), fewer than 10"),
    ],
)
def test_rules_publish_or_withhold_with_the_reason(
    enterprises: int, failures: float, published: bool, reason: str
) -> None:
    # Execute
    [judged] = apply_publication_rules(
        [curve("nev_battery", failures)],
        np.array([enterprises]),
        min_enterprises=3,
        min_failures=10,
    )
    # Assert
    assert judged.published is published
    assert judged.note == reason
    assert withheld_summary([judged]) == (
        () if published else (WithheldSegment("nev_battery", reason),)
    )
