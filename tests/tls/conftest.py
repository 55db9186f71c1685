"""Fixtures of the TLS tests: a throwaway PKI written to files (trustme) and a real handshake.

``pki`` is one CA, server certificates for ``127.0.0.1``/``localhost`` (the default),
``a.example``, ``b.example`` and ``*.wild.example``, a client certificate, and the default key
encrypted with :data:`PASSWORD`. :func:`handshake` runs a server context against a client
context over a socket pair, the server side on a thread, every wait bounded.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

PASSWORD = b"correct horse"
WAIT = 10.0


@dataclass(frozen=True)
class Pair:
    """A certificate chain file and its key file."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    """The files of one test PKI."""

    ca: trustme.CA
    ca_file: Path
    default: Pair
    a: Pair
    b: Pair
    wild: Pair
    client: trustme.LeafCert
    encrypted_key: Path
    combined: Path  # the default key and chain in one file
    root: Path

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        """A client context trusting the CA (and presenting the client cert if asked)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if with_cert:
            self.client.configure_cert(context)
        return context


def _write(leaf: trustme.LeafCert, root: Path, name: str) -> Pair:
    pair = Pair(root / f"{name}.pem", root / f"{name}.key")
    leaf.cert_chain_pems[0].write_to_path(str(pair.cert))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(pair.cert), append=True)
    leaf.private_key_pem.write_to_path(str(pair.key))
    return pair


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """One CA and its certificates, written once per session."""
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    default_leaf = ca.issue_cert("127.0.0.1", "localhost")
    default = _write(default_leaf, root, "default")
    key = serialization.load_pem_private_key(default_leaf.private_key_pem.bytes(), None)
    encrypted_key = root / "encrypted.key"
    encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD),
        )
    )
    combined = root / "combined.pem"
    default_leaf.private_key_and_cert_chain_pem.write_to_path(str(combined))
    return PKI(
        ca=ca,
        ca_file=ca_file,
        default=default,
        a=_write(ca.issue_cert("a.example"), root, "a"),
        b=_write(ca.issue_cert("b.example"), root, "b"),
        wild=_write(ca.issue_cert("*.wild.example"), root, "wild"),
        client=ca.issue_cert("client@example.org", common_name="client"),
        encrypted_key=encrypted_key,
        combined=combined,
        root=root,
    )


@dataclass
class Handshake:
    """Both ends of a completed handshake."""

    client: ssl.SSLSocket
    server: ssl.SSLSocket

    def served_names(self) -> set[str]:
        """The DNS names of the certificate the client was shown."""
        der = self.client.getpeercert(binary_form=True)
        assert der is not None
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return set(names.get_values_for_type(x509.DNSName))


@contextlib.contextmanager
def handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_name: str | None
) -> Iterator[Handshake]:
    """Handshake over a socket pair (the server on a thread); closes both ends after use.

    A failure on either side raises that side's exception (the server's first).
    """
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(WAIT)
    client_sock.settimeout(WAIT)
    with ThreadPoolExecutor(1) as pool, server_sock, client_sock:
        accepted = pool.submit(server_context.wrap_socket, server_sock, server_side=True)
        try:
            client = client_context.wrap_socket(client_sock, server_hostname=server_name)
        except BaseException:
            client_sock.close()  # the server's handshake sees the end of the stream
            accepted.exception(timeout=WAIT)
            raise
        with client, accepted.result(timeout=WAIT) as server:
            yield Handshake(client, server)


def server_refusal(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_name: str | None
) -> BaseException:
    """The exception that ended the server's side of a handshake that should fail.

    The client may finish its side first (in TLS 1.3 the server checks the client's
    certificate after the client is done): it then reads, and sees the server's alert.
    """
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(WAIT)
    client_sock.settimeout(WAIT)
    with ThreadPoolExecutor(1) as pool, server_sock, client_sock:
        accepted = pool.submit(server_context.wrap_socket, server_sock, server_side=True)
        with contextlib.suppress(ssl.SSLError, OSError):
            client = client_context.wrap_socket(client_sock, server_hostname=server_name)
            with client:
                client.recv(1)
        client_sock.close()
        failure = accepted.exception(timeout=WAIT)
        if failure is None:
            accepted.result().close()
            raise AssertionError("the server completed the handshake")
        return failure
