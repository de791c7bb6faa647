"""The fedrisk app's identity: the hash of the Flower app bundle (FAB) of this installation.

``flwr run`` packs the app directory (pyproject.toml and the files ``fab-include`` names)
into a FAB with fixed timestamps, so the same code always gives the same bytes; Flower's
``fab_hash`` is their SHA-256. A node approves a plan together with this hash of the code
installed at the site (``fedrisk-node approve``), and serves a task only if the FAB it was
sent has that hash (:mod:`enterprise_node.app_guard`): a broker running other code, or a
stranger submitting an app through Flower's open Control API, is refused.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from common.errors import ConfigError

__all__ = [
    "APP_HASH_KEY",
    "APP_PACKAGES",
    "STAGED_APPS_DIR",
    "app_directory",
    "installed_app_hash",
    "release",
    "staged_app_directory",
]

#: The node-config key under which the app guard tells the ClientApp which app was sent.
APP_HASH_KEY = "fedrisk-app-hash"
#: Where, under a FLWR_HOME, ``flwr run`` gets its staged copies of the app.
STAGED_APPS_DIR = "fedrisk-apps"


def app_directory() -> Path:
    """The Flower app directory: the checkout holding pyproject.toml with [tool.flwr.app]."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        raise ConfigError(
            f"{root}: no pyproject.toml here; install fedrisk from a source checkout "
            "(pip install -e .) so Flower can build the app"
        )
    return root


#: The directories ``[tool.flwr.app] fab-include`` draws from (pyproject.toml).
APP_PACKAGES = (
    "common",
    "ledger",
    "privacy",
    "secagg",
    "coordinator",
    "enterprise_node",
    "models",
    "protocols",
)


def _candidate_files(root: Path) -> dict[str, Path]:
    """The top-level files and every file under the app's packages, by POSIX path.

    Flower's own ``collect_files`` walks the whole checkout (a virtualenv too, which takes
    tens of seconds); its include and exclude rules then keep only files from these places,
    so building from them gives the same bytes.
    """
    files = {p.name: p for p in root.iterdir() if p.is_file() and not p.is_symlink()}
    for package in APP_PACKAGES:
        for path in (root / package).rglob("*"):
            if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
                files[path.relative_to(root).as_posix()] = path
    return files


def installed_app_hash() -> str:
    """SHA-256 of the FAB ``flwr run`` would build from this installation."""
    from flwr.cli.build import build_fab_from_files

    fab, _metadata = build_fab_from_files(_candidate_files(app_directory()))
    return hashlib.sha256(fab).hexdigest()


def release() -> str:
    """This installation's release and app hash, as ``--version`` prints them: broker and
    nodes must run the same code, and a node approves a plan with this app hash."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("fedrisk")
    except PackageNotFoundError:
        number = "unknown (not installed)"
    try:
        app = installed_app_hash()
    except ConfigError as err:
        app = f"unknown ({err})"
    return f"fedrisk {number}, app {app}"


def staged_app_directory(flwr_home: Path) -> Path:
    """A directory holding only the app's files (the same FAB, the same hash), for ``flwr
    run``: Flower walks every file under the directory it is given before it filters, and
    a checkout also holds a virtualenv and Flower's installed apps (tens of seconds a run).

    Kept under ``flwr_home/fedrisk-apps/<digest of the files>`` (the FLWR_HOME of the run,
    which the caller owns), never in the installation, which may be read-only; made once
    per version of the code and renamed into place whole, so concurrent runs never see a
    half copy.
    """
    files = _candidate_files(app_directory())
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    target = Path(flwr_home) / STAGED_APPS_DIR / digest.hexdigest()[:16]
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    for name, source in files.items():
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, scratch / name)
    try:
        scratch.rename(target)
    except OSError:  # another process staged the same code first
        shutil.rmtree(scratch, ignore_errors=True)
    return target
