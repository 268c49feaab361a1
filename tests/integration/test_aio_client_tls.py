"""edge.AsyncClient's transport over TLS: https to a node, a certificate that is not
trusted (a clear Unreachable), and https through an HTTP CONNECT proxy from the
environment. The node here is a stand-in TLS server answering JSON."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.aio_client import AsyncClient
from edge.errors import Unreachable
from tests.integration.aio_helpers import run
from tests.integration.aio_helpers import serve as _serve


def _self_signed(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _json_node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A stand-in node over TLS: answers every request with {"ok": true}."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"ok":true}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the client refused our certificate
    finally:
        writer.close()


def test_https_direct_and_through_a_connect_proxy(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    cert, key = _self_signed(tmp_path, ["localhost", "edge-site.example"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    tunnels: list[str] = []
    ports: list[int] = []

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        assert method == "CONNECT"
        tunnels.append(target)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", int(target.rsplit(":", 1)[1]))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def go() -> None:
        tls = await asyncio.start_server(_json_node, "127.0.0.1", 0, ssl=server_ctx)
        port = tls.sockets[0].getsockname()[1]
        ports.append(port)
        async with tls:
            # Not trusted yet: a clear Unreachable, not a traceback.
            monkeypatch.delenv("SSL_CERT_FILE", raising=False)
            with pytest.raises(Unreachable) as untrusted:
                await AsyncClient(f"https://localhost:{port}", timeout=5).health()
            assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.message
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            assert await AsyncClient(f"https://localhost:{port}", timeout=5).health() == {
                "ok": True}
            proxy, proxy_url = await _serve(connect_proxy)
            async with proxy:
                monkeypatch.setenv("https_proxy", proxy_url)
                monkeypatch.delenv("no_proxy", raising=False)
                monkeypatch.delenv("NO_PROXY", raising=False)
                remote = AsyncClient(f"https://edge-site.example:{port}", timeout=5)
                assert await remote.health() == {"ok": True}

    run(go())
    assert tunnels == [f"edge-site.example:{ports[0]}"]  # the node's name, not loopback
