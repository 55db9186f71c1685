"""A threading TCP line server with overridden hooks and a user mix-in."""

from __future__ import annotations

import socket
import socketserver
import sys
from typing import Any

Request = socket.socket | tuple[bytes, socket.socket]


class AuditMixIn(socketserver.BaseServer):
    """Counts requests before the threading mix-in starts a thread for them."""

    audited = 0

    def process_request(self, request: Request, client_address: Any) -> None:
        self.audited += 1
        super().process_request(request, client_address)


class LineServer(AuditMixIn, socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64
    allowed_prefix = "127."

    def __init__(self, address: tuple[str, int], bind_and_activate: bool = True) -> None:
        socketserver.TCPServer.__init__(self, address, UpperHandler, bind_and_activate)
        self.lines = 0

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        socketserver.TCPServer.server_bind(self)

    def verify_request(self, request: Request, client_address: Any) -> bool:
        return str(client_address[0]).startswith(self.allowed_prefix)

    def handle_error(self, request: Request, client_address: Any) -> None:
        print("error from", client_address, file=sys.stderr)
        super().handle_error(request, client_address)

    def service_actions(self) -> None:
        super().service_actions()


class UpperHandler(socketserver.StreamRequestHandler):
    timeout = 30
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.count = 0

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())
            self.count += 1
            if line.strip() == b"QUIT":
                break

    def finish(self) -> None:
        server = self.server
        if isinstance(server, LineServer):
            server.lines += self.count
        super().finish()


def main(port: int = 0) -> None:
    with LineServer(("127.0.0.1", port)) as server:
        host, bound_port = server.server_address[:2]
        print(f"serving on {host!r}:{bound_port}")
        server.serve_forever(poll_interval=0.25)


def one_request(server: socketserver.TCPServer) -> None:
    server.timeout = 1.0
    server.handle_request()
    server.shutdown()
    server.server_close()
