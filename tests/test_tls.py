"""Local HTTPS: a given certificate (a test CA made by trustme), a self-signed one with its
fingerprint, both HTTP servers, and clear errors for files that cannot be used."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import signal
import ssl
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from local_lambdas import _compat
from local_lambdas.errors import StartupError
from local_lambdas.tls import fingerprint, server_context
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WriteManifest,
    cli,
    command,
    eventually,
    process_xml,
    run_command,
    run_main,
    running,
    small_window,
)

LANES = pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "aiohttp"])


def web_child() -> str:
    return (
        f"<process><id>web</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'web_child.py'}</arg><route>/web/*</route>"
        "<communication_mode>passthrough</communication_mode><strip_prefix>/web</strip_prefix>"
        "</process>"
    )


@LANES
async def test_a_child_serving_https_is_said_to(
    write_manifest: WriteManifest,
    socket_dir: Path,
    tmp_path: Path,
    fast_lane: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pass-through child that serves HTTPS on its port (a dev server set up for it)
    closes each plain-HTTP connection unanswered: a 502 that does not say why, so the log
    says it, once, with the fix."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    child = web_child().replace(
        "</process>", f'<env name="WEB_CHILD_TLS">{tmp_path}/cert.pem:{tmp_path}/key.pem</env>'
        "</process>")  # fmt: skip
    path = write_manifest(child)
    says = "web: it serves HTTPS (TLS) at 127.0.0.1:"
    async with running(path, socket_dir, fast_lane=fast_lane) as run:
        for _ in range(2):
            async with run.http.get(run.url + "/web/echo") as reply:
                assert reply.status == 502
                assert "closed the connection without answering" in await reply.text()
        assert await eventually(lambda: says in caplog.text)
    told = [r.getMessage() for r in caplog.records if says in r.getMessage()]
    assert len(told) == 1 and told[0].endswith("--tls-cert and --tls-key, or --tls self-signed)")


@LANES
async def test_https_with_a_given_certificate(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, fast_lane: bool
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    path = write_manifest(process_xml("api", "/api/*"), web_child())
    async with running(path, socket_dir, fast_lane=fast_lane, tls_cert=tmp_path / "cert.pem",
                       tls_key=tmp_path / "key.pem") as run:  # fmt: skip
        assert run.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client)) as http:
            async with http.get(run.url + "/api/x") as reply:
                assert reply.status == 200
            async with http.get(run.url + "/web/echo") as reply:
                seen = await reply.json()
        assert ["X-Forwarded-Proto", "https"] in seen["headers"]
        # wss:// too: the tunnel (or aiohttp's side) joins a TLS connection to the child's.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client)) as http:
            async with http.ws_connect(run.url.replace("https", "wss") + "/web/ws") as socket:
                await socket.send_bytes(b"x" * 300_000)
                assert (await socket.receive(10)).data == b"x" * 300_000
                await socket.send_str("bye")  # the child closes: 4001 "bye"
                closing = await socket.receive(10)
                assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4001)
        # Plain HTTP on the TLS port is not served: a 400 says why, as nginx's does.
        async with aiohttp.ClientSession() as http:
            async with http.get(run.url.replace("https", "http") + "/api/x") as reply:
                assert reply.status == 400
                assert "sent to an HTTPS port" in (await reply.json())["error"]
        # A client that sends nothing, or leaves before a byte, takes nothing down.
        _, port = run.url.rsplit(":", 1)
        _, writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.close()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client)) as http:
            async with http.get(run.url + "/api/x") as reply:
                assert reply.status == 200
        if fast_lane:  # and leaves nothing behind to hold up the stop
            assert await eventually(lambda: not run.lane.connections)


async def test_a_self_signed_certificate_and_its_fingerprint(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The certificate serves, its fingerprint is the one said, and its files (the private
    key among them) are gone once read: a proxy killed with SIGKILL leaves none behind."""
    path = write_manifest(process_xml("api", "/api/*"))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where the proxy writes them
    async with running(path, socket_dir, tls_self_signed=True) as run:
        assert not list(temporary.iterdir())
        assert run.started.fingerprint is not None
        unverified = ssl.create_default_context()
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        connector = aiohttp.TCPConnector(ssl=unverified)
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(run.url + "/api/x") as reply:
                assert reply.status == 200
        host, port = run.url.removeprefix("https://").rsplit(":", 1)
        pem = await asyncio.to_thread(ssl.get_server_certificate, (host, int(port)))
        assert fingerprint(ssl.PEM_cert_to_DER_cert(pem)) == run.started.fingerprint
        # `local-lambdas restart` asks its own proxy on this machine: the throwaway
        # certificate, which nobody trusts, is no reason to say there is no proxy.
        done = await command("restart", "api", "--url", run.url)
        assert done.returncode == 0 and "api: restarted, READY" in done.stderr, done


@LANES
async def test_a_client_that_stops_reading_a_download_over_https_is_cut_off(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """--send-timeout through the TLS transport too, for a relayed answer (written as the
    client takes it)."""
    path = write_manifest(web_child())
    async with running(path, socket_dir, fast_lane=fast_lane, tls_self_signed=True,
                       send_timeout=0.5) as run:  # fmt: skip
        size = 256 << 20
        await _cut_off_short(run.url, b"/web/download/%d" % size, size, caplog)


@LANES
async def test_a_large_envelope_answer_over_https_goes_as_the_client_takes_it(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool,
    caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder,
) -> None:  # fmt: skip
    """A 16 MiB envelope answer, which the TLS transport would take whole into a buffer the
    proxy does not see (so --send-timeout could not tell a client that stopped reading):
    a client reading it in bursts, each wait shorter than the timeout, gets all of it; one
    that reads nothing is cut off, and its connection ends short of it."""
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir, fast_lane=fast_lane, tls_self_signed=True,
                       send_timeout=2.0) as run:  # fmt: skip
        reader, writer = await small_window(run.url, b"/api/big")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Content-Length: 16777216\r\n" in head, head
        # 4 MiB, then 0.6 s of taking nothing (a slow client, not a wait): 2.4 s in all,
        # past the timeout, none of the waits as long (and 1.4 s short of it: this test's
        # process, the proxy's too, stalls for a second at times under -n 16).
        for _ in range(4):
            await asyncio.wait_for(reader.readexactly(4 << 20), 10)
            await asyncio.sleep(0.6)
        writer.close()
        assert "took nothing of its answer" not in caplog.text
        await _cut_off_short(run.url, b"/api/big", 16 << 20, caplog)
    # aiohttp warns of a large body written at once: the paced one is not. (That warning
    # alone: what the garbage collector finds unclosed now may be any earlier test's.)
    said = [str(w.message) for w in recwarn if w.category is ResourceWarning]
    assert [m for m in said if "large body" in m] == [], said


async def _cut_off_short(
    url: str, target: bytes, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that reads nothing of `target`'s `size` bytes: the proxy gives up on it (its
    warning says so), and its connection ends short of them."""
    reader, writer = await small_window(url, target)
    assert await eventually(lambda: "took nothing of its answer" in caplog.text, 10)
    received = 0
    with contextlib.suppress(ConnectionResetError, ssl.SSLError):
        async with _compat.timeout(10):
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
    writer.close()
    assert 0 < received < size


def test_files_that_cannot_be_used_are_one_clear_line(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.issue_cert("localhost").cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.issue_cert("localhost").private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    with pytest.raises(StartupError, match=r"cannot be used together \(key values mismatch\)"):
        server_context(tmp_path / "cert.pem", tmp_path / "other-key.pem")
    issued = ca.issue_cert("localhost")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    der = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    (tmp_path / "c.der").write_bytes(der.public_bytes(serialization.Encoding.DER))
    private = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    (tmp_path / "c.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"c", private, der, None, serialization.NoEncryption()
    ))  # fmt: skip
    for given_cert, given_key, said in (
        ("notes.txt", "k.pem", "--tls-cert {}/notes.txt holds no PEM certificate"),
        ("c.pem", "c.pem", "--tls-key {}/c.pem holds no PEM private key"),
        ("k.pem", "c.pem", "--tls-cert {0}/k.pem holds a private key and --tls-key {0}/c.pem "
                           "a certificate: swap them"),
        ("c.der", "k.pem", "--tls-cert {0}/c.der is binary (DER), not PEM: convert it with "
                           "openssl x509 -inform DER -in {0}/c.der -out cert.pem"),
        ("c.p12", "c.p12", "--tls-cert {0}/c.p12 is a PKCS#12 bundle, not PEM: openssl pkcs12 "
                           "-in {0}/c.p12 -nodes -out both.pem"),
    ):  # fmt: skip
        with pytest.raises(StartupError, match=re.escape(said.format(tmp_path))):
            server_context(tmp_path / given_cert, tmp_path / given_key)
    server_context(tmp_path / "c.pem", tmp_path / "k.pem")  # (the same two, each its kind)
    # An encrypted key: said, not asked for on the terminal (twice) nor "Invalid argument".
    key = serialization.load_pem_private_key(ca.issue_cert("localhost").private_key_pem.bytes(),
                                             password=None)  # fmt: skip
    (tmp_path / "locked.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ))  # fmt: skip
    said = f"--tls-key {tmp_path / 'locked.pem'} is encrypted with a passphrase, which the proxy"
    with pytest.raises(StartupError, match=re.escape(said)):
        server_context(tmp_path / "cert.pem", tmp_path / "locked.pem")
    with pytest.raises(StartupError, match=r"missing\.pem: no such file; give a PEM file"):
        server_context(tmp_path / "missing.pem", tmp_path / "other-key.pem")
    says = re.escape(f"{tmp_path}: is a directory; give a PEM file")
    with pytest.raises(StartupError, match=says):
        server_context(tmp_path / "cert.pem", tmp_path)
    done = run_command("--tls-cert", "cert.pem", cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and "--tls-cert and --tls-key together" in done.stderr
    both = run_main("--tls", "self-signed", "--tls-cert", "cert.pem", "--tls-key", "key.pem",
                    cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2, both
    assert "--tls self-signed makes its own certificate: give it alone" in both.stderr, both


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_plain_http_on_the_https_port_is_told_on_either_event_loop(
    write_manifest: WriteManifest, loop: str
) -> None:
    """Both loops' TLS servers read a connection's first bytes themselves; the proxy looks
    at them first (tls.Front), so curl's http:// gets the 400 and https:// the child."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is the [fast] extra's")
    path = write_manifest(process_xml("api", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0", "--tls", "self-signed",
                   "--event-loop", loop) as run:  # fmt: skip
        url = (await run.expect(rf"listening on (https://\S+) \(event loop: {loop}\)")).group(1)
        await run.expect(r"api: ready")
        for scheme, status in (("http", 400), ("https", 200)):
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                url.replace("https", scheme) + "/api/x", stdout=subprocess.PIPE,
            )  # fmt: skip
            assert (await curl.communicate())[0] == str(status).encode(), scheme
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert any("400 from 127.0.0.1: the plain HTTP request" in line for line in run.lines)


@pytest.mark.parametrize(
    ("days", "said"),
    [(-30, "expired on 20"), (30, "is not valid before 20"), (0, None)],
)
def test_a_certificate_out_of_its_dates_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, days: int, said: str | None
) -> None:
    """OpenSSL loads a certificate whatever its dates; clients then refuse it with no word
    from the proxy. The start says so (and still serves: a client may not check)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(start - datetime.timedelta(days=1))
        .not_valid_after(start + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    server_context(tmp_path / "c.pem", tmp_path / "k.pem")
    warned = [r.getMessage() for r in caplog.records if r.name == "local_lambdas.tls"]
    if said is None:
        assert warned == []
    else:
        assert len(warned) == 1 and f"c.pem {said}" in warned[0], warned
        assert "clients will refuse it; make a new one (mkcert, or --tls self-signed)" in warned[0]
