"""TLS material for a deployment: the broker's CA, the SuperLink's server certificate, and
a node's Flower authentication key.

Everything is made with `cryptography`: ECDSA P-384 keys, a self-signed CA (basic
constraints CA, key usage cert-sign), and a server certificate it signs with the host
names and IP addresses nodes will dial as subject alternative names (STACK.md: a local run
needs ``localhost`` and ``IP:127.0.0.1``). Node authentication keys are ECDSA P-384 in
OpenSSH format, what ``flower-supernode --auth-supernode-private-key`` and
``flwr supernode register`` take. Private files are written atomically with mode 0600 and
never overwritten: replacing a CA or a node key would cut off every party that trusts it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.atomic import atomic_write_bytes
from common.errors import ConfigError

__all__ = [
    "LOCAL_HOSTS",
    "TlsFiles",
    "make_ca",
    "make_server_certificate",
    "init_tls",
    "make_auth_key",
    "auth_key_fingerprint",
]

#: Names every local deployment's server certificate carries.
LOCAL_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1")
_VALID_DAYS_CA = 3650
_VALID_DAYS_SERVER = 825


@dataclass(frozen=True)
class TlsFiles:
    """Where a coordinator's TLS files are (``ca.key`` and ``server.key`` are 0600)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedrisk"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(
    common_name: str = "fedrisk broker CA",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new CA key and its self-signed certificate."""
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=_VALID_DAYS_CA))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server key and certificate signed by the CA, valid for ``hosts`` (names or IPs)."""
    if not hosts:
        raise ConfigError("a server certificate needs at least one host name or IP address")
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=_VALID_DAYS_SERVER))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def init_tls(directory: Path, hosts: list[str]) -> tuple[TlsFiles, list[str]]:
    """Make the CA and the server certificate in ``directory`` unless they exist.

    Returns the files and what was created. An existing CA is kept (nodes trust it); an
    existing server certificate is kept too (delete it to re-issue for other hosts).
    """
    files = TlsFiles(Path(directory))
    made: list[str] = []
    if files.ca_cert.exists() != files.ca_key.exists():
        raise ConfigError(f"{files.directory}: ca.crt and ca.key must both exist or neither")
    if not files.ca_cert.exists():
        ca_key, ca_cert = make_ca()
        atomic_write_bytes(files.ca_key, _private_pem(ca_key), mode=0o600)
        atomic_write_bytes(files.ca_cert, _cert_pem(ca_cert))
        made.append("ca")
    if not files.server_cert.exists():
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{files.ca_key}: not an ECDSA key")
        names = list(dict.fromkeys([*LOCAL_HOSTS, *hosts]))
        key, cert = make_server_certificate(loaded, ca_cert, names)
        atomic_write_bytes(files.server_key, _private_pem(key), mode=0o600)
        atomic_write_bytes(files.server_cert, _cert_pem(cert))
        made.append("server")
    return files, made


def make_auth_key(private_path: Path) -> bool:
    """A node's Flower authentication key (ECDSA P-384, OpenSSH format, 0600) and its
    ``.pub`` beside it; False when the key exists already (it is never replaced)."""
    private_path = Path(private_path)
    if private_path.exists():
        return False
    key = _new_key()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    atomic_write_bytes(private_path, private, mode=0o600)
    atomic_write_bytes(private_path.with_name(private_path.name + ".pub"), public + b"\n")
    return True


def auth_key_fingerprint(openssh_public_key: str) -> str:
    """``SHA256:<base64>`` of an OpenSSH public key's blob, the form ``ssh-keygen -l``
    shows: what a node and its broker compare out of band before the key is registered."""
    blob = base64.b64decode(openssh_public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
