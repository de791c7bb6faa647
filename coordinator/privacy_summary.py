"""What the coordinator learns about privacy spend from the nodes' receipts.

The coordinator does not enforce record-level budgets (the nodes do); it recomposes each
node's receipts of this run with the same RDP accountant to report epsilon per node, and
shows each node's own lifetime total and cap.

Each epsilon is stated with its delta, because they differ: ``epsilon_run`` is at the plan's
delta (``delta_run``), ``epsilon_total`` (the node's lifetime spend) and ``epsilon_cap`` at
the node's own cap delta (``delta_total`` = ``delta_cap``). At a larger delta the same
spend has a smaller epsilon, so a lifetime figure can read smaller than the run's
(:func:`coordinator.run_view.describe_node_epsilon` says them with their deltas).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from coordinator.rounds import NodeReply
from coordinator.run_summary import NodePrivacy, ReleaseFigures, RunPrivacy
from privacy.accounting import Spend, rdp_epsilon
from privacy.epsilon_wording import DIFFERENT_DELTAS
from protocols.messages import PrivacyReceipt

__all__ = ["DELTAS_NOTE", "ReceiptRow", "PrivacyLedgerView"]

#: What summary.json says about the deltas of its epsilons.
DELTAS_NOTE = (
    "epsilon_run is this run's record-level epsilon at the plan's delta (delta_run); "
    "epsilon_total is the node's lifetime epsilon and epsilon_cap its cap, both at the "
    "node's own cap delta (delta_total = delta_cap). " + DIFFERENT_DELTAS
)


@dataclass(frozen=True)
class ReceiptRow:
    """A receipt with the round and task it came from."""

    round: int
    task: str
    receipt: PrivacyReceipt


class PrivacyLedgerView:
    """Receipts per node for one run, and the figures derived from them."""

    def __init__(self, run_delta: float) -> None:
        self.run_delta = run_delta
        self._rows: dict[str, list[ReceiptRow]] = defaultdict(list)

    def record(self, round_number: int, task: str, reply: NodeReply) -> None:
        if reply.receipt is not None:
            name = reply.node_name or str(reply.node_id)
            self._rows[name].append(ReceiptRow(round_number, task, reply.receipt))

    def rows(self) -> list[dict[str, Any]]:
        """Every receipt with its node, round and task, JSON-ready (for the checkpoint)."""
        return [
            {"node": node, "round": r.round, "task": r.task, "receipt": asdict(r.receipt)}
            for node, rows in sorted(self._rows.items())
            for r in rows
        ]

    def restore(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add the receipts of :meth:`rows` (a resumed run's earlier rounds)."""
        for row in rows:
            receipt = PrivacyReceipt(**row["receipt"])
            self._rows[str(row["node"])].append(
                ReceiptRow(int(row["round"]), str(row["task"]), receipt)
            )

    def epsilon_run(self, node: str) -> float:
        """Record-level epsilon this run cost ``node`` at the plan's delta (RDP composition
        of its receipts); lifetime totals in receipts are at the node's own cap delta."""
        rows = self._rows.get(node, [])
        if not rows:
            return 0.0
        spends = [
            Spend(
                r.receipt.noise_multiplier,
                r.receipt.sample_rate,
                r.receipt.steps,
                r.receipt.mechanism,
            )
            for r in rows
        ]
        return rdp_epsilon(spends, self.run_delta)

    def max_total(self) -> tuple[float, float | None]:
        """The largest lifetime epsilon a node reported and the delta it is at (that
        node's cap delta); (0.0, None) before any receipt."""
        lasts = [rows[-1].receipt for rows in self._rows.values() if rows]
        if not lasts:
            return 0.0, None
        top = max(lasts, key=lambda r: r.epsilon_total)
        return top.epsilon_total, top.delta

    def max_run(self) -> tuple[float, float] | None:
        """The largest epsilon this run has cost a node so far as the nodes' receipts state
        it, and the plan's delta it is at; None before any receipt."""
        lasts = [rows[-1].receipt for rows in self._rows.values() if rows]
        if not lasts:
            return None
        return max(r.epsilon_run for r in lasts), self.run_delta

    def summary(self) -> RunPrivacy:
        """The receipts' figures per node for summary.json (notes are added by the run)."""
        nodes = {}
        insecure = set()
        for node, rows in sorted(self._rows.items()):
            last = rows[-1].receipt
            nodes[node] = NodePrivacy(
                epsilon_run=round(self.epsilon_run(node), 6),
                delta_run=self.run_delta,
                epsilon_total=round(last.epsilon_total, 6),
                delta_total=last.delta,
                epsilon_cap=last.epsilon_cap,
                delta_cap=last.delta,
                releases=tuple(_release(r) for r in rows),
            )
            insecure |= {r.receipt.mechanism for r in rows if not r.receipt.secure_rng}
        notes = []
        if insecure:
            notes.append(
                "Noise of " + ", ".join(sorted(insecure)) + " comes from torch's ordinary "
                "(non-cryptographic) RNG: Opacus secure_mode needs torchcsprng, which is not "
                "installable here. Histogram noise is OpenDP's discrete Gaussian (OpenSSL CSPRNG)."
            )
        return RunPrivacy(
            unit="record", accountant="rdp", deltas=DELTAS_NOTE, nodes=nodes, notes=tuple(notes)
        )


def _release(row: ReceiptRow) -> ReleaseFigures:
    """One receipt's release as the summary lists it."""
    receipt = row.receipt
    return ReleaseFigures(
        round=row.round,
        task=row.task,
        mechanism=receipt.mechanism,
        noise_multiplier=receipt.noise_multiplier,
        sample_rate=receipt.sample_rate,
        steps=receipt.steps,
        epsilon_task=round(receipt.epsilon_task, 6),
    )
