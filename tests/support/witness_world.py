"""A coordinator ledger and one node, built by hand, for the witness and inclusion tests:
the node sent messages, the coordinator recorded receiving them, its ledger is served."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from node_site import NodeSite

from enterprise_node.config import NodeConfig, load_node_config
from enterprise_node.node_ledger import NodeLedger, node_key_id
from ledger.client import LedgerClient
from ledger.records import MessageReceived, MessageSent, RunEnded
from ledger.service import LedgerServer, serve_ledger
from ledger.writer import Ledger


class CountingClient(LedgerClient):
    """A ledger client that notes every range of entries it fetched."""

    fetched: list[tuple[int, int]]

    def entries(self, start: int, end: int):  # type: ignore[no-untyped-def]
        self.__dict__.setdefault("fetched", []).append((start, end))
        return super().entries(start, end)


@dataclass
class WitnessWorld:
    """``coordinator`` ledger dirs signed by ``key``; a node with ``config``."""

    root: Path
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    servers: list[LedgerServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        site = NodeSite(self.root / "site")
        site.root.mkdir(parents=True, exist_ok=True)
        site.write_data()
        self.config_path = site.write_config()
        self.config: NodeConfig = load_node_config(self.config_path)
        self.node_id = node_key_id(self.config)

    def coordinator(self, name: str = "coord") -> Ledger:
        return Ledger.open(self.root / name, self.key, "coordinator")

    def exchange(self, ledger: Ledger, run_id: str, round_: int, *, received: bool = True):
        """The node sends a message in ``run_id``; the coordinator records it (or not)."""
        sha = f"{abs(hash((run_id, round_, ledger.directory.name))):064x}"[-64:]
        sent = MessageSent(run_id, round_, "model", "model_update", "ok", sha, 10)
        NodeLedger(self.config).append([sent])
        filler = RunEnded("other-run", "completed", None)
        got = MessageReceived(run_id, round_, "model", self.node_id, "ok", sha)
        ledger.append_many([filler, got] if received else [filler])
        return sha

    def serve(self, name: str = "coord") -> CountingClient:
        server = serve_ledger(self.root / name)
        self.servers.append(server)
        return CountingClient(server.address, self.key.public_key())

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
