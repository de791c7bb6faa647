"""After a run, a node checks that the coordinator's signed ledger includes its messages.

The node fetches the coordinator's latest signed tree head (checked against the
coordinator's public key) and, as a witness (:mod:`enterprise_node.witness`), demands a
consistency proof from the last head it verified to this one, reading only the entries
after those it read before. It then proves, by an RFC 9162 inclusion proof, the
coordinator's MessageReceived entry of every message its own ledger says it sent in the
run, and records the verdict (InclusionChecked) in its own ledger with the signed head it
checked against, so an auditor can verify the head under the coordinator's key. A message
with no entry, a failed proof, or a head that does not extend the one verified before makes
the check fail and says which. A message sent in a round the coordinator crashed in and
re-ran (its ledger's RunResumed names the round) may never have reached the coordinator:
such a message is counted, not a failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from common.errors import StateError
from enterprise_node.config import NodeConfig
from enterprise_node.node_ledger import LEDGER_DIR, NodeLedger, node_key_id
from enterprise_node.witness import Witness, WitnessError
from ledger.client import LedgerClient
from ledger.log import TreeHead, read_ledger
from ledger.records import InclusionChecked, MessageSent

__all__ = [
    "check_inclusion",
    "check_pending_runs",
    "check_runs",
    "messages_sent",
    "runs_to_check",
]


def _sent_rounds(config: NodeConfig, run_id: str) -> dict[str, int]:
    """Digest -> round of the messages this node's ledger says it sent in ``run_id``."""
    contents = read_ledger(config.state_dir / LEDGER_DIR)
    return {
        e.body["sha256"]: int(e.body.get("round", 0))
        for e in contents.entries()
        if e.kind == MessageSent.KIND and e.body.get("run_id") == run_id
    }


def runs_to_check(config: NodeConfig) -> list[str]:
    """The runs this node sent messages in since their last passed inclusion check (or
    with none), in the order of its ledger."""
    runs: dict[str, bool] = {}
    for e in read_ledger(config.state_dir / LEDGER_DIR).entries():
        run = e.body.get("run_id")
        if e.kind == MessageSent.KIND:
            runs[str(run)] = False
        elif e.kind == InclusionChecked.KIND and e.body.get("ok") is True:
            runs[str(run)] = True
    return [run for run, checked in runs.items() if not checked]


def messages_sent(config: NodeConfig) -> Counter[str]:
    """How many messages this node's ledger says it sent, by run."""
    entries = read_ledger(config.state_dir / LEDGER_DIR).entries()
    return Counter(str(e.body.get("run_id")) for e in entries if e.kind == MessageSent.KIND)


def check_runs(
    config: NodeConfig,
    client: LedgerClient,
    runs: Sequence[str] | None = None,
    *,
    ended_only: bool = False,
) -> dict[str, InclusionChecked]:
    """Check ``runs`` (default: :func:`runs_to_check`) against the coordinator's latest
    signed head, record each verdict in the node's ledger and return them by run.

    ``ended_only`` leaves out the runs the coordinator's ledger does not yet show ended
    (``join`` checks a run once it is over). A head that does not extend the one this
    node verified before fails every run asked about: that is the evidence to keep."""
    with Witness.held(config, node_key_id(config)) as witness:
        asked = list(runs_to_check(config) if runs is None else runs)
        if not asked:
            return {}
        head = client.tree_head()
        kept = witness.state.head
        try:
            before = witness.advance(client, head)
        except WitnessError as err:
            size = kept.tree_size if kept else 0
            verdicts = {run: _verdict(run, head, (), [str(err)], size) for run in asked}
        else:
            chosen = [run for run in asked if witness.has_ended(run) or not ended_only]
            verdicts = {
                run: _check_run(config, client, witness, head, run, before) for run in chosen
            }
            witness.save()
        NodeLedger(config).append(list(verdicts.values()))
        return verdicts


def check_inclusion(config: NodeConfig, client: LedgerClient, run_id: str) -> InclusionChecked:
    """Check one run, record the verdict in the node's ledger, and return it."""
    return check_runs(config, client, [run_id])[run_id]


def _check_run(
    config: NodeConfig,
    client: LedgerClient,
    witness: Witness,
    head: TreeHead,
    run_id: str,
    before: int,
) -> InclusionChecked:
    """The verdict on one run against ``head`` (which ``witness`` has advanced to)."""
    sent_rounds = _sent_rounds(config, run_id)
    seqs: list[int] = []
    problems: list[str] = []
    found: set[str] = set()
    for entry in witness.received(run_id):
        if entry.body.get("sha256") not in sent_rounds or entry.seq >= head.tree_size:
            continue
        try:
            client.check_included(entry, head)
        except StateError as err:
            problems.append(f"entry {entry.seq}: {err}")
            continue
        seqs.append(entry.seq)
        found.add(entry.body["sha256"])
    missing = set(sent_rounds) - found
    rerun = witness.rerun_rounds(run_id)
    lost = {sha for sha in missing if sent_rounds[sha] in rerun}
    if missing - lost:
        problems.append(
            f"{len(missing - lost)} sent message(s) have no entry in the coordinator's ledger"
        )
    note = f"{len(seqs)} message(s) included" + (
        f", {len(lost)} lost in rounds the coordinator re-ran" if lost else ""
    )
    return _verdict(run_id, head, tuple(seqs), problems, before, note)


def _verdict(
    run_id: str,
    head: TreeHead,
    seqs: tuple[int, ...],
    problems: list[str],
    witnessed_size: int,
    note: str = "",
) -> InclusionChecked:
    return InclusionChecked(
        run_id=run_id,
        coordinator_tree_size=head.tree_size,
        coordinator_root_hash=head.root_hash,
        checked_seqs=seqs,
        ok=not problems,
        detail="; ".join(problems) or note,
        coordinator_head=head,
        witnessed_size=witnessed_size,
    )


def check_pending_runs(config: NodeConfig, client: LedgerClient) -> dict[str, InclusionChecked]:
    """Check every run this node sent messages in and has not yet seen pass; the verdicts
    by run (each also recorded in the node's ledger)."""
    return check_runs(config, client)
