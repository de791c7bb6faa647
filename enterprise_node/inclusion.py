"""After a run, a node checks that the coordinator's signed ledger includes its messages.

The node fetches the coordinator's latest signed tree head (checked against the
coordinator's public key), finds the coordinator's MessageReceived entry for every message
its own ledger says it sent in the run, proves each one included by an RFC 9162 inclusion
proof, and records the verdict (InclusionChecked) in its own ledger. A message with no
entry, or a failed proof, makes the check fail and says which. A message sent in a round the
coordinator crashed in and re-ran (its ledger's RunResumed names the round) may never have
reached the coordinator: such a message is counted, not a failure.
"""

from __future__ import annotations

from common.errors import StateError
from enterprise_node.config import NodeConfig
from enterprise_node.node_ledger import LEDGER_DIR, NodeLedger, node_key_id
from ledger.client import LedgerClient
from ledger.log import read_ledger
from ledger.records import InclusionChecked, MessageReceived, MessageSent, RunResumed

__all__ = ["check_inclusion"]


def _sent_rounds(config: NodeConfig, run_id: str) -> dict[str, int]:
    """Digest -> round of the messages this node's ledger says it sent in ``run_id``."""
    contents = read_ledger(config.state_dir / LEDGER_DIR)
    return {
        e.body["sha256"]: int(e.body.get("round", 0))
        for e in contents.entries()
        if e.kind == MessageSent.KIND and e.body.get("run_id") == run_id
    }


def check_inclusion(config: NodeConfig, client: LedgerClient, run_id: str) -> InclusionChecked:
    """Check, record in the node's ledger, and return the verdict."""
    me = node_key_id(config)
    head = client.tree_head()
    sent_rounds = _sent_rounds(config, run_id)
    sent = set(sent_rounds)
    seqs: list[int] = []
    problems: list[str] = []
    found: set[str] = set()
    rerun: set[int] = set()
    for entry in client.entries(0, head.tree_size):
        body = entry.body
        if entry.kind == RunResumed.KIND and body.get("run_id") == run_id:
            rerun.add(int(body.get("from_round", 0)))
        if entry.kind != MessageReceived.KIND or body.get("node") != me:
            continue
        if body.get("run_id") != run_id or body.get("sha256") not in sent:
            continue
        try:
            client.check_included(entry, head)
        except StateError as err:
            problems.append(f"entry {entry.seq}: {err}")
            continue
        seqs.append(entry.seq)
        found.add(body["sha256"])
    missing = sent - found
    lost = {sha for sha in missing if sent_rounds[sha] in rerun}
    if missing - lost:
        problems.append(
            f"{len(missing - lost)} sent message(s) have no entry in the coordinator's ledger"
        )
    verdict = InclusionChecked(
        run_id=run_id,
        coordinator_tree_size=head.tree_size,
        coordinator_root_hash=head.root_hash,
        checked_seqs=tuple(seqs),
        ok=not problems,
        detail="; ".join(problems)
        or f"{len(seqs)} message(s) included"
        + (f", {len(lost)} lost in rounds the coordinator re-ran" if lost else ""),
    )
    NodeLedger(config).append([verdict])
    return verdict
