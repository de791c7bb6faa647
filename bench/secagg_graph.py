"""What the SecAgg+ graph saves: one secure round's compute and messages, complete graph
against the random Harary graph that ``plan.secure_graph`` gives, by number of nodes.

One round of a curve-sized vector is run in this process (:func:`secagg.server.simulate_round`:
every node's key agreement, Shamir sharing and encryption, masking, and the coordinator's
unmasking; no Flower, no network) with 5 % of the nodes dropping after key sharing. For
each n: the (k, t) the plan's default risk gives (5 % corrupt, 10 % dropout, failure
2^-30; :mod:`secagg.parameters`), the wall seconds of the round (best of ``--repeats``),
and the bytes of the encrypted shares one node sends (mean), for the complete graph
(k = n, t = n // 2 + 1) and for the chosen graph; the ratio of each to the complete
graph's in the same run. The complete graph is skipped above ``--complete-max`` nodes
(its cost grows as n^2).

    python -m bench.secagg_graph [--nodes 50 100 200 500 1000] [--repeats 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.entry import REPO, run_bench
from bench.report import machine_info
from common.atomic import atomic_write_json
from coordinator.config import load_config_or_default
from protocols.plan import SecureGraph
from protocols.secure_curve import curve_vector_length
from protocols.secure_round import plan_graph
from secagg.client import SecAggClient
from secagg.messages import SecAggConfig, encrypted_shares_to_dict
from secagg.quantization import IntegerCodec
from secagg.server import SecAggServer, simulate_round

__all__ = ["graph_round", "secagg_graph_bench"]

_MODULUS_BITS = 64
_DROPOUT = 0.05


def _share_bytes(config: SecAggConfig, round_id: str) -> float:
    """Mean bytes of the encrypted shares one node sends in a round of ``config``."""
    nodes = range(1, config.num_nodes + 1)
    clients = {i: SecAggClient(config, i, round_id) for i in nodes}
    server = SecAggServer(config, round_id)
    server.collect_public_keys(c.advertise_keys() for c in clients.values())
    sizes = []
    for i, client in clients.items():
        wire = encrypted_shares_to_dict(client.share_keys(server.directory_for(i)))
        sizes.append(sum(len(v) for value in wire.values() for v in _items(value)))
    return float(np.mean(sizes))


def _items(value: object) -> list[bytes]:
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, list):
        return [v if isinstance(v, bytes) else int(v).to_bytes(8, "big") for v in value]
    return [int(value).to_bytes(8, "big")]  # type: ignore[call-overload]


def graph_round(
    n: int, k: int | None, t: int, *, length: int, repeats: int, seed: int
) -> dict[str, float]:
    """Seconds (best of ``repeats``) and share bytes per node of one round."""
    rng = np.random.default_rng(seed)
    codec = IntegerCodec(_MODULUS_BITS, n, 2**40)
    vectors = {i: codec.encode(rng.integers(0, 1000, length)) for i in range(1, n + 1)}
    dropped = set(rng.choice(np.arange(1, n + 1), size=max(1, int(_DROPOUT * n)), replace=False))
    round_id = f"bench:{n}"
    config = SecAggConfig(n, t, length, _MODULUS_BITS, k, graph_seed=round_id)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        simulate_round(config, vectors, round_id=round_id, drop_after_sharing=dropped)
        best = min(best, time.perf_counter() - start)
    return {"seconds": round(best, 3), "share_bytes_per_node": _share_bytes(config, round_id)}


def secagg_graph_bench(
    out: Path, *, nodes: Sequence[int], repeats: int, complete_max: int, seed: int
) -> dict[str, Any]:
    """Run every size; write and return secagg_graph.json."""
    spec = load_config_or_default(None).plan.model_spec
    length = curve_vector_length(spec, with_entries=False)
    risk = SecureGraph()
    by_n: dict[str, Any] = {}
    for n in nodes:
        chosen = plan_graph(risk, n)
        assert chosen is not None
        k, t = chosen
        row: dict[str, Any] = {"num_shares": k if k is not None else n, "threshold": t}
        print(f"n = {n}: graph k = {row['num_shares']}, t = {t} ...", flush=True)
        row["graph"] = graph_round(n, k, t, length=length, repeats=repeats, seed=seed)
        if n <= complete_max:
            print(f"n = {n}: complete graph ...", flush=True)
            complete = graph_round(n, None, n // 2 + 1, length=length, repeats=repeats, seed=seed)
            row["complete"] = complete
            row["seconds_ratio"] = row["graph"]["seconds"] / complete["seconds"]
            row["bytes_ratio"] = (
                row["graph"]["share_bytes_per_node"] / complete["share_bytes_per_node"]
            )
        by_n[str(n)] = row
        print(f"n = {n}: {row}", flush=True)
    report = {
        "benchmark": "secagg_graph",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "risk": risk.model_dump(),
        "vector_length": length,
        "dropout_in_round": _DROPOUT,
        "method": __doc__.split("\n\n    python")[0] if __doc__ else "",
        "by_nodes": by_n,
    }
    atomic_write_json(Path(out) / "secagg_graph.json", report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.secagg_graph", description=__doc__)
    parser.add_argument("--nodes", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--complete-max", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)
    return run_bench(
        "secagg_graph",
        lambda: secagg_graph_bench(
            args.out,
            nodes=args.nodes,
            repeats=args.repeats,
            complete_max=args.complete_max,
            seed=args.seed,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
