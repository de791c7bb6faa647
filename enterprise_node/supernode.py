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
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from enterprise_node.config import NodeConfig, load_node_config
from protocols.atomic import atomic_write_text
from protocols.errors import ConfigError
from protocols.processes import stop_pid_tree

__all__ = [
    "JoinSettings",
    "REFUSED_EXIT",
    "join",
    "supernode_command",
    "supernode_env",
    "write_guard_wrapper",
]

GUARD_NAME = "flwr-clientapp"


@dataclass(frozen=True)
class JoinSettings:
    """Where the SuperLink is and how to trust it; ``runtime_port`` is the loopback port
    between the SuperNode and its task processes."""

    superlink: str
    ca_cert: Path
    runtime_port: int = 9094
    max_wait_s: float | None = None


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


#: Flower's SuperNode exit code when the SuperLink refuses its key (STACK.md).
REFUSED_EXIT = 305


def join(config_path: Path, settings: JoinSettings) -> int:
    """Run this node's SuperNode in the foreground until it ends or we are told to stop.

    Output goes to our stdout (the journal under systemd). Returns the SuperNode's exit
    code, or 0 when SIGTERM or Ctrl-C stopped it (and its task processes, by PID).
    """
    config = load_node_config(config_path)
    guard_dir = write_guard_wrapper(config)
    command = supernode_command(config, config_path, settings)
    flower_home(config).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, env=supernode_env(config, guard_dir))
    stopped = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopped
        stopped = True
        stop_pid_tree(process.pid)

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        stopped = True
        stop_pid_tree(process.pid)
        process.wait()
        code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if stopped else code
