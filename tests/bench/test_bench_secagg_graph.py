"""The SecAgg+ graph benchmark: a tiny run writes the graph and complete-graph figures,
and the graph's shares are fewer than the complete graph's."""

from __future__ import annotations

import json

import pytest

from bench.secagg_graph import secagg_graph_bench


@pytest.mark.integration
def test_a_tiny_run_writes_both_graphs_and_the_graph_sends_less(tmp_path) -> None:
    report = secagg_graph_bench(tmp_path, nodes=[12, 20], repeats=1, complete_max=20, seed=1)
    written = json.loads((tmp_path / "secagg_graph.json").read_text())
    assert set(written["by_nodes"]) == {"12", "20"}
    row = report["by_nodes"]["20"]
    assert row["num_shares"] < 20 and row["threshold"] > row["num_shares"] // 2
    assert row["graph"]["share_bytes_per_node"] < row["complete"]["share_bytes_per_node"]
    assert row["graph"]["seconds"] > 0 and 0 < row["bytes_ratio"] < 1
