"""Local HTTPS (--tls-cert/--tls-key, --tls self-signed): the TLS context both HTTP servers
listen with. Children still speak plain HTTP or pipes; pass-through ones are told
`X-Forwarded-Proto: https`.

A self-signed certificate is made at start-up for localhost, 127.0.0.1 and ::1, kept for
the run only, and its SHA-256 fingerprint logged, for CI and scripts (browsers will warn).

A client that speaks plain HTTP to the HTTPS port gets a 400 saying so, as from nginx
(`Front`), not a closed connection.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import hashlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path

from local_lambdas._compat import limits
from local_lambdas.errors import StartupError

log = logging.getLogger("local_lambdas.tls")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for `cert` and `key` (PEM), HTTP/1.1 by ALPN; StartupError saying
    which file is wrong and how."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    for path, what in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            found = "is a directory" if path.is_dir() else "no such file"
            raise StartupError(f"{what} {path}: {found}; give a PEM file")
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        raise StartupError(
            f"--tls-key {key} is encrypted with a passphrase, which the proxy does not ask "
            f"for: give the key unencrypted (openssl pkey -in {key} -out key.pem)"
        ) from None
    except ssl.SSLError as exc:
        if problem := _files_problem(cert, key):
            raise StartupError(problem) from exc
        # OpenSSL names a mismatch (KEY_VALUES_MISMATCH); a file that is no PEM, nothing.
        why = (exc.reason or "not PEM").replace("_", " ").lower()
        raise StartupError(
            f"--tls-cert {cert} and --tls-key {key} cannot be used together ({why}): "
            "give a PEM certificate and the private key it was made for"
        ) from exc
    except OSError as exc:
        raise StartupError(f"--tls-cert/--tls-key: {exc.strerror or exc}") from exc
    if out_of_date := _out_of_date(cert):
        log.warning(
            "--tls-cert %s %s: clients will refuse it; make a new one (mkcert, or --tls "
            "self-signed)",
            cert,
            out_of_date,
        )
    return context


def _out_of_date(cert: Path) -> str | None:
    """'expired on DATE' or 'is not valid before DATE' for the first certificate of `cert`
    (which OpenSSL has loaded: it does not look at dates), else None."""
    from cryptography import x509

    try:
        first = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    if now > first.not_valid_after_utc:
        return f"expired on {first.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if now < first.not_valid_before_utc:
        return f"is not valid before {first.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    return None


_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_KEY = b"PRIVATE KEY-----"  # (PKCS#8's BEGIN PRIVATE KEY, or RSA's, EC's, ENCRYPTED...)


def _files_problem(cert: Path, key: Path) -> str | None:
    """Which of the two files holds what it should not, once OpenSSL refused them: one in
    DER (binary, as Windows and Java tools export them), the two the other way round, or
    one without the PEM block it needs (a PKCS#12 bundle, mkcert's -pkcs12 and Windows'
    export); None when each holds its kind."""
    try:
        held = {cert: cert.read_bytes(), key: key.read_bytes()}
    except OSError:
        return None
    if _KEY in held[cert] and _CERTIFICATE not in held[cert] and _CERTIFICATE in held[key]:
        return f"--tls-cert {cert} holds a private key and --tls-key {key} a certificate: swap them"
    for path, flag, block, kind, convert, out in (
        (cert, "--tls-cert", _CERTIFICATE, "certificate", "x509", "cert.pem"),
        (key, "--tls-key", _KEY, "private key", "pkey", "key.pem"),
    ):
        if block in held[path]:
            continue
        if path.suffix.lower() in (".p12", ".pfx"):
            return (
                f"{flag} {path} is a PKCS#12 bundle, not PEM: openssl pkcs12 -in {path} "
                "-nodes -out both.pem, then give both.pem as --tls-cert and --tls-key"
            )
        if held[path][:1] == b"\x30":  # an ASN.1 SEQUENCE: DER
            return (
                f"{flag} {path} is binary (DER), not PEM: convert it with "
                f"openssl {convert} -inform DER -in {path} -out {out}"
            )
        return f"{flag} {path} holds no PEM {kind} (a -----BEGIN {kind.upper()}----- block)"
    return None


class _Encrypted(Exception):
    """The key asks for a passphrase (_no_passphrase)."""


def _no_passphrase() -> str:
    """OpenSSL's ask for an encrypted key's passphrase: without it, it prompts on the
    terminal (once per context), and without one fails with "Invalid argument"."""
    raise _Encrypted


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


_HANDSHAKE = 0x16  # the first byte of a TLS record that opens a handshake (a ClientHello)
_FIRST_BYTE_WITHIN = 60.0  # seconds a client may take to send anything (nginx's header timeout)


class Front(asyncio.AbstractServer):
    """The HTTPS listener: a connection's first byte is looked at (MSG_PEEK) before the TLS
    handshake, so that plain HTTP sent to the HTTPS port gets a 400 that says so, as nginx
    answers it, instead of a closed connection ("Empty reply from server"). asyncio's and
    uvloop's TLS servers read the first bytes themselves, so the sockets are accepted here
    and handed to the loop's TLS with connect_accepted_socket. What aiohttp's site needs of
    a server: `sockets` and `close`."""

    def __init__(
        self, sockets: list[socket.socket], factory: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext, plain_refused: Callable[[str], bytes],
    ) -> None:  # fmt: skip
        self.sockets = sockets
        self._factory = factory
        self._context = context
        self._plain_refused = plain_refused
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        for sock in sockets:
            self._spawn(self._accept(sock))

    def close(self) -> None:
        """Stop listening; a connection already accepted goes on (its server stops it)."""
        for task in list(self._tasks):
            task.cancel()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return any(sock.fileno() != -1 for sock in self.sockets)

    async def start_serving(self) -> None:
        """It serves from the start."""

    async def serve_forever(self) -> None:
        await self.wait_closed()

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, listening: socket.socket) -> None:
        while True:
            try:
                connection, _ = await self._loop.sock_accept(listening)
            except OSError as exc:  # out of file descriptors, a connection reset at once...
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    if said := limits.unaccepted_clients():
                        log.warning("%s", said)
                    await asyncio.sleep(1.0)  # (as asyncio's own accept waits)
                    continue
                log.warning("HTTPS: cannot accept a connection: %s", exc.strerror or exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._begin(connection))

    async def _begin(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        try:
            first = await self._first_byte(connection)
            if first and first[0] == _HANDSHAKE:
                await self._loop.connect_accepted_socket(
                    self._factory, connection, ssl=self._context
                )
                return
            if first:
                peer = connection.getpeername()
                await self._loop.sock_sendall(
                    connection, self._plain_refused(str(peer[0]) if peer else "?")
                )
                # Read what was peeked: closing with it unread would send a reset, which
                # may reach the client before it has read the 400.
                connection.recv(65536)
                connection.shutdown(socket.SHUT_WR)
            connection.close()
        except (OSError, asyncio.TimeoutError):  # the client left, or sent nothing in time
            connection.close()
        except BaseException:
            connection.close()
            raise

    async def _first_byte(self, connection: socket.socket) -> bytes:
        """The connection's first byte, left unread; b"" when it closes first."""
        readable: asyncio.Future[None] = self._loop.create_future()
        fd = connection.fileno()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        self._loop.add_reader(fd, ready)
        try:
            await asyncio.wait_for(readable, _FIRST_BYTE_WITHIN)
        finally:
            self._loop.remove_reader(fd)
        return connection.recv(1, socket.MSG_PEEK)
