"""The signed, append-only ledgers every party keeps: the log and its verification
(:mod:`ledger.log`), the typed records (:mod:`ledger.records`), the Merkle tree
(:mod:`ledger.merkle`), signing (:mod:`ledger.signing`) and the gRPC service and client
that serve a ledger to auditors (:mod:`ledger.service`, :mod:`ledger.client`; stubs
generated from ``ledger/service.proto`` by ``make protos``)."""
