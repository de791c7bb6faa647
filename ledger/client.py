"""A client of the coordinator's ledger service that trusts nothing it is not shown.

Every tree head is checked against the coordinator's public key; entries are checked
against the signed root by an RFC 9162 inclusion proof, and successive heads by a
consistency proof. A failure raises (MerkleError, SignatureError, LedgerError) naming
what did not match.
"""

from __future__ import annotations

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import service_pb2 as pb
from ledger import service_pb2_grpc as pb_grpc
from ledger.log import Entry, LedgerError, TreeHead
from ledger.merkle import verify_consistency, verify_inclusion

__all__ = ["LedgerClient"]

_PAGE = 1000


class LedgerClient:
    """Reads and checks the ledger served at ``address`` (host:port)."""

    def __init__(
        self,
        address: str,
        public_key: Ed25519PublicKey,
        *,
        ledger_id: str = "coordinator",
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.public_key, self.ledger_id, self.timeout = public_key, ledger_id, timeout_s
        self._channel = (
            grpc.secure_channel(address, credentials)
            if credentials is not None
            else grpc.insecure_channel(address)
        )
        self._stub = pb_grpc.LedgerServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tree_head(self) -> TreeHead:
        """The latest signed tree head, signature and ledger id checked."""
        reply = self._stub.GetSignedTreeHead(pb.TreeHeadRequest(), timeout=self.timeout)
        head = TreeHead.from_json(
            {
                "tree_size": reply.tree_size,
                "root_hash": reply.root_hash,
                "timestamp": reply.timestamp,
                "ledger_id": reply.ledger_id,
                "key_id": reply.key_id,
                "signature": reply.signature,
            }
        )
        head.verify(self.public_key)
        if head.ledger_id != self.ledger_id:
            raise LedgerError(
                f"tree head of ledger {head.ledger_id!r}, expected {self.ledger_id!r}"
            )
        return head

    def entries(self, start: int, end: int) -> list[Entry]:
        """Entries ``start <= seq < end`` (unverified: check them with :meth:`check_included`)."""
        out: list[Entry] = []
        while start + len(out) < end:
            first = start + len(out)
            reply = self._stub.GetEntries(
                pb.EntriesRequest(start=first, end=min(end, first + _PAGE)), timeout=self.timeout
            )
            if not reply.entries:
                raise LedgerError(f"the service returned no entries from {first}")
            out.extend(Entry.from_line(raw) for raw in reply.entries)
        return out

    def check_included(self, entry: Entry, head: TreeHead) -> None:
        """Raise unless ``entry`` is leaf ``entry.seq`` of the tree signed in ``head``."""
        proof = self._stub.GetInclusionProof(
            pb.InclusionProofRequest(seq=entry.seq, tree_size=head.tree_size),
            timeout=self.timeout,
        )
        verify_inclusion(
            entry.leaf_hash(),
            entry.seq,
            head.tree_size,
            list(proof.hashes),
            bytes.fromhex(head.root_hash),
        )

    def check_consistent(self, old: TreeHead, new: TreeHead) -> None:
        """Raise unless the tree of ``old`` is a prefix of the tree of ``new``."""
        proof = self._stub.GetConsistencyProof(
            pb.ConsistencyProofRequest(first=old.tree_size, second=new.tree_size),
            timeout=self.timeout,
        )
        verify_consistency(
            old.tree_size,
            new.tree_size,
            bytes.fromhex(old.root_hash),
            bytes.fromhex(new.root_hash),
            list(proof.hashes),
        )
