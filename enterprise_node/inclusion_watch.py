"""While ``fedrisk-node join`` serves, check inclusion after every run this node took part in.

A background thread polls the coordinator's ledger service (TLS, heads checked against the
coordinator's key) every few seconds, but only while the node's ledger holds a run with
messages sent and no passed inclusion check. A run is checked once the coordinator's
ledger records its end (RunEnded, with no resumption after it); each verdict goes to the
node's ledger (:func:`enterprise_node.inclusion.check_runs`) and is printed. A run judged
once is judged again by this process only after the node sent more messages in it (a
resumed run): a failed check is evidence, not something to retry until it passes
(``fedrisk-node verify-inclusion`` checks again by hand). A service that cannot be
reached is reported once per distinct error and polled again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from common.errors import ConfigError, FedriskError
from enterprise_node.config import NodeConfig
from enterprise_node.inclusion import check_runs, messages_sent, runs_to_check
from ledger.client import LedgerClient
from ledger.records import InclusionChecked
from ledger.signing import load_public_key

__all__ = ["WatchSettings", "InclusionWatch", "watch_settings"]


@dataclass(frozen=True)
class WatchSettings:
    """Where the coordinator's ledger service is, how to trust it, how often to look."""

    ledger_service: str
    ca_cert: Path
    coordinator_key: Path
    every_s: float = 10.0

    def connect(self) -> LedgerClient:
        """A client of the service over TLS (the broker's CA), heads checked by the key."""
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_cert.read_bytes())
        key = load_public_key(self.coordinator_key)
        return LedgerClient(self.ledger_service, key, credentials=credentials)


def watch_settings(
    ledger_service: str | None, coordinator_key: Path | None, ca_cert: Path, every_s: float
) -> WatchSettings | None:
    """The settings from ``join``'s options; None when neither service nor key is given,
    ConfigError when only one is or the key does not load."""
    if ledger_service is None and coordinator_key is None:
        return None
    if ledger_service is None or coordinator_key is None:
        raise ConfigError(
            "automatic inclusion checks need both --ledger-service and --coordinator-key"
        )
    if every_s <= 0:
        raise ConfigError(f"--check-every {every_s:g}: must be a positive number of seconds")
    load_public_key(coordinator_key)  # a clear error now, not in the thread later
    return WatchSettings(ledger_service, ca_cert, coordinator_key, every_s)


class InclusionWatch:
    """The polling thread; :meth:`poll` is one round of it (tests call it directly)."""

    def __init__(
        self,
        config: NodeConfig,
        connect: Callable[[], LedgerClient],
        *,
        every_s: float,
        where: str,
        say: Callable[[str], None] = print,
    ) -> None:
        """``connect`` opens a client of the coordinator's ledger service at ``where``."""
        self.config, self.connect, self.every_s, self.where = config, connect, every_s, where
        self.say = say
        #: Runs judged by this process, with how many messages the node had sent in each.
        self.judged: dict[str, int] = {}
        self._last_problem = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="inclusion-watch", daemon=True)

    def start(self) -> InclusionWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)

    def poll(self) -> dict[str, InclusionChecked]:
        """Check the runs that ended since the last poll; their verdicts by run."""
        runs = runs_to_check(self.config)
        if not runs:  # the usual case between runs: one read of the node's ledger
            return {}
        sent = messages_sent(self.config)
        pending = [run for run in runs if self.judged.get(run) != sent[run]]
        if not pending:
            return {}
        with self.connect() as client:
            verdicts = check_runs(self.config, client, pending, ended_only=True)
        self.judged.update({run: sent[run] for run in verdicts})
        name = self.config.node.name
        for run, verdict in verdicts.items():
            word = "ok" if verdict.ok else "FAILED (keep this node's ledger and state/witness)"
            self.say(f"{name}: inclusion check of run {run}: {word}: {verdict.detail}")
        return verdicts

    def _loop(self) -> None:
        while True:
            try:
                self.poll()
                self._last_problem = ""
            except (grpc.RpcError, FedriskError, OSError) as err:
                self._report(err)
            if self._stop.wait(self.every_s):
                return

    def _report(self, err: Exception) -> None:
        """Say why a poll failed, once per distinct reason."""
        if isinstance(err, grpc.RpcError):
            problem = f"{err.code().name}: {err.details()}"  # type: ignore[attr-defined]
        else:
            problem = str(err)
        if problem != self._last_problem:
            self.say(
                f"{self.config.node.name}: inclusion check: the coordinator's ledger service "
                f"at {self.where} did not answer ({problem}); trying again every "
                f"{self.every_s:g} s"
            )
            self._last_problem = problem
