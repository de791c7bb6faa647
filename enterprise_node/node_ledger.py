"""The node's signed ledger: every message that left the site, every privacy spend, every
refusal, and its checks of the coordinator's ledger.

The ledger lives in ``state/ledger`` and is signed with the node's own Ed25519 key
(``node.ledger_key_file``, made on first use with mode 0600, its public half beside it
as ``*.pub.pem`` for auditors). The key id is the node's pseudonymous id: the coordinator's
ledger names the node by it, never by name. One writer at a time (a file lock), because a
node may serve messages from more than one process.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from enterprise_node.config import NodeConfig
from ledger.log import ENTRIES_FILE, TREE_HEADS_FILE
from ledger.records import (
    ContributionResent,
    LedgerRecord,
    MessageSent,
    PrivacySpent,
    TaskRefused,
)
from ledger.signing import generate_key_pair, key_id, load_private_key, public_key_path
from ledger.writer import Ledger
from protocols.messages import PrivacyReceipt, ReplyStatus, TaskHeader

__all__ = ["LEDGER_DIR", "node_key", "node_key_id", "NodeLedger"]

LEDGER_DIR = "ledger"
_log = logging.getLogger("fedrisk.node")


def node_key(config: NodeConfig) -> Ed25519PrivateKey:
    """The node's ledger signing key; created (0600) with its public half if missing."""
    path = config.resolve(config.node.ledger_key_file)
    if not path.exists():
        _log.info("creating the node's ledger key %s", path)
        return generate_key_pair(path, public_key_path(path))
    return load_private_key(path)


def node_key_id(config: NodeConfig) -> str:
    """The node's pseudonymous id: the key id of its ledger key."""
    return key_id(node_key(config).public_key())


class NodeLedger:
    """Appends the node's records to its ledger under a file lock."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.directory = config.state_dir / LEDGER_DIR

    @contextmanager
    def _open(self) -> Iterator[Ledger]:
        """The ledger under the lock; reopened (and so re-verified) only when another
        writer changed the files since this process last wrote them."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                cached = _OPEN.get(self.directory)
                if cached is None or cached[1] != _file_sizes(self.directory):
                    key = node_key(self.config)
                    ledger = Ledger.open(self.directory, key, key_id(key.public_key()))
                else:
                    ledger = cached[0]
                yield ledger
                _OPEN[self.directory] = (ledger, _file_sizes(self.directory))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _has_spend(self, run_id: str, round_number: int, task: str) -> bool:
        """Whether the ledger holds a PrivacySpent for this (run, round, task)."""
        with self._open() as ledger:
            entries = ledger.entries_range(0, ledger.size)
        return any(
            e.kind == PrivacySpent.KIND
            and (e.body.get("run_id"), e.body.get("round"), e.body.get("task"))
            == (run_id, round_number, task)
            for e in entries
        )

    def append(self, records: list[LedgerRecord]) -> None:
        if records:
            with self._open() as ledger:
                ledger.append_many(records)

    def record_reply(
        self,
        header: TaskHeader | None,
        status: ReplyStatus,
        *,
        purpose: str,
        sha256: str,
        size: int,
        receipt: PrivacyReceipt | None,
        resent: bool = False,
    ) -> None:
        """What one reply released: the message, its privacy spend, or the refusal. A
        ``resent`` contribution (charged before) is recorded as a ContributionResent, not
        a second spend, when this ledger already holds its spend."""
        run_id = header.run_id if header else ""
        round_number = header.round if header else 0
        task = header.kind if header else ""
        records: list[LedgerRecord] = []
        ok = status.status == "ok"
        if ok and resent and (receipt is None or self._has_spend(run_id, round_number, task)):
            records.append(ContributionResent(run_id, round_number, task, sha256))
        elif ok and receipt is not None:
            # (a re-send whose first reply never reached this ledger records its spend now)
            records.append(
                PrivacySpent(
                    run_id=run_id,
                    round=round_number,
                    task=task,
                    unit="record",
                    mechanism=receipt.mechanism,
                    noise_multiplier=receipt.noise_multiplier,
                    sample_rate=receipt.sample_rate,
                    steps=receipt.steps,
                    sensitivity=receipt.sensitivity,
                    noise_shares=receipt.noise_shares,
                    epsilon_task=receipt.epsilon_task,
                    epsilon_total=receipt.epsilon_total,
                    epsilon_remaining=receipt.epsilon_cap - receipt.epsilon_total,
                    epsilon_cap=receipt.epsilon_cap,
                    delta=receipt.delta,
                    share_std=receipt.share_std,
                    l1_sensitivity=receipt.l1_sensitivity,
                    integer_scale=receipt.integer_scale,
                )
            )
        if status.status == "refused":
            records.append(TaskRefused(run_id, round_number, task, status.reason))
        records.append(
            MessageSent(run_id, round_number, task, purpose, status.status, sha256, size)
        )
        self.append(records)


#: Open ledgers of this process, with the file sizes they had after our last write.
_OPEN: dict[Path, tuple[Ledger, tuple[int, int]]] = {}


def _file_sizes(directory: Path) -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        (directory / name).stat().st_size if (directory / name).exists() else -1
        for name in (ENTRIES_FILE, TREE_HEADS_FILE)
    )
