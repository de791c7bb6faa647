"""The run request: what `fedrisk-coordinator` hands to its ServerApp for one run.

Written as JSON by the command that submits a run, read by the ServerApp through the
Flower run config key ``run-request``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from common.atomic import atomic_write_text
from common.config_file import StrictModel, parse_model
from coordinator.config import CoordinatorConfig

__all__ = ["RunRequest", "write_run_request", "read_run_request"]


class RunRequest(StrictModel):
    """One run: id, output directory, configuration and how many nodes to wait for;
    ``resume``: continue the run ``run_id`` from its checkpoint after a crash
    (:mod:`coordinator.resumption`)."""

    run_id: str
    run_dir: str
    config: CoordinatorConfig
    expected_nodes: int = Field(ge=1)
    node_wait_timeout_s: float = Field(120.0, gt=0)
    #: The coordinator's ledger and its signing key (None: no ledger, for unit tests).
    ledger_dir: str | None = None
    ledger_key: str | None = None
    resume: bool = False


def write_run_request(path: Path, request: RunRequest) -> None:
    atomic_write_text(path, request.model_dump_json(indent=2))


def read_run_request(path: Path) -> RunRequest:
    return parse_model(RunRequest, json.loads(Path(path).read_text(encoding="utf-8")), str(path))
