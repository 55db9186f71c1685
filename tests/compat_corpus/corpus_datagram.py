"""UDP and Unix datagram services with DatagramRequestHandler."""

from __future__ import annotations

import socket
import socketserver
import time
from typing import Any


class TimeHandler(socketserver.DatagramRequestHandler):
    def handle(self) -> None:
        question = self.rfile.read().strip()
        if question == b"time":
            self.wfile.write(str(time.time()).encode())
        else:
            self.wfile.write(b"unknown: " + self.packet[:32])


class TimeServer(socketserver.ThreadingUDPServer):
    max_packet_size = 512
    allow_reuse_port = True


class LocalTimeServer(socketserver.UnixDatagramServer):
    def verify_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> bool:
        return isinstance(request, tuple) and len(request[0]) <= self.max_packet_size


def serve(port: int) -> None:
    with TimeServer(("0.0.0.0", port), TimeHandler) as server:
        server.serve_forever()
