"""The coordinator's ledger served over gRPC: signed tree head, entries, proofs.

The ledger is written by the coordinator's ServerApp (another process), so the service
reads it from disk and rebuilds its Merkle tree only when the file has grown; before the
first run has written it, the service answers that there is no signed head yet. It serves
signed data only: entries and proofs up to the latest signed tree head, which a client
checks with the coordinator's public key (:mod:`ledger.client`). Loopback and
plaintext here; deployments put TLS on the same server (``credentials``).
"""

from __future__ import annotations

import json
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from ledger import service_pb2 as pb
from ledger import service_pb2_grpc as pb_grpc
from ledger.log import ENTRIES_FILE, LedgerContents, read_ledger
from ledger.merkle import MerkleTree, leaf_hash

__all__ = ["MAX_ENTRIES_PER_CALL", "LedgerServicer", "LedgerServer", "serve_ledger"]

MAX_ENTRIES_PER_CALL = 1000


@dataclass(frozen=True)
class _Snapshot:
    contents: LedgerContents
    tree: MerkleTree
    file_size: int

    @property
    def signed_size(self) -> int:
        heads = self.contents.tree_heads()
        return heads[-1].tree_size if heads else 0


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """Answers from the ledger directory, up to the latest signed tree head."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def _current(self) -> _Snapshot:
        path = self.directory / ENTRIES_FILE
        size = path.stat().st_size if path.exists() else 0
        with self._lock:
            if self._snapshot is None or self._snapshot.file_size != size:
                contents = (
                    read_ledger(self.directory)
                    if self.directory.is_dir()
                    else LedgerContents((), ())  # not written yet: no signed head
                )
                tree = MerkleTree([leaf_hash(line) for line in contents.entry_lines])
                self._snapshot = _Snapshot(contents, tree, size)
            return self._snapshot

    def GetSignedTreeHead(self, request, context):  # noqa: N802 - gRPC method name
        heads = self._current().contents.tree_heads()
        if not heads:
            context.abort(grpc.StatusCode.NOT_FOUND, "the ledger has no signed tree head yet")
        return pb.SignedTreeHead(**json.loads(heads[-1].canonical()))

    def GetEntries(self, request, context):  # noqa: N802
        snap = self._current()
        start, end = request.start, min(request.end, request.start + MAX_ENTRIES_PER_CALL)
        if not start <= end <= snap.signed_size:
            context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"entries {request.start}..{request.end} outside the signed 0..{snap.signed_size}",
            )
        return pb.EntriesResponse(entries=list(snap.contents.entry_lines[start:end]))

    def GetInclusionProof(self, request, context):  # noqa: N802
        snap = self._current()
        if not request.seq < request.tree_size <= snap.signed_size:
            context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"no entry {request.seq} in a signed tree of size {request.tree_size} "
                f"(latest signed size {snap.signed_size})",
            )
        hashes = snap.tree.inclusion_proof(request.seq, request.tree_size)
        return pb.InclusionProof(seq=request.seq, tree_size=request.tree_size, hashes=hashes)

    def GetConsistencyProof(self, request, context):  # noqa: N802
        snap = self._current()
        if not 1 <= request.first <= request.second <= snap.signed_size:
            context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"need 1 <= {request.first} <= {request.second} <= {snap.signed_size}",
            )
        hashes = snap.tree.consistency_proof(request.first, request.second)
        return pb.ConsistencyProof(first=request.first, second=request.second, hashes=hashes)


@dataclass(frozen=True)
class LedgerServer:
    """A running ledger service; ``address`` is host:port; ``stop()`` ends it."""

    server: grpc.Server
    address: str

    def stop(self) -> None:
        self.server.stop(grace=None).wait()


def serve_ledger(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    credentials: grpc.ServerCredentials | None = None,
) -> LedgerServer:
    """Start the service on ``host:port`` (0: a free port); TLS when ``credentials``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(directory), server)
    target = f"{host}:{port}"
    bound = (
        server.add_secure_port(target, credentials)
        if credentials is not None
        else server.add_insecure_port(target)
    )
    server.start()
    return LedgerServer(server, f"{host}:{bound}")
