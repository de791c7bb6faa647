"""A deployment on one machine: broker and enterprises as separate processes on loopback.

Each party runs the command it would run on its own machine (``fedrisk-coordinator
start``, ``fedrisk-node join``, ``fedrisk-coordinator run``), as its own process under
``/usr/bin/time -v`` (wall time and peak memory), with its output in ``logs/<name>.log``.
Used by ``make demo-deploy`` and the end-to-end tests; stops exactly what it started, by
PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import RunFailedError
from common.processes import descendants, rss_kb, spawn_logged, stop_pid_tree
from common.tls import init_tls, make_auth_key
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.flower_env import flower_env, free_port
from coordinator.node_registry import NodeRegistry
from coordinator.superlink import SuperLinkFiles, read_info, wait_healthy
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import LEDGER_DIR
from ledger.log import read_ledger
from ledger.records import InclusionChecked, record_from_entry
from ledger.signing import generate_key_pair

__all__ = [
    "LoopbackDeployment",
    "Party",
    "ProcessUsage",
    "inclusion_checks",
    "parse_time_report",
    "prepare_broker",
    "serve_coordinator_ledger",
    "verify_inclusion",
]

TIME = Path("/usr/bin/time")


@dataclass(frozen=True)
class ProcessUsage:
    """One party's figures: ``/usr/bin/time -v``'s wall time, peak RSS (of the largest
    process it waited for) and exit status, and the sampled peak of the RSS summed over
    the party's whole process tree (Flower's task processes included)."""

    kind: str
    name: str
    wall_s: float
    max_rss_mb: float
    exit_status: int
    peak_tree_rss_mb: float = 0.0


def parse_time_report(text: str, kind: str, name: str) -> ProcessUsage:
    """Read GNU time's ``-v`` report: wall clock, maximum resident set size, exit status."""
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    status = re.search(r"Exit status: (\d+)", text)
    if wall is None or rss is None:
        raise RunFailedError(f"no /usr/bin/time -v report for {name}")
    hours, minutes, seconds = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    return ProcessUsage(
        kind=kind,
        name=name,
        wall_s=round(hours * 3600 + minutes * 60 + seconds, 2),
        max_rss_mb=round(int(rss.group(1)) / 1024, 1),
        exit_status=int(status.group(1)) if status else -1,
    )


@dataclass
class Party:
    """One started process: its kind and name, the process, its log and time report."""

    kind: str
    name: str
    process: subprocess.Popen
    log: Path
    time_file: Path | None

    def main_pid(self) -> int | None:
        """The party's own process (the child of ``/usr/bin/time`` when measured)."""
        if self.time_file is None:
            return self.process.pid if self.process.poll() is None else None
        children = descendants(self.process.pid)
        return children[0] if children else None

    #: The largest RSS summed over the party's process tree seen so far, in kB.
    peak_tree_kb: int = 0

    def sample(self) -> None:
        """Add up the RSS of the party's process tree now; keep the peak."""
        if self.process.poll() is not None:
            return
        tree = [self.process.pid, *descendants(self.process.pid)]
        self.peak_tree_kb = max(self.peak_tree_kb, sum(rss_kb(pid) for pid in tree))

    def usage(self) -> ProcessUsage | None:
        if self.time_file is None or not self.time_file.exists():
            return None
        text = self.time_file.read_text(encoding="utf-8", errors="replace")
        usage = parse_time_report(text, self.kind, self.name)
        return dataclasses.replace(usage, peak_tree_rss_mb=round(self.peak_tree_kb / 1024, 1))


def prepare_broker(broker: Path, node_configs: list[Path]) -> None:
    """``init`` for the broker, an authentication key per node, every key registered."""
    init_tls(broker / "tls", [])
    private, public = coordinator_key_paths(broker)
    if not private.exists():
        generate_key_pair(private, public)
    registry = NodeRegistry(broker)
    for path in node_configs:
        config = load_node_config(path)
        key = config.resolve(config.node.auth_key_file)
        make_auth_key(key)
        registry.register(Path(f"{key}.pub"), config.node.name)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class LoopbackDeployment:
    """The broker's SuperLink and the nodes' SuperNodes as processes on 127.0.0.1."""

    def __init__(self, out: Path, broker: Path, *, measure: bool = True) -> None:
        self.out = Path(out).resolve()
        self.broker = Path(broker).resolve()
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = flower_env(self.out / "flwr-home")
        self.measure = measure and TIME.exists()
        self.port = free_port()
        self.parties: list[Party] = []
        #: Extra environment per node name, e.g. where its app guard keeps what it sent.
        self.env_for: dict[str, dict[str, str]] = {}
        #: The coordinator's ledger service (:func:`serve_coordinator_ledger`): nodes that
        #: join after it started check inclusion against it whenever a run ends.
        self.ledger_service: str | None = None
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self, interval: float = 0.5) -> None:
        """Sample every party's process-tree memory until :meth:`stop_all`."""
        while not self._sampling.wait(interval):
            for party in list(self.parties):
                party.sample()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return SuperLinkFiles(self.broker).tls.ca_cert

    def spawn(
        self, kind: str, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> Party:
        """Start ``command`` as party ``name`` (output appended to logs/<name>.log)."""
        log = self.logs / f"{name}.log"
        time_file = self.logs / f"time-{name}.txt" if self.measure else None
        wrapped = [str(TIME), "-v", "-o", str(time_file), *command] if time_file else command
        process = spawn_logged(wrapped, {**self.env, **(env or {})}, log)
        party = Party(kind, name, process, log, time_file)
        self.parties.append(party)
        return party

    def start_superlink(self, timeout: float = 120.0) -> Party:
        """``fedrisk-coordinator start``; returns once it admits the registered nodes."""
        command = [_bin("fedrisk-coordinator"), "start", str(self.broker), "--port", str(self.port)]
        party = self.spawn("coordinator (SuperLink)", "superlink", command)
        files = SuperLinkFiles(self.broker)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if party.process.poll() is not None:
                raise RunFailedError(f"`fedrisk-coordinator start` exited; see {party.log}")
            info = read_info(files)  # a record left by an earlier, killed SuperLink is not ours
            if info is not None and info.pid in descendants(party.process.pid):
                wait_healthy(info.address, files.tls.ca_cert, None)
                return party
            time.sleep(0.3)
        raise RunFailedError(f"the SuperLink did not start within {timeout:g} s")

    def join(
        self, node_yaml: Path, *, ca: Path | None = None, name: str | None = None,
        max_wait_s: float | None = None,
    ) -> Party:  # fmt: skip
        """``fedrisk-node join`` for the node at ``node_yaml`` (``ca``: another CA to trust)."""
        config = load_node_config(node_yaml)
        command = [
            _bin("fedrisk-node"), "join", "--config", str(node_yaml),
            "--superlink", self.address, "--ca", str(ca or self.ca_cert),
            "--runtime-port", str(free_port()),
        ]  # fmt: skip
        if max_wait_s is not None:
            command += ["--max-wait", f"{max_wait_s:g}"]
        if self.ledger_service is not None:
            _private, public = coordinator_key_paths(self.broker)
            command += ["--ledger-service", self.ledger_service, "--coordinator-key",
                        str(public), "--check-every", "2"]  # fmt: skip
        extra = self.env_for.get(config.node.name)
        return self.spawn("node (SuperNode)", name or config.node.name, command, extra)

    def submit(self, plan_path: Path | None, *extra: str, name: str = "run") -> Party:
        """``fedrisk-coordinator run`` (a plan, or ``--resume RUN_ID`` in ``extra``)."""
        command = [_bin("fedrisk-coordinator"), "run", str(self.broker)]
        command += [str(plan_path)] if plan_path is not None else []
        return self.spawn("run (submit and follow)", name, [*command, *extra])

    def stop(self, party: Party, grace: float = 20.0) -> None:
        """SIGTERM the party's own process (it stops its children), then make sure."""
        pid = party.main_pid()
        if pid is not None:
            stop_pid_tree(pid, grace)
        try:
            party.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            stop_pid_tree(party.process.pid, grace)
            party.process.wait(timeout=grace)

    def kill(self, party: Party) -> None:
        """SIGKILL the party and everything under it at once (a crash), by PID."""
        tree = [party.process.pid, *descendants(party.process.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        party.process.wait(timeout=30)

    def stop_all(self) -> None:
        for party in reversed(self.parties):
            if party.process.poll() is None:
                self.stop(party)
        self._sampling.set()

    def usage(self) -> list[ProcessUsage]:
        return [u for u in (p.usage() for p in self.parties) if u is not None]


def serve_coordinator_ledger(
    deployment: LoopbackDeployment, timeout: float = 60.0
) -> tuple[Party, str]:
    """``fedrisk-coordinator serve-ledger --tls`` for the broker; the party and the address
    nodes dial (``localhost:PORT``, a name the broker's server certificate carries). Nodes
    joined after this check inclusion automatically (``join --ledger-service``)."""
    port = free_port()
    command = [_bin("fedrisk-coordinator"), "serve-ledger", str(deployment.broker),
               "--port", str(port), "--tls"]  # fmt: skip
    party = deployment.spawn("coordinator (ledger service)", "ledger-service", command)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if party.process.poll() is not None:
            raise RunFailedError(f"`fedrisk-coordinator serve-ledger` exited; see {party.log}")
        if party.log.exists() and "ledger service at" in party.log.read_text(errors="replace"):
            deployment.ledger_service = f"localhost:{port}"
            return party, deployment.ledger_service
        time.sleep(0.2)
    raise RunFailedError(f"the ledger service did not start within {timeout:g} s")


def verify_inclusion(
    deployment: LoopbackDeployment, node_yaml: Path, ledger_service: str
) -> subprocess.CompletedProcess[str]:
    """``fedrisk-node verify-inclusion`` for one node, as its site would run it after a run
    (output appended to logs/verify-<name>.log); its exit code says whether it passed."""
    config = load_node_config(node_yaml)
    _private, public = coordinator_key_paths(deployment.broker)
    command = [_bin("fedrisk-node"), "verify-inclusion", "--config", str(node_yaml),
               "--ledger-service", ledger_service, "--ca", str(deployment.ca_cert),
               "--coordinator-key", str(public)]  # fmt: skip
    result = subprocess.run(
        command, env=deployment.env, capture_output=True, text=True, timeout=300, check=False
    )
    log = deployment.logs / f"verify-{config.node.name}.log"
    with log.open("a", encoding="utf-8") as handle:
        handle.write(result.stdout + result.stderr)
    return result


def inclusion_checks(
    node_yamls: list[Path], run_id: str, timeout: float = 120.0
) -> dict[str, InclusionChecked]:
    """Wait until every node's ledger holds an inclusion check of ``run_id`` (``join``
    checks once the run has ended); the latest check of each, by node name."""
    deadline = time.monotonic() + timeout
    configs = [load_node_config(path) for path in node_yamls]
    found: dict[str, InclusionChecked] = {}
    while True:
        for config in configs:
            entries = read_ledger(config.state_dir / LEDGER_DIR).entries()
            checks = [
                record
                for e in entries
                if isinstance(record := record_from_entry(e), InclusionChecked)
                and record.run_id == run_id
            ]
            if checks:
                found[config.node.name] = checks[-1]
        if len(found) == len(node_yamls):
            return found
        if time.monotonic() > deadline:
            late = [c.node.name for c in configs if c.node.name not in found]
            raise RunFailedError(
                f"no inclusion check of run {run_id} at {', '.join(late)} within "
                f"{timeout:g} s; see their logs (logs/<node>.log)"
            )
        time.sleep(0.5)
