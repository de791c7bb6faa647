"""What the tools say when a user gets something wrong: a typo'd command or key is met
with one suggestion, numbers out of range are usage errors (exit 2), and the advice names
commands that exist wherever fedrisk is installed (no configs/ folder at a site, no
placeholders)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from node_site import NodeSite

from common.errors import ConfigError
from common.exit_codes import ExitCode
from coordinator.errors import CommandUsageError

BIN = Path(sys.executable).parent


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / script), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_misspelt_command_gets_one_suggestion() -> None:
    done = _run("fedrisk-node", "chek")
    assert done.returncode == ExitCode.USAGE_ERROR
    assert done.stderr.count("Did you mean") == 1 and "'check'" in done.stderr


def test_a_misspelt_key_names_the_key_it_is_closest_to(tmp_path: Path) -> None:
    node = NodeSite(tmp_path)
    node_yaml = node.write_config()
    node_yaml.write_text(node_yaml.read_text().replace("epsilon:", "epsilom:", 1))
    done = _run("fedrisk-node", "status", "--config", str(node_yaml))
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert "privacy.epsilom: unknown key; did you mean 'epsilon'?" in done.stderr
    assert "fedrisk-node init" in done.stderr and "configs/" not in done.stderr


def test_synth_with_no_enterprises_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("fedrisk-lab", "synth", str(tmp_path / "f"), "--enterprises", "0")
    assert done.returncode == ExitCode.USAGE_ERROR, done.stderr
    assert "--enterprises" in done.stderr and "0 is not in the range x>=1" in done.stderr
    assert not (tmp_path / "f").exists()


def test_default_advice_names_no_folder_or_placeholder() -> None:
    for advice in (ConfigError.advice, CommandUsageError.advice):
        assert "configs/" not in advice and "<" not in advice
