"""The mechanism vocabulary: the names on disk never change."""

from __future__ import annotations

from privacy.mechanisms import Mechanism


def test_the_recorded_names_are_those_of_the_ledgers_already_written() -> None:
    # a rename would orphan every ledger, receipt and accountant file that names one
    assert {m.name: m.value for m in Mechanism} == {
        "DP_SGD": "dp_sgd",
        "CURVE_HISTOGRAM": "discrete_gaussian_histogram",
        "DISTRIBUTED_CURVE_HISTOGRAM": "distributed_discrete_gaussian_histogram",
        "SKELLAM_CURVE_HISTOGRAM": "distributed_skellam_histogram",
        "SKELLAM_GLM": "distributed_skellam_glm",
        "DISTRIBUTED_GLM": "distributed_discrete_gaussian_glm",
        "ENTERPRISE_SHARES": "enterprise_distributed_discrete_gaussian",
        "ENTERPRISE_SKELLAM": "enterprise_distributed_skellam",
        "RISK_FACTOR": "discrete_gaussian_risk_factor",
    }

