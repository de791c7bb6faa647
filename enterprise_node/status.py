"""`fedrisk-node status`: the node's privacy budget and what has left the site."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from enterprise_node.budget import BudgetGuard
from enterprise_node.config import NodeConfig
from enterprise_node.outbox import Outbox
from privacy.epsilon_wording import epsilon_number, lifetime_at
from protocols.app_identity import release

__all__ = ["show_status"]


def show_status(config: NodeConfig, console: Console) -> None:
    """Print spent/remaining record-level epsilon and a summary of the outbox."""
    guard = BudgetGuard(
        config.state_dir, epsilon_cap=config.privacy.epsilon, delta=config.privacy.delta
    )
    status = guard.status()
    console.print(f"[bold]{config.node.name}[/]: state in {config.state_dir}")
    console.print(f"release: {release()} (the broker must run the same)")
    console.print(
        f"record-level {lifetime_at(status.epsilon_spent, status.epsilon_cap, status.delta)}; "
        f"remaining {epsilon_number(status.epsilon_remaining)}; {status.releases} release(s)"
    )
    entries = Outbox(config.state_dir).entries()
    if not entries:
        console.print("Nothing has left this site.")
        return
    table = Table(title="What left this site (from state/outbox.jsonl)")
    for column in ("run", "rounds", "sent", "refused/failed", "bytes"):
        table.add_column(column)
    runs = Counter(e.run_id for e in entries)
    for run_id in runs:
        rows = [e for e in entries if e.run_id == run_id]
        sent = [e for e in rows if e.status == "ok"]
        table.add_row(
            run_id or "-",
            str(len({e.round for e in rows})),
            ", ".join(sorted(Counter(e.purpose for e in sent))) or "-",
            str(len(rows) - len(sent)),
            str(sum(e.bytes for e in rows)),
        )
    console.print(table)
