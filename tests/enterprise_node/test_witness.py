"""A node witnesses the coordinator's ledger: every check records the signed head, proves a
newer head extends the one verified before, and fetches only the entries not read yet; a
rewritten or rolled-back ledger shown to the node is caught and recorded."""

from __future__ import annotations

import pytest
from witness_world import WitnessWorld

from enterprise_node.inclusion import check_inclusion, runs_to_check
from enterprise_node.node_ledger import LEDGER_DIR
from enterprise_node.witness import Witness
from ledger.log import read_ledger
from ledger.records import InclusionChecked, record_from_entry

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path):
    w = WitnessWorld(tmp_path)
    yield w
    w.stop()


def node_checks(world: WitnessWorld) -> list[InclusionChecked]:
    entries = read_ledger(world.config.state_dir / LEDGER_DIR).entries()
    return [r for e in entries if isinstance(r := record_from_entry(e), InclusionChecked)]


def test_a_check_records_the_signed_head_and_later_checks_read_only_new_entries(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    world.exchange(coord, "r1", 2)
    assert runs_to_check(world.config) == ["r1"]
    with world.serve() as client:
        first = check_inclusion(world.config, client, "r1")
        assert first.ok and len(first.checked_seqs) == 2 and first.witnessed_size == 0
        head = first.coordinator_head
        assert head is not None and head.tree_size == 4
        head.verify(world.key.public_key())
        assert client.fetched == [(0, 4)]
    assert runs_to_check(world.config) == []
    world.exchange(coord, "r2", 1)
    with world.serve() as client:
        second = check_inclusion(world.config, client, "r2")
        assert second.ok and second.checked_seqs == (5,), second.detail
        assert second.witnessed_size == 4 and second.coordinator_tree_size == 6
        assert client.fetched == [(4, 6)]  # only what it had not read
    assert Witness(world.config, world.node_id).state.head == second.coordinator_head
    assert [c.run_id for c in node_checks(world)] == ["r1", "r2"]


def test_a_rewritten_ledger_shown_to_a_witness_node_is_caught_and_recorded(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    with world.serve() as client:
        assert check_inclusion(world.config, client, "r1").ok
    kept = Witness(world.config, world.node_id).state.head
    # the coordinator rewrites its history (same key, every head re-signed) and grows it
    forged = world.coordinator("forged")
    world.exchange(forged, "r1", 1)
    world.exchange(forged, "r2", 1)
    with world.serve("forged") as client:
        verdict = check_inclusion(world.config, client, "r2")
    assert not verdict.ok and "rewritten" in verdict.detail and "extend" in verdict.detail
    assert verdict.witnessed_size == kept.tree_size and verdict.coordinator_head is not None
    assert node_checks(world)[-1] == verdict  # recorded in the node's signed ledger
    assert Witness(world.config, world.node_id).state.head == kept  # not moved
    assert "r2" in runs_to_check(world.config)


def test_a_rolled_back_or_forked_same_size_ledger_is_caught(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    world.exchange(coord, "r1", 2)
    with world.serve() as client:
        assert check_inclusion(world.config, client, "r1").ok
    shorter = world.coordinator("shorter")
    world.exchange(shorter, "r1", 1)
    with world.serve("shorter") as client:
        verdict = check_inclusion(world.config, client, "r1")
    assert not verdict.ok and "rolled back" in verdict.detail
    same_size = world.coordinator("same")
    world.exchange(same_size, "r9", 1)
    world.exchange(same_size, "r1", 2)
    assert same_size.signed_size == 4
    with world.serve("same") as client:
        verdict = check_inclusion(world.config, client, "r1")
    assert not verdict.ok and "rewritten" in verdict.detail


def test_a_missing_message_fails_the_check(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    world.exchange(coord, "r1", 2, received=False)
    with world.serve() as client:
        verdict = check_inclusion(world.config, client, "r1")
    assert not verdict.ok and "1 sent message(s) have no entry" in verdict.detail
    assert verdict.coordinator_head is not None


def test_the_verify_inclusion_command_checks_every_unchecked_run_over_tls(world, capsys) -> None:
    import grpc

    from common.tls import init_tls
    from enterprise_node.cli import main
    from ledger.service import serve_ledger
    from ledger.signing import public_key_path, write_public_key

    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    world.exchange(coord, "r2", 1)
    files, _ = init_tls(world.root / "tls", [])
    credentials = grpc.ssl_server_credentials(
        [(files.server_key.read_bytes(), files.server_cert.read_bytes())]
    )
    server = serve_ledger(world.root / "coord", credentials=credentials)
    key_pem = public_key_path(world.root / "coordinator.pem")
    write_public_key(key_pem, world.key.public_key())
    address = server.address.replace("127.0.0.1", "localhost")
    args = ["verify-inclusion", "--config", str(world.config_path), "--ledger-service", address,
            "--ca", str(files.ca_cert), "--coordinator-key", str(key_pem)]  # fmt: skip
    try:
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code in (0, None)
        assert [(c.run_id, c.ok) for c in node_checks(world)] == [("r1", True), ("r2", True)]
        assert "run r2: ok" in capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(args)
        assert "no run left to check" in capsys.readouterr().out
    finally:
        server.stop()
