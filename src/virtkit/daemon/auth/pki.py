"""``virtkit pki``: a private CA and the certificates of the TLS listener and its clients.

  virtkit pki init   --dir D                      D/ca.pem, D/ca-key.pem
  virtkit pki server --dir D --host NAME [--ip A] D/server.pem, D/server-key.pem (+ ca.pem)
  virtkit pki client --dir D --name CN [--out O]  O/client.pem, O/client-key.pem (+ ca.pem)

Keys are ECDSA P-256, private keys are written 0600 (atomically). The daemon's
TLS listener (``--listen-tls`` / VIRTKIT_LISTEN_TLS) reads ca.pem, server.pem and
server-key.pem from VIRTKIT_TLS_DIR (default STATE/pki) and accepts only clients
whose certificate this CA signed (TLS 1.3 only). Clients read ca.pem, client.pem
and client-key.pem from VIRTKIT_PKI_DIR (default ~/.config/virtkit/pki).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from virtkit.errors import ConfigError, NotFoundError
from virtkit.fsutil import atomic_write_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

CA_DAYS = 3650
LEAF_DAYS = 825


def _key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "virtkit"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # fmt: skip


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def init_ca(directory: Path, cn: str = "virtkit CA", force: bool = False) -> Path:
    """Make a CA in ``directory`` (refuses to overwrite one unless ``force``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / "ca.pem").exists() and not force:
        raise ConfigError(f"{directory}/ca.pem already exists; use --force to replace the CA")
    key = _key()
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    atomic_write_bytes(directory / "ca-key.pem", _key_pem(key), 0o600)
    atomic_write_bytes(directory / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return directory / "ca.pem"


def _load_ca(directory: Path) -> tuple[x509.Certificate, EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
    except FileNotFoundError:
        raise NotFoundError(
            f"no CA in {directory}: run `virtkit pki init --dir {directory}` first"
        ) from None
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    if not isinstance(key, EllipticCurvePrivateKey):
        raise ConfigError(f"{directory}/ca-key.pem is not a virtkit CA key (ECDSA)")
    return cert, key


def issue(ca_dir: Path, out_dir: Path, kind: str, cn: str,
          hosts: list[str] | None = None) -> Path:  # fmt: skip
    """Sign a server or client certificate; writes OUT/<kind>.pem, <kind>-key.pem, ca.pem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if kind not in ("server", "client"):
        raise ConfigError(f"certificate kind {kind!r}: use server or client")
    ca_cert, ca_key = _load_ca(ca_dir)
    key = _key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if kind == "server":
        names: list[x509.GeneralName] = []
        for h in hosts or [cn]:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(out_dir / f"{kind}-key.pem", _key_pem(key), 0o600)
    atomic_write_bytes(out_dir / f"{kind}.pem", cert.public_bytes(serialization.Encoding.PEM))
    if out_dir.resolve() != ca_dir.resolve():
        atomic_write_bytes(out_dir / "ca.pem", (ca_dir / "ca.pem").read_bytes())
    return out_dir / f"{kind}.pem"
