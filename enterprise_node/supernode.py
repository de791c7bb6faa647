"""``fedrisk-node join``: this site's Flower SuperNode, over TLS, with its registered key.

The SuperNode dials the broker's SuperLink over HTTPS, trusting only the broker's CA, and
authenticates with the node's ECDSA P-384 key (the broker registered its ``.pub``). It
runs each task in a separate process; the executable Flower starts for that is found on
PATH as ``flwr-clientapp``, and ``join`` puts a one-line wrapper of its own first on the
PATH, so every task goes through :mod:`enterprise_node.app_guard` (the app this site
installed, never the app that was sent). Nothing is installed at run time, nothing
phones home, and Flower's state lives under the node's state directory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_write_text
from common.errors import ConfigError
from common.processes import adopt_orphans, stop_pid_tree
from enterprise_node.config import NodeConfig, load_node_config

__all__ = [
    "JoinSettings",
    "JoinOutcome",
    "REFUSED_EXIT",
    "join",
    "supernode_command",
    "supernode_env",
    "write_guard_wrapper",
]

GUARD_NAME = "flwr-clientapp"


#: The loopback port between a SuperNode and its task processes unless one is given;
#: taken (another node's join on this host), the next free one up to this + 100 is used.
DEFAULT_RUNTIME_PORT = 9094


@dataclass(frozen=True)
class JoinSettings:
    """Where the SuperLink is and how to trust it; ``runtime_port`` is the loopback port
    between the SuperNode and its task processes."""

    superlink: str
    ca_cert: Path
    runtime_port: int = DEFAULT_RUNTIME_PORT
    max_wait_s: float | None = None


def runtime_port(requested: int | None, *, start: int = DEFAULT_RUNTIME_PORT) -> int:
    """The loopback port for the SuperNode's task processes: ``requested``, which must be
    free (ConfigError naming it otherwise), or without one the first free port from
    ``start``. Flower would only fail later, with a traceback, on a taken port."""
    if requested is not None:
        if not _loopback_port_free(requested):
            raise ConfigError(
                f"--runtime-port {requested}: 127.0.0.1:{requested} is already in use (another "
                "node's join on this host?)",
                advice="Give each node on this host its own --runtime-port, or leave it out "
                "to take the next free port.",
            )
        return requested
    for port in range(start, start + 101):
        if _loopback_port_free(port):
            return port
    raise ConfigError(f"no free loopback port in {start}-{start + 100} for the task processes")


def _loopback_port_free(port: int) -> bool:
    """True if a listener could bind 127.0.0.1:``port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    return path.resolve()


def _check_address(address: str) -> str:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--superlink {address!r}: expected HOST:PORT")
    if address.startswith(("http://", "https://")):
        raise ConfigError(f"--superlink {address!r}: give HOST:PORT without a scheme")
    return address


def flower_home(config: NodeConfig) -> Path:
    """Flower's own state for this node (never the user's ~/.flwr)."""
    return config.state_dir / "flwr-home"


def write_guard_wrapper(config: NodeConfig) -> Path:
    """Write ``state/bin/flwr-clientapp`` (0755), which runs the app guard; return its dir."""
    bin_dir = config.state_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / GUARD_NAME
    atomic_write_text(
        wrapper,
        "#!/bin/sh\n"
        "# fedrisk: Flower starts this for every task. It serves the task with the app\n"
        "# installed at this site, and only for approved plans (enterprise_node/app_guard.py).\n"
        f'exec "{sys.executable}" -m enterprise_node.app_guard "$@"\n',
    )
    wrapper.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return bin_dir


def supernode_env(config: NodeConfig, guard_dir: Path) -> dict[str, str]:
    """The environment of the SuperNode: the guard first on PATH, no telemetry, own home."""
    env = dict(os.environ)
    interpreter_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([str(guard_dir), interpreter_bin, env.get("PATH", "")])
    env["FLWR_HOME"] = str(flower_home(config))
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def supernode_command(config: NodeConfig, config_path: Path, settings: JoinSettings) -> list[str]:
    """The ``flower-supernode`` command line for this node."""
    key = _require_file(config.resolve(config.node.auth_key_file), "node authentication key")
    ca = _require_file(settings.ca_cert, "the broker's CA certificate")
    command = [
        str(Path(sys.executable).with_name("flower-supernode")),
        "--superlink",
        _check_address(settings.superlink),
        "--root-certificates",
        str(ca),
        "--auth-supernode-private-key",
        str(key),
        "--node-config",
        f"node-config='{Path(config_path).resolve()}'",
        "--isolation",
        "subprocess",
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.runtime_port),
    ]
    if settings.max_wait_s is not None:
        command += ["--max-wait-time", f"{settings.max_wait_s:g}"]
    return command


#: Flower's exit code (in the SuperNode's log; the process exits 1) when the SuperLink does
#: not activate the node: an unregistered key, or a registered one whose earlier session
#: the SuperLink still holds (a node restarted right after it died).
REFUSED_EXIT = 305
_FLOWER_CODE = re.compile(r"Exit Code: (\d+)")


@dataclass(frozen=True)
class JoinOutcome:
    """How ``join`` ended: the SuperNode's exit code, Flower's own exit code from its log
    (None if it printed none), and whether we stopped it (SIGTERM or Ctrl-C)."""

    code: int
    flower_code: int | None
    stopped: bool


#: Terminal colour and cursor sequences (Flower colours its log levels unconditionally).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_once(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list[int]]:
    """Start the SuperNode, copying its output to ours and noting Flower's exit codes; its
    orphaned task processes come to us to be reaped (:func:`adopt_orphans`)."""
    adopt_orphans()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    codes: list[int] = []

    def copy() -> None:
        assert process.stdout is not None
        plain = not sys.stdout.isatty()  # a log file or the journal: no colour codes
        for line in process.stdout:
            clean = ANSI_ESCAPE.sub("", line)
            sys.stdout.write(clean if plain else line)
            sys.stdout.flush()
            if match := _FLOWER_CODE.search(clean):
                codes.append(int(match.group(1)))

    threading.Thread(target=copy, daemon=True).start()
    return process, codes


@dataclass
class _Running:
    """The SuperNode process of the moment, and whether we were told to stop."""

    process: subprocess.Popen | None = None
    stopped: bool = False


def join(
    config_path: Path, settings: JoinSettings, activation_wait_s: float = 180.0
) -> JoinOutcome:
    """Run this node's SuperNode in the foreground until it ends or we are told to stop.

    Output goes to our stdout (the journal under systemd). If the SuperLink does not
    activate the node (Flower code 305), the SuperNode is started again every few seconds
    for up to ``activation_wait_s``: after a crash the SuperLink holds the node's old
    session until its heartbeat expires. SIGTERM or Ctrl-C stop the SuperNode and its task
    processes (by PID).
    """
    config = load_node_config(config_path)
    guard_dir = write_guard_wrapper(config)
    command = supernode_command(config, config_path, settings)
    env = supernode_env(config, guard_dir)
    flower_home(config).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + activation_wait_s
    running = _Running()

    def _stop(_signum: int, _frame: object) -> None:
        running.stopped = True
        if running.process is not None:
            stop_pid_tree(running.process.pid)

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            process, codes = _run_once(command, env)
            running.process = process
            try:
                code = process.wait()
            except KeyboardInterrupt:
                running.stopped = True
                stop_pid_tree(process.pid)
                code = process.wait()
            time.sleep(0.2)  # let the copy thread read the last lines
            flower_code = codes[-1] if codes else None
            retry = flower_code == REFUSED_EXIT and time.monotonic() < deadline
            if running.stopped or not retry:
                return JoinOutcome(code, flower_code, running.stopped)
            print(f"not activated by the SuperLink (Flower code {flower_code}); retrying")
            time.sleep(5.0)
    finally:
        signal.signal(signal.SIGTERM, previous)
