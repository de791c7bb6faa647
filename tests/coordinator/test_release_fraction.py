"""plan.release_fraction: nodes plan their noise shares for the fewest inputs a released
sum may hold, the coordinator releases nothing below it, and the auditor flags a release
whose sum held fewer inputs than its shares were planned for."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from test_secure_rounds import secure_config, summary_of

from auditor.findings import AuditFinding
from auditor.ledgers import AuditedEntry, AuditedLedger
from auditor.released_shares import released_share_findings
from common.errors import RunFailedError
from coordinator.config import load_config_or_default
from enterprise_node.noise_plan import plan_noise
from ledger.log import Entry
from ledger.records import ReleaseAccounted, RoundRecorded
from privacy.mechanisms import Mechanism
from protocols.messages import CURVE_TASK


def test_with_every_node_planned_for_the_curve_shares_sum_to_the_central_noise(
    tmp_path: Path,
) -> None:
    # Prepare: 4 nodes, record-level DP, the plan releases only sums of all 4
    spec = load_config_or_default(None).plan.model_spec
    nodes = small_federation(tmp_path / "fed", spec)
    config = secure_config(record_dp=True, release_fraction=1.0)
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run")
    # Assert: 4 shares planned (not the majority's 3); together they hold the central noise
    noise = summary_of(tmp_path / "run").privacy.curve_noise
    assert noise is not None
    assert noise["shares_planned"] == 4 and noise["shares_present"] == 4
    central = plan_noise(config.plan, 400).curve_noise_multiplier
    assert central * 0.999 <= noise["share_std"] * math.sqrt(4) <= central * 1.01
    assert noise["epsilon_realised"] == pytest.approx(noise["epsilon_charged_per_node"], rel=1e-3)


def test_a_sum_with_fewer_survivors_than_planned_releases_nothing(tmp_path: Path) -> None:
    # Prepare: one of 4 nodes drops out of the curve round; the plan asks for all 4
    spec = load_config_or_default(None).plan.model_spec
    nodes = small_federation(tmp_path / "fed", spec)
    config = secure_config(record_dp=True, release_fraction=1.0)
    grid = InProcessGrid(nodes, drop={103: {CURVE_TASK}})
    # Execute / Assert
    with pytest.raises(RunFailedError, match=r"only 3 of 4 nodes .* at least 4 .*release_fraction"):
        run_coordinator(grid, config, tmp_path / "run")
    assert not (tmp_path / "run" / "curves.json").exists()


def _ledger(records: list) -> AuditedLedger:
    entries = tuple(
        AuditedEntry(Entry(seq, 1.7e9, type(r).KIND, r.VERSION, {}), r)
        for seq, r in enumerate(records)
    )
    return AuditedLedger(
        source="test",
        role="coordinator",
        ledger_id="coordinator",
        key_id="k",
        entries=len(entries),
        tree_heads=1,
        signed_size=len(entries),
        entry_lines=(),
        records=entries,
        findings=(),
    )


def test_the_auditor_flags_a_release_whose_sum_held_fewer_inputs_than_planned() -> None:
    release = ReleaseAccounted(
        "run", 2, "curve", "node-a", "record", Mechanism.SKELLAM_CURVE_HISTOGRAM, 4.0, 1.0, 1,
        1.0, 4, 0.5, 0.5, 2.0, 1e-6, "ab" * 32,
    )  # fmt: skip
    held = RoundRecorded("run", 2, "secure-sum:curve", ("a", "b", "c", "d"), (), (), (), 0.0)
    short = replace(held, participants=("a", "b", "c"))
    assert released_share_findings(_ledger([release, held])) == []
    [finding] = released_share_findings(_ledger([release, short]))
    assert isinstance(finding, AuditFinding) and finding.kind == "below-planned-shares"
    assert "planned for 4 noise shares" in finding.message and "holds 3" in finding.message
