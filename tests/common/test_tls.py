"""TLS material: the broker's CA and server certificate, node authentication keys, and the
ledger service over TLS (a client must trust the broker's CA; plaintext is refused)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common.tls import auth_key_fingerprint, init_tls, make_auth_key
from coordinator.cli import main as coordinator_main
from ledger.client import LedgerClient
from ledger.records import RunEnded
from ledger.service import serve_ledger
from ledger.signing import generate_private_key
from ledger.writer import Ledger


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ca_and_a_server_certificate_for_the_hosts(tmp_path: Path) -> None:
    # Execute
    files, made = init_tls(tmp_path / "tls", ["broker.example", "10.0.0.7"])
    # Assert: the server certificate is issued by the CA, for localhost and the hosts
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "broker.example"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    }
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert made == ["ca", "server"]
    assert mode(files.ca_key) == mode(files.server_key) == 0o600


def test_init_twice_keeps_the_ca_that_nodes_trust(tmp_path: Path) -> None:
    files, _ = init_tls(tmp_path / "tls", [])
    before = files.ca_cert.read_bytes()
    _files, made = init_tls(tmp_path / "tls", [])
    assert made == [] and files.ca_cert.read_bytes() == before


def test_node_auth_key_is_p384_openssh_and_never_replaced(tmp_path: Path) -> None:
    key = tmp_path / "secrets" / "flwr_auth_key"
    assert make_auth_key(key) is True
    public = (tmp_path / "secrets" / "flwr_auth_key.pub").read_bytes()
    assert public.startswith(b"ecdsa-sha2-nistp384 ")
    assert mode(key) == 0o600
    loaded = serialization.load_ssh_private_key(key.read_bytes(), password=None)
    assert loaded.curve.name == "secp384r1"  # type: ignore[union-attr]
    before = key.read_bytes()
    assert make_auth_key(key) is False and key.read_bytes() == before


def test_coordinator_init_command_makes_tls_files_and_the_ledger_key(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        coordinator_main(["init", str(tmp_path / "coord"), "--host", "broker.example"])
    assert caught.value.code in (0, None)
    assert (tmp_path / "coord" / "tls" / "server.crt").exists()
    assert mode(tmp_path / "coord" / "keys" / "ledger_key.pem") == 0o600
    assert "ca, server, ledger key" in capsys.readouterr().out


@pytest.fixture
def tls_ledger(tmp_path: Path):
    files, _ = init_tls(tmp_path / "tls", [])
    key = generate_private_key()
    Ledger.open(tmp_path / "ledger", key, "coordinator").append(RunEnded("r", "completed", None))
    credentials = grpc.ssl_server_credentials(
        [(files.server_key.read_bytes(), files.server_cert.read_bytes())]
    )
    server = serve_ledger(tmp_path / "ledger", credentials=credentials)
    yield server, key, files
    server.stop()


def test_ledger_service_over_tls_serves_a_client_that_trusts_the_ca(tls_ledger) -> None:
    server, key, files = tls_ledger
    credentials = grpc.ssl_channel_credentials(root_certificates=files.ca_cert.read_bytes())
    address = server.address.replace("127.0.0.1", "localhost")
    with LedgerClient(address, key.public_key(), credentials=credentials) as client:
        assert client.tree_head().tree_size == 1


def test_a_client_that_does_not_trust_the_ca_cannot_connect(tls_ledger, tmp_path) -> None:
    server, key, _files = tls_ledger
    other, _ = init_tls(tmp_path / "other-tls", [])
    credentials = grpc.ssl_channel_credentials(root_certificates=other.ca_cert.read_bytes())
    with (
        LedgerClient(server.address, key.public_key(), credentials=credentials, timeout_s=3) as c,
        pytest.raises(grpc.RpcError) as err,
    ):
        c.tree_head()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_is_refused_by_the_tls_server(tls_ledger) -> None:
    server, key, _files = tls_ledger
    with (
        LedgerClient(server.address, key.public_key(), timeout_s=3) as client,
        pytest.raises(grpc.RpcError) as err,
    ):
        client.tree_head()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


# ---- the node register -------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as caught:
        coordinator_main(argv)
    return int(caught.value.code or 0)


def test_register_list_and_revoke_nodes(tmp_path: Path, capsys) -> None:
    # Prepare: two nodes' authentication keys
    from coordinator.node_registry import NodeRegistry

    make_auth_key(tmp_path / "a" / "flwr_auth_key")
    make_auth_key(tmp_path / "b" / "flwr_auth_key")
    state, key_a = str(tmp_path / "coord"), str(tmp_path / "a" / "flwr_auth_key.pub")
    key_b = str(tmp_path / "b" / "flwr_auth_key.pub")
    # Execute / Assert: register two, the same key again is refused naming the node
    assert _cli(["register-node", state, key_a, "--name", "fab-a"]) == 0
    assert _cli(["register-node", state, key_b, "--name", "fab-b"]) == 0
    capsys.readouterr()
    assert _cli(["register-node", state, key_a, "--name", "again"]) == 10
    assert "'fab-a'" in capsys.readouterr().err
    # ... revoke one: it stays listed, marked revoked
    assert _cli(["revoke-node", state, "fab-b"]) == 0
    registry = NodeRegistry(tmp_path / "coord")
    assert [n.name for n in registry.active()] == ["fab-a"]
    assert [n.name for n in registry.nodes()] == ["fab-a", "fab-b"]
    capsys.readouterr()
    assert _cli(["list-nodes", state]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "fab-a" in out and "active" in out and "revoked" in out
    # ... each with its whole fingerprint, as the node's init printed it
    whole = auth_key_fingerprint(Path(key_a).read_text())
    assert whole in out and len(whole) == len("SHA256:") + 43  # not cut


def test_register_refuses_a_key_that_is_not_ecdsa_p384(tmp_path: Path, capsys) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "ed.pub"
    path.write_bytes(
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    assert _cli(["register-node", str(tmp_path / "c"), str(path), "--name", "x"]) == 10
    assert "ECDSA P-384" in capsys.readouterr().err


def test_fingerprint_matches_ssh_keygen() -> None:
    # Known answer: `ssh-keygen -lf` (OpenSSH, Debian 13) printed this fingerprint for this key
    from coordinator.node_registry import fingerprint

    line = (
        "ecdsa-sha2-nistp384 "
        "AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBB3hz+lokdUN23VMUk2B"
        "Y7JnUFlbMdStbD27bZHU9YCmVuA1SzH2Y+9/zc7goZFUHRRI2A6sGxKcd6ZXUhtB59FwuWbkvnA4e"
        "+xB1mE3DDH03JCiiekgb0CjJJ3OEAjv4A=="
    )
    assert fingerprint(line) == "SHA256:ssNEr0A5+4TPq1iG7v6x9etbZ7MV4Xyymfme9EWp8As"
