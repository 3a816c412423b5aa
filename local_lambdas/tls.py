"""Local HTTPS (--tls-cert/--tls-key, --tls self-signed): the TLS context both HTTP servers
listen with. Children still speak plain HTTP or pipes; pass-through ones are told
`X-Forwarded-Proto: https`.

A self-signed certificate is made at start-up for localhost, 127.0.0.1 and ::1, kept for
the run only, and its SHA-256 fingerprint logged, for CI and scripts (browsers will warn).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from pathlib import Path

from local_lambdas.errors import StartupError


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for `cert` and `key` (PEM), HTTP/1.1 by ALPN; StartupError saying
    which file is wrong and how."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    for path, what in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            raise StartupError(f"{what} {path}: no such file")
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise StartupError(
            f"--tls-cert {cert} and --tls-key {key} cannot be used together ({exc.reason}): "
            "give a PEM certificate and the private key it was made for"
        ) from exc
    except OSError as exc:
        raise StartupError(f"--tls-cert/--tls-key: {exc.strerror or exc}") from exc
    return context


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A certificate and key for localhost, 127.0.0.1 and ::1, written to `directory`
    (which the caller removes), and the certificate's SHA-256 fingerprint."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise StartupError("--tls self-signed needs the cryptography package") from exc
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]  # fmt: skip
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "localhost.pem", directory / "localhost-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    key_path.chmod(0o600)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return cert_path, key_path, fingerprint(der)


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint as browsers and openssl print it: AB:CD:..."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
