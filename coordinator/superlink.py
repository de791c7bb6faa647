"""The broker's Flower SuperLink: TLS always, only registered node keys, state on disk.

``fedrisk-coordinator start STATE`` runs ``flower-superlink`` with the certificate made by
``init``, SuperNode authentication on, runtime dependency installation off, telemetry and
update checks off, its state database ``superlink/state.db`` and its log
``superlink/superlink.log``. ``superlink/superlink.json`` says which process it is and
where it listens, for ``run``, ``status`` and ``stop``. Flower's Fleet, Control and Runtime
APIs share the one HTTPS port (STACK.md); the Control API takes run submissions and node
registrations without credentials, so the README's deployment section says how to expose
only ``/v1/fleet/`` to the nodes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from common.atomic import atomic_write_text
from common.errors import ConfigError, RunFailedError, StateError
from common.processes import spawn_logged, stop_pid_tree, stop_tree
from common.tls import TlsFiles
from coordinator.flower_env import flower_env

__all__ = [
    "CONNECTION",
    "SuperLinkFiles",
    "SuperLinkInfo",
    "superlink_command",
    "start_superlink",
    "is_superlink_process",
    "read_info",
    "record_ready",
    "running_info",
    "stop_superlink",
    "wait_healthy",
    "write_tls_connection",
]

#: The name of the SuperLink connection in the coordinator's FLWR_HOME.
CONNECTION = "fedrisk"
DEFAULT_PORT = 9092


@dataclass(frozen=True)
class SuperLinkFiles:
    """Where a coordinator's SuperLink keeps its state, log and process record."""

    state: Path

    @property
    def directory(self) -> Path:
        return self.state / "superlink"

    @property
    def database(self) -> Path:
        return self.directory / "state.db"

    @property
    def log(self) -> Path:
        return self.directory / "superlink.log"

    @property
    def info(self) -> Path:
        return self.directory / "superlink.json"

    @property
    def flwr_home(self) -> Path:
        return self.state / "flwr-home"

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.state / "tls")


@dataclass(frozen=True)
class SuperLinkInfo:
    """A started SuperLink: its PID, the address nodes and ``flwr`` dial, since when."""

    pid: int
    address: str
    control_address: str
    started_at: float
    log: str


def superlink_command(files: SuperLinkFiles, host: str, port: int) -> list[str]:
    """The ``flower-superlink`` command line (TLS, node authentication, no installs)."""
    tls = files.tls
    for path, what in (
        (tls.ca_cert, "CA certificate"),
        (tls.server_cert, "server certificate"),
        (tls.server_key, "server key"),
    ):
        if not path.is_file():
            raise ConfigError(f"{path}: {what} missing; run `fedrisk-coordinator init`")
    return [
        str(Path(sys.executable).with_name("flower-superlink")),
        "--ssl-ca-certfile",
        str(tls.ca_cert.resolve()),
        "--ssl-certfile",
        str(tls.server_cert.resolve()),
        "--ssl-keyfile",
        str(tls.server_key.resolve()),
        "--enable-supernode-auth",
        "--database",
        str(files.database.resolve()),
        "--disable-runtime-dependency-installation",
        "--isolation",
        "subprocess",
        "--host",
        host,
        "--port",
        str(port),
    ]


def write_tls_connection(files: SuperLinkFiles, address: str) -> None:
    """``$FLWR_HOME/config.toml`` for ``flwr`` with the one TLS connection to our SuperLink."""
    files.flwr_home.mkdir(parents=True, exist_ok=True)
    text = (
        "[superlink]\n"
        f'default = "{CONNECTION}"\n\n'
        f"[superlink.{CONNECTION}]\n"
        f'address = "{address}"\n'
        f'root-certificates = "{files.tls.ca_cert.resolve()}"\n'
    )
    atomic_write_text(files.flwr_home / "config.toml", text)


def read_info(files: SuperLinkFiles) -> SuperLinkInfo | None:
    """The recorded SuperLink, or None if none was started here."""
    if not files.info.exists():
        return None
    try:
        return SuperLinkInfo(**json.loads(files.info.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as err:
        raise StateError(f"{files.info}: not a SuperLink record: {err}") from None


def is_superlink_process(pid: int) -> bool:
    """True if ``pid`` is alive and is a flower-superlink (not a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(b"flower-superlink") for part in cmdline)


def running_info(files: SuperLinkFiles) -> SuperLinkInfo | None:
    """The recorded SuperLink if it is still running."""
    info = read_info(files)
    return info if info is not None and is_superlink_process(info.pid) else None


def wait_healthy(
    address: str, ca_cert: Path, process: subprocess.Popen | None, timeout: float = 60.0
) -> None:
    """Wait until the SuperLink answers ``/health`` over HTTPS, trusting only ``ca_cert``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RunFailedError(
                f"the SuperLink exited at start (code {process.returncode}); see its log"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"https://{address}/health", verify=str(ca_cert), timeout=2.0).is_success:
                return
        time.sleep(0.3)
    raise RunFailedError(f"the SuperLink at {address} did not become healthy in {timeout:g} s")


def start_superlink(
    state: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, dial: str | None = None
) -> tuple[subprocess.Popen, SuperLinkInfo]:
    """Start the SuperLink in the background and wait until it is healthy; the caller
    admits the nodes, then calls :func:`record_ready`.

    ``dial`` is the host:port ``flwr`` and local tools use (default 127.0.0.1:PORT, or
    HOST:PORT when bound to one address).
    """
    files = SuperLinkFiles(Path(state).resolve())
    if (running := running_info(files)) is not None:
        raise StateError(f"a SuperLink already runs for {state} (PID {running.pid})")
    files.info.unlink(missing_ok=True)  # the record of a SuperLink that died
    command = superlink_command(files, host, port)
    files.directory.mkdir(parents=True, exist_ok=True)
    env = flower_env(files.flwr_home)
    process = spawn_logged(command, env, files.log)
    address = dial or (f"127.0.0.1:{port}" if host in ("0.0.0.0", "::") else f"{host}:{port}")
    try:
        wait_healthy(address, files.tls.ca_cert, process)
    except RunFailedError:
        stop_tree(process)
        raise
    write_tls_connection(files, address)
    return process, SuperLinkInfo(process.pid, address, address, time.time(), str(files.log))


def record_ready(state: Path, info: SuperLinkInfo) -> None:
    """Write ``superlink.json``: the SuperLink is up and admits the registered nodes."""
    files = SuperLinkFiles(Path(state).resolve())
    atomic_write_text(files.info, json.dumps(asdict(info), indent=2) + "\n")


def stop_superlink(state: Path, grace: float = 10.0) -> SuperLinkInfo | None:
    """Stop the recorded SuperLink and its helpers (by PID); None if none was running."""
    files = SuperLinkFiles(Path(state).resolve())
    info = running_info(files)
    if info is None:
        files.info.unlink(missing_ok=True)
        return None
    stop_pid_tree(info.pid, grace)
    files.info.unlink(missing_ok=True)
    return info
