"""The server survives resource exhaustion and abusive clients, and leaks nothing."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import socket
import struct
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from typedserve import InetSockAddr, PeerAddress, StreamHandler, UnixSockAddr
from typedserve.testing import LeakCheck, connect, serve_in_thread

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeServer, TransportCase

WAIT = 5.0


class EchoLine(StreamHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class EventOnMessage(logging.Handler):
    """Sets ``seen`` when a record containing ``text`` is logged (from any thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def loopback(address: PeerAddress) -> InetSockAddr | UnixSockAddr:
    """Where a client reaches a server bound to ``address`` (``::`` is reached at ``::1``)."""
    assert address is not None  # a bound listener always has an address
    if isinstance(address, tuple) and address[0] == "::":
        return ("::1", *address[1:])
    return address


@contextlib.contextmanager
def out_of_fds() -> Iterator[None]:
    """Make every new fd fail with EMFILE for the length of the block, then restore."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    hog: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
        while True:  # fill the holes below the limit; bounded by the limit itself
            try:
                hog.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in hog:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(20)
def test_accept_survives_emfile_and_serves_again_once_fds_are_free(
    stream_case: TransportCase, in_process_strategy_name: str, make_server: MakeServer
) -> None:
    server = make_server(stream_case, EchoLine, strategy=in_process_strategy_name)
    warning = EventOnMessage("Too many open files; pausing accepts")
    logger = logging.getLogger("typedserve.server")
    logger.addHandler(warning)
    try:
        with serve_in_thread(server):
            client = socket.socket(stream_case.family, socket.SOCK_STREAM)
            client.settimeout(WAIT)
            with out_of_fds():
                # connect() needs no new fd in this process once the client socket exists,
                # and the kernel completes the handshake; the server's accept() gets EMFILE.
                client.connect(loopback(server.address))
                assert warning.seen.wait(WAIT)
            with client:
                client.sendall(b"after\n")
                assert client.recv(100) == b"after\n"  # the same, queued connection
            with connect(server) as again:
                again.sendall(b"again\n")
                assert again.recv(100) == b"again\n"
    finally:
        logger.removeHandler(warning)


def abort(client: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0) instead of an orderly FIN."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case_name", ["tcp4", "unix-stream"])
def test_nothing_leaks_after_a_thousand_connections_some_aborted(
    cases: dict[str, TransportCase],
    strategy_name: str,
    strategy_in_process: bool,
    make_server: MakeServer,
    short_tmp_dir: Path,
    case_name: str,
) -> None:
    # A fork per request costs milliseconds (tens under load): fewer connections keep those
    # runs short while still reusing fd numbers and reaping children many times over.
    total = 1000 if strategy_in_process else 100
    served = 0
    with LeakCheck(socket_dirs=[short_tmp_dir]):
        server = make_server(cases[case_name], EchoLine, strategy=strategy_name)
        with serve_in_thread(server):
            for i in range(total):
                client = connect(server)
                if i % 10 == 0:  # a client that dies mid-request
                    client.sendall(b"half a requ")
                    if client.family == socket.AF_UNIX:
                        client.close()  # no RST on Unix sockets: EOF mid-line instead
                    else:
                        abort(client)
                    continue
                with client:
                    client.sendall(b"%d\n" % i)
                    assert client.recv(100) == b"%d\n" % i
                    served += 1
        # serve_in_thread closed the server: every connection, thread and file is gone.
    assert served == total - total // 10
    assert server.stats().in_flight == 0
