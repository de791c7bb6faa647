"""plan.secure_graph: each round's SecAgg+ neighbourhood size and threshold come from the
stated risk; a run uses them end to end, a node refuses a round with others, and the
coordinator's own num_shares cannot contradict the plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from pydantic import ValidationError
from test_secure_rounds import secure_config, summary_of

from common.errors import ConfigError
from coordinator.config import CoordinatorConfig, load_config_or_default
from enterprise_node.share_plan import check_graph
from protocols.messages import SECAGG_KEYS
from protocols.plan import SecureGraph
from protocols.secure_round import SECAGG_KEY, SecureRoundSettings, plan_graph
from secagg.parameters import graph_parameters


class RecordingGrid(InProcessGrid):
    """Notes the secure-round settings of every key-advertising message it delivers."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.settings: list[SecureRoundSettings] = []

    def send_and_receive(self, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
        messages = list(messages)
        for message in messages:
            if message.metadata.message_type == SECAGG_KEYS:
                record = message.content.config_records[SECAGG_KEY]
                self.settings.append(SecureRoundSettings.from_record(record))
        return super().send_and_receive(messages, *args, **kwargs)


def test_a_run_uses_the_graph_the_plan_risk_gives(tmp_path: Path) -> None:
    # Prepare: 8 sites; at 5 % corrupt, 10 % dropout, 2^-30 the bound gives k 5, t 3
    spec = load_config_or_default(None).plan.model_spec
    nodes = small_federation(tmp_path / "fed", spec, n=8)
    config = secure_config(record_dp=True, secure_graph=SecureGraph())
    grid = RecordingGrid(nodes)
    # Execute
    run_coordinator(grid, config, tmp_path / "run")
    # Assert: every key exchange named k 5 and t 3; the curve noise was planned for t
    expected = graph_parameters(8, corrupt=0.05, dropout=0.1, failure=2**-30)
    assert (expected.num_shares, expected.threshold) == (5, 3)
    assert grid.settings and {(s.num_shares, s.threshold) for s in grid.settings} == {(5, 3)}
    noise = summary_of(tmp_path / "run").privacy.curve_noise
    assert noise is not None and noise["shares_planned"] == 3 and noise["shares_present"] == 8


def test_a_node_refuses_a_round_whose_graph_is_not_the_plans() -> None:
    plan = secure_config(record_dp=True, secure_graph=SecureGraph()).plan
    assert plan_graph(plan.secure_graph, 8) == (5, 3)
    good = SecureRoundSettings("run:1", 1, 8, 3, 64, 2**40, 10, 5)
    check_graph(plan, good)
    for k, t in ((None, 5), (7, 4), (5, 4)):
        bad = SecureRoundSettings("run:1", 1, 8, t, 64, 2**40, 10, k)
        with pytest.raises(ConfigError, match="not the plan's secure_graph"):
            check_graph(plan, bad)


def test_the_coordinator_cannot_also_set_num_shares() -> None:
    config = secure_config(secure_graph=SecureGraph())
    data = config.model_dump(mode="json")
    data["federation"]["num_shares"] = 5
    with pytest.raises(ValidationError, match="plan.secure_graph chooses"):
        CoordinatorConfig.model_validate(data)
