"""Cost of the signed ledger: append throughput and the time to verify a ledger.

Appends realistic coordinator records (:class:`ReleaseAccounted`) to a fresh ledger on
the project's disk in two ways: one by one, each append fsyncing its entry and then a new
signed tree head (what a node does per message), and in batches of ``--batch`` through
``Ledger.append_many`` (one tree head per batch, what the coordinator does per round).
Then times :func:`ledger.verification.verify_ledger` (every line parsed and checked
canonical, every tree head's signature, root and consistency) and ``Ledger.open`` (which
verifies before it appends) on both ledgers. Writes ``bench/out/ledger.json``.

    python -m bench.ledger [--single 10000] [--entries 10000] [--batch 100] [--out DIR]

Compatibility rule: keys of the JSON record are never removed and their meaning never
changes; add keys only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table

from bench.entry import REPO, fresh_work_dir, run_bench
from bench.report import machine_info
from common.atomic import atomic_write_json
from common.errors import ConfigError
from ledger.records import ReleaseAccounted
from ledger.signing import generate_private_key
from ledger.verification import verify_ledger
from ledger.writer import Ledger
from privacy.mechanisms import Mechanism

__all__ = [
    "SCHEMA_VERSION",
    "records",
    "time_appends",
    "time_verify",
    "render_table",
    "run_ledger_bench",
    "main",
]

SCHEMA_VERSION = 1


def records(count: int) -> list[ReleaseAccounted]:
    """``count`` coordinator claims, as a run of 8 nodes would write them."""
    return [
        ReleaseAccounted(
            run_id="bench-run",
            round=1 + i // 8,
            task="model",
            node=f"node-{i % 8:02d}",
            unit="record",
            mechanism=Mechanism.DP_SGD,
            noise_multiplier=1.1,
            sample_rate=0.01,
            steps=40,
            sensitivity=1.0,
            noise_shares=1,
            epsilon_claimed=0.05,
            epsilon_total_claimed=0.05 * (1 + i // 8),
            epsilon_cap=8.0,
            delta=1e-5,
            message_sha256=f"{i:064x}",
        )
        for i in range(count)
    ]


def time_appends(
    directory: Path, key: Ed25519PrivateKey, count: int, *, batch: int
) -> dict[str, Any]:
    """Append ``count`` records in batches of ``batch`` (1: one tree head per entry)."""
    items = records(count)
    ledger = Ledger.open(directory, key, "coordinator")
    start = time.perf_counter()
    for first in range(0, count, batch):
        chunk = items[first : first + batch]
        if batch == 1:
            ledger.append(chunk[0])
        else:
            ledger.append_many(chunk)
    seconds = time.perf_counter() - start
    return {
        "entries": count,
        "batch": batch,
        "tree_heads": -(-count // batch),
        "seconds": seconds,
        "entries_per_second": count / seconds,
        "bytes": sum(p.stat().st_size for p in directory.iterdir()),
    }


def time_verify(directory: Path, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Seconds to verify the ledger and to open it for appending; it must verify clean."""
    start = time.perf_counter()
    report = verify_ledger(directory, key.public_key(), ledger_id="coordinator")
    verify_seconds = time.perf_counter() - start
    report.raise_for_errors()
    start = time.perf_counter()
    Ledger.open(directory, key, "coordinator")
    return {
        "entries": report.entries,
        "tree_heads": report.tree_heads,
        "findings": len(report.findings),
        "verify_seconds": verify_seconds,
        "open_seconds": time.perf_counter() - start,
    }


def render_table(report: dict[str, Any]) -> Table:
    """The figures of ``ledger.json`` as one table."""
    table = Table(title="signed ledger: append throughput and verification")
    for column in ("ledger", "entries", "tree heads", "entries/s", "verify s", "open s"):
        table.add_column(column, justify="left" if column == "ledger" else "right")
    for name in ("single", "batched"):
        append, verify = report[f"append_{name}"], report[f"verify_{name}"]
        label = "one by one" if append["batch"] == 1 else f"batches of {append['batch']}"
        table.add_row(
            label,
            f"{append['entries']:,}",
            f"{append['tree_heads']:,}",
            f"{append['entries_per_second']:,.0f}",
            f"{verify['verify_seconds']:.2f}",
            f"{verify['open_seconds']:.2f}",
        )
    return table


def run_ledger_bench(
    out: Path, *, single: int, entries: int, batch: int, console: Console
) -> dict[str, Any]:
    """Run both append modes and the verifications; write and return ledger.json."""
    if min(single, entries, batch) < 1:
        raise ConfigError(
            f"--single, --entries and --batch must be >= 1, got {single}, {entries}, {batch}"
        )
    out = Path(out).resolve()
    work = out / "ledger-work"
    fresh_work_dir(work)
    key = generate_private_key()
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "work_dir": str(work),
    }
    for name, count, size in (("single", single, 1), ("batched", entries, batch)):
        console.print(f"appending {count:,} entries, batch {size} ...")
        report[f"append_{name}"] = time_appends(work / name, key, count, batch=size)
        report[f"verify_{name}"] = time_verify(work / name, key)
    atomic_write_json(out / "ledger.json", report)
    console.print(render_table(report))
    console.print(f"Wrote {out / 'ledger.json'} (ledgers under {work})")
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--single", type=int, default=10_000, help="one-by-one appends (10000)")
    parser.add_argument("--entries", type=int, default=10_000, help="batched appends (10000)")
    parser.add_argument("--batch", type=int, default=100, help="records per batch (100)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="output dir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; a FedriskError becomes its message, advice and exit code."""
    args = _parser().parse_args(argv)
    return run_bench(
        "ledger",
        lambda: run_ledger_bench(
            args.out, single=args.single, entries=args.entries, batch=args.batch, console=Console()
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
