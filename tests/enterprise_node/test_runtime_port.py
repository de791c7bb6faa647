"""`join`'s loopback port between the SuperNode and its task processes: a taken port that
was asked for is a clear error before anything starts (Flower would crash later with a
traceback); without one, the next free port is taken (several nodes on one host)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.exit_codes import ExitCode
from enterprise_node.supernode import runtime_port


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port some other process listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_port_that_was_asked_for_is_an_error_naming_it(taken: int) -> None:
    with pytest.raises(ConfigError, match=rf"--runtime-port {taken}: 127.0.0.1:{taken} is already"):
        runtime_port(taken)


def test_without_a_port_the_next_free_one_is_taken(taken: int) -> None:
    port = runtime_port(None, start=taken)
    assert port > taken
    assert runtime_port(port) == port  # free, so asking for it is fine


def test_join_on_a_taken_port_exits_with_the_config_error_and_starts_nothing(
    taken: int, tmp_path: Path
) -> None:
    # Prepare: a site (join checks the port before it reads anything else of the network)
    script = Path(sys.executable).parent / "fedrisk-node"
    subprocess.run([str(script), "init", str(tmp_path / "site")], check=True, capture_output=True)
    (tmp_path / "ca.crt").write_text("not used")
    # Execute
    done = subprocess.run(
        [
            str(script), "join", "--config", str(tmp_path / "site" / "node.yaml"),
            "--superlink", "127.0.0.1:1", "--ca", str(tmp_path / "ca.crt"),
            "--runtime-port", str(taken),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Assert: one clear error line and its advice, no traceback
    assert done.returncode == ExitCode.CONFIG_ERROR, done.stderr
    assert f"error: --runtime-port {taken}: 127.0.0.1:{taken} is already in use" in done.stderr
    assert "advice: Give each node on this host its own --runtime-port" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
