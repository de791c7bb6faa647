"""The scale benchmark: its configurations are the ones it names, its tree memory sees
children, and a tiny Flower run writes every figure and the plot."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from bench.scale import ScaleSettings, scale_bench, scale_config
from bench.tree_memory import TreeMemory
from coordinator.config import load_config_or_default
from privacy.mechanisms import Mechanism


def test_secure_config_sets_the_graph_and_fraction_and_plain_turns_privacy_off() -> None:
    base = load_config_or_default(None)
    secure = scale_config(base, secure=True, method="newton")
    assert secure.plan.secure_aggregation and secure.plan.privacy.record.enabled
    assert secure.plan.secure_graph is not None and secure.plan.release_fraction == 0.8
    assert secure.plan.training.rounds == 3
    plain = scale_config(base, secure=False, method="dp_sgd")
    assert not plain.plan.secure_aggregation and not plain.plan.privacy.record.enabled
    assert plain.plan.secure_graph is None and plain.plan.training.method == "dp_sgd"
    with pytest.raises(ValueError, match="newton needs"):
        scale_config(base, secure=False, method="newton")  # no plain Newton fit exists


def test_tree_memory_counts_a_child_process() -> None:
    script = "x = bytearray(200 << 20); import time; time.sleep(1.5)"
    with TreeMemory(interval_s=0.1) as memory:
        child = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(1.0)
        child.wait()
    assert memory.peak.processes >= 2
    assert memory.peak.rss_mb > 200  # the child's 200 MB were in the tree


@pytest.mark.slow
def test_a_tiny_run_writes_the_figures_and_the_plot(tmp_path) -> None:
    settings = ScaleSettings(enterprises=(10,), replicates=3, seed=1, ratio_sizes=())
    report = scale_bench(tmp_path / "out", tmp_path / "work", settings)
    written = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert written["sizes"].keys() == {"10"}
    run = report["sizes"]["10"]["runs"]["secure_dp"]
    assert run["seconds_per_model_round"] > 0 and run["seconds_per_curve_round"] > 0
    assert run["peak_tree_pss_mb"] > 0 and run["bytes_per_node_per_model_round"] > 0
    assert 0 <= run["curve_max_abs_error_vs_truth"] < 1 and 0 < run["harrell_c"] < 1
    assert run["curve_noise"]["mechanism"] == Mechanism.SKELLAM_CURVE_HISTOGRAM
    replicates = report["sizes"]["10"]["curve_replicates"]
    assert replicates["noise_shares_planned"] == 8  # ceil(0.8 x 10) > the threshold 3
    assert set(replicates["by_epsilon"]) == {"0.5", "1.0", "2.0", "4.0"}
    assert (tmp_path / "out" / "scale.png").stat().st_size > 10_000
