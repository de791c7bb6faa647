"""The coordinator's ledger fetched from its ledger service instead of a directory.

The latest signed tree head is fetched and checked under each given key in turn
(:class:`ledger.client.LedgerClient`); then all entries up to its size. The
result is an in-memory ledger of those entries and that one head, audited like a
directory: its Merkle root must match the signed head. One head (not the history of
heads) means no consistency proofs between heads here; the nodes' InclusionChecked
entries still pin earlier heads. A head that verifies under no given key yields a ledger
without heads, which the audit reports as signed by no trusted key.
"""

from __future__ import annotations

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from common.errors import StateError
from ledger.client import LedgerClient
from ledger.log import LedgerContents, LedgerError
from ledger.ranges import MAX_LEDGER_BYTES
from ledger.signing import SignatureError

__all__ = ["RemoteLedgerError", "fetch_coordinator_ledger"]


#: Most entries fetched from a ledger service (the file bound, MAX_LEDGER_BYTES, over the
#: smallest real entry, about 200 bytes): a service cannot make the auditor read forever.
MAX_REMOTE_ENTRIES = MAX_LEDGER_BYTES // 200


class RemoteLedgerError(StateError):
    """The coordinator's ledger service cannot be reached or answers out of protocol."""

    advice = "Check HOST:PORT and that `fedrisk-coordinator serve-ledger` is running there."


def fetch_coordinator_ledger(
    address: str, keys: dict[str, Ed25519PublicKey], *, timeout_s: float = 10.0
) -> LedgerContents:
    """Entries and the latest signed head served at ``address`` (host:port)."""
    try:
        for key in keys.values():
            with LedgerClient(address, key, timeout_s=timeout_s) as client:
                try:
                    head = client.tree_head()
                except (SignatureError, LedgerError):
                    continue
                if head.tree_size > MAX_REMOTE_ENTRIES:
                    raise RemoteLedgerError(
                        f"the ledger at {address} signs {head.tree_size:,} entries, more "
                        f"than the {MAX_REMOTE_ENTRIES:,} an audit reads"
                    )
                entries = client.entries(0, head.tree_size)
                lines = tuple(entry.canonical() for entry in entries)
                return LedgerContents(lines, (head.canonical(),))
    except grpc.RpcError as err:
        raise RemoteLedgerError(
            f"cannot read the ledger at {address}: {err.code().name}"  # type: ignore[attr-defined]
        ) from None
    return LedgerContents((), ())
