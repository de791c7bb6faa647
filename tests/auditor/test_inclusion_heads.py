"""The auditor verifies the coordinator head a node's inclusion check records: a node that
records a head the coordinator never signed is flagged (framing), not the coordinator; a
signed head the coordinator's ledger no longer reproduces convicts the coordinator."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from witness_world import WitnessWorld

from auditor.inclusion import inclusion_findings
from auditor.ledgers import audit_ledger
from enterprise_node.inclusion import check_inclusion
from enterprise_node.node_ledger import LEDGER_DIR, NodeLedger, node_key
from ledger.log import TreeHead, read_ledger
from ledger.records import InclusionChecked
from ledger.signing import key_id

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path):
    w = WitnessWorld(tmp_path)
    coord = w.coordinator()
    w.exchange(coord, "r1", 1)
    w.exchange(coord, "r1", 2)
    with w.serve() as client:
        w.honest = check_inclusion(w.config, client, "r1")
    yield w
    w.stop()


def findings(world: WitnessWorld, coordinator_dir: str = "coord"):
    keys = {key_id(k.public_key()): k.public_key() for k in (world.key, node_key(world.config))}
    coordinator = key_id(world.key.public_key())
    coord = audit_ledger("coord", read_ledger(world.root / coordinator_dir), keys, coordinator)
    node = audit_ledger("node", read_ledger(world.config.state_dir / LEDGER_DIR), keys, coordinator)
    assert coord.role == "coordinator" and node.role == "node"
    return inclusion_findings(node, coord)


def frame(world: WitnessWorld, check: InclusionChecked) -> None:
    NodeLedger(world.config).append([check])


def test_an_honest_check_with_its_signed_head_has_no_finding(world) -> None:
    assert world.honest.ok and world.honest.coordinator_head is not None
    assert findings(world) == []


def test_a_node_recording_a_made_up_root_under_a_forged_signature_is_flagged(world) -> None:
    head = world.honest.coordinator_head
    fake_root = "ab" * 32
    made_up = TreeHead.create(
        Ed25519PrivateKey.generate(), tree_size=head.tree_size, root_hash=fake_root,
        timestamp=head.timestamp, ledger_id="coordinator",
    )  # fmt: skip
    frame(world, replace(world.honest, coordinator_root_hash=fake_root, coordinator_head=made_up))
    found = findings(world)
    assert [f.kind for f in found] == ["inclusion-head-forged"]
    assert found[0].where.startswith(f"node {world.node_id}") and "never signed" in found[0].message


def test_a_node_recording_a_larger_size_beside_the_real_signed_head_is_flagged(world) -> None:
    frame(world, replace(world.honest, coordinator_tree_size=99))
    found = findings(world)
    assert [f.kind for f in found] == ["inclusion-head-forged"]
    assert "not what the coordinator signed" in found[0].message


def test_a_tampered_signed_head_is_flagged_not_a_rollback(world) -> None:
    head = world.honest.coordinator_head
    bigger = replace(head, tree_size=99)
    frame(world, replace(world.honest, coordinator_tree_size=99, coordinator_head=bigger))
    assert [f.kind for f in findings(world)] == ["inclusion-head-forged"]


def test_a_coordinator_that_rolls_back_a_head_it_signed_is_convicted(world) -> None:
    shorter = world.coordinator("shorter")
    world.exchange(shorter, "r1", 1)
    found = findings(world, "shorter")
    assert [f.kind for f in found] == ["rolled-back"]
    assert "a head the coordinator signed" in found[0].message


def test_a_version_1_check_without_a_head_is_still_judged_as_before(world) -> None:
    frame(world, replace(world.honest, coordinator_head=None, coordinator_root_hash="cd" * 32))
    found = findings(world)
    assert [f.kind for f in found] == ["inclusion-root"] and "unsigned claim" in found[0].message
