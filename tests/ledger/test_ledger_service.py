"""The ledger service over real gRPC on loopback: heads, entries and proofs check out."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from ledger.client import LedgerClient
from ledger.merkle import MerkleError
from ledger.records import RunEnded
from ledger.service import serve_ledger
from ledger.signing import SignatureError, generate_private_key, write_public_key
from ledger.writer import Ledger


def a_ledger(directory: Path, n: int):
    key = generate_private_key()
    ledger = Ledger.open(directory, key, "coordinator")
    for i in range(n):
        ledger.append(RunEnded(run_id=f"run-{i}", status="completed", error=None))
    return ledger, key


@pytest.fixture
def served(tmp_path: Path):
    ledger, key = a_ledger(tmp_path / "ledger", 13)
    server = serve_ledger(tmp_path / "ledger")
    yield ledger, key, server
    server.stop()


def test_every_entry_is_proven_included_in_the_signed_head(served) -> None:
    ledger, key, server = served
    with LedgerClient(server.address, key.public_key()) as client:
        head = client.tree_head()
        entries = client.entries(0, head.tree_size)
        assert [e.seq for e in entries] == list(range(13))
        for entry in entries:
            client.check_included(entry, head)


def test_a_grown_ledger_is_consistent_with_its_earlier_head(served) -> None:
    ledger, key, server = served
    with LedgerClient(server.address, key.public_key()) as client:
        old = client.tree_head()
        ledger.append(RunEnded(run_id="later", status="failed", error="x"))
        new = client.tree_head()
        assert new.tree_size == old.tree_size + 1
        client.check_consistent(old, new)


def test_an_altered_entry_fails_its_inclusion_proof(served) -> None:
    ledger, key, server = served
    with LedgerClient(server.address, key.public_key()) as client:
        head = client.tree_head()
        [entry] = client.entries(4, 5)
        forged = type(entry)(
            entry.seq, entry.time, entry.kind, entry.version, {**entry.body, "status": "failed"}
        )
        with pytest.raises(MerkleError, match="root mismatch"):
            client.check_included(forged, head)


def test_a_head_signed_by_another_key_is_refused(served) -> None:
    _ledger, _key, server = served
    with (
        LedgerClient(server.address, generate_private_key().public_key()) as client,
        pytest.raises(SignatureError, match="expected key"),
    ):
        client.tree_head()


def test_a_proof_beyond_the_signed_tree_is_out_of_range(served) -> None:
    _ledger, key, server = served
    with LedgerClient(server.address, key.public_key()) as client:
        head = client.tree_head()
        with pytest.raises(grpc.RpcError) as err:
            client.entries(0, head.tree_size + 5)
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE


@pytest.mark.integration
def test_serve_ledger_command_serves_until_stopped(tmp_path: Path) -> None:
    # Prepare: a coordinator state dir with a signed ledger
    import os
    import re
    import signal
    import subprocess
    import sys

    from coordinator.coordinator_ledger import coordinator_key_paths

    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "coordinator.cli", "serve-ledger", str(state)]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "no coordinator ledger key" in refused.stderr
    _ledger, key = a_ledger(state / "ledger", 3)
    public = coordinator_key_paths(state)[1]
    public.parent.mkdir(parents=True)
    write_public_key(public, key.public_key())
    # started with SIGINT ignored, as under a parent that ignores it: Ctrl-C must still stop it
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        # Execute: read the address it prints, then ask it for its head
        line = process.stdout.readline() if process.stdout else ""
        address = re.search(r"at (127\.0\.0\.1:\d+)", line)
        assert address, line
        with LedgerClient(address.group(1), key.public_key()) as client:
            head = client.tree_head()
        # Assert
        assert head.tree_size == 3
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()  # stop what the test started, then fail
            process.wait()
            raise AssertionError("serve-ledger did not stop within 20 s of Ctrl-C") from None


def test_a_service_started_before_the_first_run_serves_the_ledger_once_written(
    tmp_path: Path,
) -> None:
    server = serve_ledger(tmp_path / "ledger")  # nothing written yet
    key = generate_private_key()
    try:
        with LedgerClient(server.address, key.public_key()) as client:
            with pytest.raises(grpc.RpcError) as raised:
                client.tree_head()
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            ledger = Ledger.open(tmp_path / "ledger", key, "coordinator")
            ledger.append(RunEnded(run_id="first", status="completed", error=None))
            assert client.tree_head().tree_size == 1
    finally:
        server.stop()
