"""A private, quiet Flower environment: FLWR_HOME, no telemetry, no update checks.

Every process fedrisk starts (SuperLink, ``flwr run``) gets this environment, so nothing
phones home and nothing touches the user's ``~/.flwr``.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

__all__ = ["flower_env", "free_port", "write_connection"]


def flower_env(flwr_home: Path) -> dict[str, str]:
    """The current environment plus FLWR_HOME and Flower's opt-outs."""
    env = dict(os.environ)
    # Flower starts its helpers (flower-superexec, flwr-simulation) from PATH: put this
    # interpreter's bin directory first so they come from the same environment.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["FLWR_HOME"] = str(flwr_home)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_connection(flwr_home: Path, name: str, address: str, *, insecure: bool) -> None:
    """Write ``$FLWR_HOME/config.toml`` with one SuperLink connection, the default."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    text = (
        "[superlink]\n"
        f'default = "{name}"\n\n'
        f"[superlink.{name}]\n"
        f'address = "{address}"\n'
        f"insecure = {'true' if insecure else 'false'}\n"
    )
    (flwr_home / "config.toml").write_text(text, encoding="utf-8")
