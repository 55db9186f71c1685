"""Forking and Unix-socket servers, the replaced-socket (TLS) pattern, a socket-less server."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
from typing import Any


class PidHandler(socketserver.StreamRequestHandler):
    rbufsize = 0
    wbufsize = 1024

    def handle(self) -> None:
        self.wfile.write(f"{os.getpid()}\n".encode())
        self.wfile.flush()


class PreforkLimited(socketserver.ForkingMixIn, socketserver.TCPServer):
    max_children = 8
    block_on_close = False
    timeout = 5.0

    def handle_timeout(self) -> None:
        super().handle_timeout()
        children = self.active_children
        if children is not None:
            print(f"{len(children)} children")

    def reap(self) -> None:
        self.collect_children(blocking=True)


class LocalServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    block_on_close = True


class WrappedListener(socketserver.TCPServer):
    """Replaces self.socket after listen(), as TLS servers do with ssl.wrap_socket."""

    def server_activate(self) -> None:
        super().server_activate()
        self.socket = socket.socket(fileno=self.socket.detach())

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        connection.settimeout(10)
        return connection, address

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        self.close_request(request)


class QueueServer(socketserver.BaseServer):
    """No socket: requests come from a list; a socket pair provides the fd."""

    def __init__(self, jobs: list[str]) -> None:
        super().__init__(("queue", 0), JobHandler)
        self.jobs = jobs
        self.reader, self.writer = socket.socketpair()

    def fileno(self) -> int:
        return self.reader.fileno()

    def get_request(self) -> tuple[str, tuple[str, int]]:
        self.reader.recv(1)
        return self.jobs.pop(0), ("queue", 1)

    def server_close(self) -> None:
        self.reader.close()
        self.writer.close()


class JobHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        job: str = self.request
        print("job", job, "from", self.client_address)


def run_forking(path: str) -> None:
    with PreforkLimited(("127.0.0.1", 0), PidHandler, bind_and_activate=False) as server:
        server.server_bind()
        server.server_activate()
        server.handle_request()
        server.reap()
    with LocalServer(path, PidHandler) as local:
        local.serve_forever(0.5)


if hasattr(socketserver, "ForkingUnixStreamServer"):
    forking_unix: Any = socketserver.ForkingUnixStreamServer
