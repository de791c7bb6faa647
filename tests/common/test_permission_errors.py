"""A file or directory the user cannot read or write is one exit code (13) with a message
naming the path and the user, never a traceback, whatever command meets it. Run for real
through the console script: as another user the path is made inaccessible (chmod); as root
the path is given to ``nobody`` and the command runs without root's right to override file
permissions (``setpriv`` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from node_site import NodeSite

from common.exit_codes import ExitCode

NOBODY = 65534
SCRIPT = Path(sys.executable).parent / "fedrisk-node"
SETPRIV = shutil.which("setpriv")
ROOT = os.geteuid() == 0


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site with one bad row, checked once (its site secret exists); node.yaml."""
    if ROOT and SETPRIV is None:
        pytest.skip("running as root without setpriv: root reads every file regardless")
    node = NodeSite(tmp_path)
    node.write_data(40, bad={(3, "duration"): "-5"})
    node_yaml = node.write_config()
    first = _run("check", "--config", str(node_yaml), confined=False)
    assert first.returncode == 0, first.stderr
    return node_yaml


def _lock(path: Path) -> None:
    """Make ``path`` inaccessible to the user the command runs as."""
    if ROOT:
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o700 if path.is_dir() else 0o600)
    else:
        path.chmod(0o000)


def _run(*args: str, confined: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT), *args]
    if ROOT and confined:
        assert SETPRIV is not None
        command = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _assert_permission_error(done: subprocess.CompletedProcess[str], path: Path) -> None:
    assert done.returncode == ExitCode.PERMISSION_DENIED, (done.returncode, done.stderr)
    assert f"error: {path}: permission denied" in done.stderr
    assert "as user " in done.stderr and "advice: Run as the user that owns" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unreadable_node_yaml(site: Path) -> None:
    _lock(site)
    _assert_permission_error(_run("status", "--config", str(site)), site)


def test_an_unreadable_site_secret(site: Path) -> None:
    secret = site.parent / "secrets" / "site_secret.key"
    _lock(secret)
    _assert_permission_error(_run("check", "--config", str(site)), secret)


def test_a_quarantine_directory_it_cannot_write(site: Path) -> None:
    quarantine = site.parent / "state" / "quarantine"  # where check writes the bad row
    quarantine.mkdir(parents=True, exist_ok=True)
    _lock(quarantine)
    done = _run("check", "--config", str(site))
    assert done.returncode == ExitCode.PERMISSION_DENIED, (done.returncode, done.stderr)
    assert str(quarantine) in done.stderr and "permission denied" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unreadable_data_file(site: Path) -> None:
    data = site.parent / "units.csv"
    _lock(data)
    _assert_permission_error(_run("check", "--config", str(site)), data)
