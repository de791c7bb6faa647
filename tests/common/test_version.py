"""Every console script answers ``--version`` with the release and the app hash (broker and
nodes must run the same code; a node approves a plan with this app hash)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocols.app_identity import installed_app_hash

SCRIPTS = ("fedrisk-node", "fedrisk-coordinator", "fedrisk-audit", "fedrisk-lab")


@pytest.fixture(scope="module")
def app_hash() -> str:
    return installed_app_hash()


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_prints_the_release_and_app_hash_and_exits_0(script: str, app_hash: str) -> None:
    # the console script installed next to this interpreter (make setup installs them)
    path = Path(sys.executable).parent / script
    done = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"{script}: fedrisk \d+\.\d+\.\d+\S*, app [0-9a-f]{{64}}\n", done.stdout)
    assert done.stdout.endswith(f"app {app_hash}\n")
