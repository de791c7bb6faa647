"""fedrisk auditor: verifies ledgers from public keys alone (``fedrisk-audit verify``).

Modules, one concept each: :mod:`auditor.ledgers` (one ledger verified under its trusted
key), :mod:`auditor.epsilon` (dp-accounting recomputation), :mod:`auditor.claims`
(claims vs recomputation and caps), :mod:`auditor.node_epsilon` and
:mod:`auditor.run_epsilon` (per node, per run, enterprise level), :mod:`auditor.cross_check`
(node vs coordinator ledgers), :mod:`auditor.verify` (the audit), :mod:`auditor.report`
and :mod:`auditor.plot` (the report), :mod:`auditor.remote` (a served coordinator ledger),
:mod:`auditor.cli` (the command line).
"""

from auditor.report import write_reports
from auditor.verify import AuditResult, audit

__all__ = ["AuditResult", "audit", "write_reports"]
