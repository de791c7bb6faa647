"""`fedrisk-node ledger`: the node's own signed ledger, verified, and its latest entries.

What enterprise IT asks: has anything left the site that is not in the ledger, has the
ledger been altered, and is the coordinator's ledger holding what we sent? The first two
are answered locally with the node's own key; the third, optionally, over the
coordinator's ledger service (:func:`enterprise_node.inclusion.check_inclusion`).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from common.errors import StateError
from enterprise_node.config import NodeConfig
from enterprise_node.node_ledger import LEDGER_DIR, node_key
from ledger.log import read_ledger
from ledger.records import (
    ContributionResent,
    InclusionChecked,
    MessageSent,
    PrivacySpent,
    RiskShared,
    TaskRefused,
)
from ledger.signing import key_id
from ledger.verification import verify_ledger
from privacy.epsilon_wording import epsilon_number

__all__ = ["show_ledger"]

_COLUMNS = ("seq", "kind", "run", "round", "task", "what")


def _what(kind: str, body: dict) -> str:
    if kind == MessageSent.KIND:
        return f"{body['purpose']} ({body['status']}), {body['bytes']:,} B, {body['sha256'][:12]}"
    if kind == PrivacySpent.KIND:
        return (
            f"{body['mechanism']}: epsilon {epsilon_number(body['epsilon_task'])}, lifetime "
            f"{epsilon_number(body['epsilon_total'])} of cap {body['epsilon_cap']:g}, both at "
            f"delta {body['delta']:g}"
        )
    if kind == RiskShared.KIND:
        return (
            f"shared the fleet's risk {body['shared']} ({body['bytes']:,} B, "
            f"{body['sha256'][:12]}): epsilon {epsilon_number(body['epsilon_task'])}, lifetime "
            f"{epsilon_number(body['epsilon_total'])} of cap {body['epsilon_cap']:g}, both at "
            f"delta {body['delta']:g}"
        )
    if kind == TaskRefused.KIND:
        return body["reason"]
    if kind == ContributionResent.KIND:
        return f"re-sent, not charged again (message {body['sha256'][:12]})"
    if kind == InclusionChecked.KIND:
        return ("ok: " if body["ok"] else "FAILED: ") + body["detail"]
    return ""


def show_ledger(config: NodeConfig, console: Console, *, last: int = 20) -> None:
    """Verify the node's ledger with its own key and print the last ``last`` entries;
    a ledger that fails verification raises StateError (exit code 40)."""
    directory = config.state_dir / LEDGER_DIR
    public = node_key(config).public_key()
    if not directory.exists():  # a fresh node: nothing has been recorded, nothing is wrong
        console.print(
            f"Ledger {directory}: empty, nothing recorded yet (the first approval, refusal or "
            f"message sent starts it); node id {key_id(public)}"
        )
        return
    report = verify_ledger(directory, public, ledger_id=key_id(public))
    console.print(
        f"Ledger {directory}: {report.entries} entries, {report.signed_size} signed; "
        f"node id {key_id(public)}"
    )
    for finding in report.findings:
        console.print(f"[{'red' if finding.severity == 'error' else 'yellow'}]{finding}[/]")
    if not report.ok:
        raise StateError(
            f"{directory}: the ledger fails verification ({len(report.errors)} errors)"
        )
    table = Table(title=f"last {last} entries")
    for column in _COLUMNS:
        table.add_column(column)
    for entry in read_ledger(directory).entries()[-last:]:
        body = entry.body
        table.add_row(
            str(entry.seq),
            entry.kind,
            str(body.get("run_id", "")),
            str(body.get("round", "")),
            str(body.get("task", "")),
            _what(entry.kind, body),
        )
    console.print(table)
