"""Support of the TLS serving tests: certificates from ``trustme``, contexts, clients, handlers.

The PKI: ``ca`` issues the server's certificate (127.0.0.1, ::1, localhost), a second one for
``b.example`` (SNI) and a client certificate (``alice``); ``other_ca`` issues a client
certificate the server must not accept. Files are written once per test session into a tmp
dir, for the external peers (``openssl s_client``, ``curl``).
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from typedserve import Server, StreamHandler
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.testing import connect
from typedserve.tls.info import TLSInfo

WAIT = 10.0


@dataclass(frozen=True)
class PKI:
    """The certificates of the TLS tests, in memory and as files."""

    ca: trustme.CA
    other_ca: trustme.CA
    server: trustme.LeafCert
    b_example: trustme.LeafCert
    client: trustme.LeafCert
    stranger: trustme.LeafCert  # a client certificate from other_ca
    ca_file: Path
    server_cert_file: Path
    server_key_file: Path

    @classmethod
    def create(cls, directory: Path) -> PKI:
        ca, other_ca = trustme.CA(), trustme.CA()
        server = ca.issue_cert("127.0.0.1", "::1", "localhost")
        ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        cert_file, key_file = directory / "server.pem", directory / "server.key"
        server.cert_chain_pems[0].write_to_path(str(cert_file))
        server.private_key_pem.write_to_path(str(key_file))
        return cls(
            ca=ca,
            other_ca=other_ca,
            server=server,
            b_example=ca.issue_cert("b.example"),
            client=ca.issue_cert("alice@example.org", common_name="alice"),
            stranger=other_ca.issue_cert("mallory@example.org", common_name="mallory"),
            ca_file=ca_file,
            server_cert_file=cert_file,
            server_key_file=key_file,
        )

    def server_context(
        self, *, client_auth: ssl.VerifyMode = ssl.CERT_NONE, alpn: list[str] | None = None
    ) -> ssl.SSLContext:
        """A server context with the main certificate, and one for ``b.example`` chosen by SNI."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        b_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.b_example.configure_cert(b_context)
        for each in (context, b_context):
            if client_auth != ssl.CERT_NONE:
                self.ca.configure_trust(each)
                each.verify_mode = client_auth
            if alpn:
                each.set_alpn_protocols(alpn)

        def choose(conn: Any, name: str | None, ctx: ssl.SSLContext) -> None:
            if name == "b.example":
                conn.context = b_context

        context.sni_callback = choose
        return context

    def client_context(
        self, *, cert: trustme.LeafCert | None = None, alpn: list[str] | None = None
    ) -> ssl.SSLContext:
        """A client context trusting ``ca``, presenting ``cert`` if given."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


def tls_connect(
    server: Server[Any, Any], context: ssl.SSLContext, server_name: str = "localhost"
) -> ssl.SSLSocket:
    """A TLS client connected to ``server``, handshake done (raises if it fails)."""
    raw = connect(server, timeout=WAIT)
    try:
        return context.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def read_all(conn: socket.socket) -> bytes:
    """Read to the end of the stream (bounded by the socket's timeout)."""
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def describe(info: TLSInfo | None) -> bytes:
    """The JSON line the ``Describe`` handlers reply with."""
    if info is None:
        return b'{"tls": null}\n'
    peer = info.peer_certificate
    fields = {
        "version": info.version,
        "alpn": info.alpn,
        "server_name": info.server_name,
        "peer": None if peer is None else peer.common_name,
        "cipher": info.cipher,
    }
    return json.dumps(fields).encode() + b"\n"


class Describe(StreamHandler[Any]):
    """Reads one line, replies with what TLS negotiated (JSON)."""

    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(describe(self.request.tls))


class DescribeAsync(AsyncHandler[AsyncStream, Any]):
    """:class:`Describe`, as an async handler."""

    async def handle(self) -> None:
        await self.request.readline()
        self.request.write(describe(self.request.tls))
        await self.request.drain()


class Hello(StreamHandler[Any]):
    """A minimal HTTP/1.0 responder (for curl): reads the head, replies ``hello over TLS``."""

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        body = b"hello over " + (self.request.tls.version if self.request.tls else "tcp").encode()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


class HelloAsync(AsyncHandler[AsyncStream, Any]):
    """:class:`Hello`, as an async handler."""

    async def handle(self) -> None:
        while (await self.request.readline()) not in (b"\r\n", b"\n", b""):
            pass
        tls = self.request.tls
        body = b"hello over " + (tls.version if tls else "tcp").encode()
        self.request.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await self.request.drain()
