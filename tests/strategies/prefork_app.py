"""A Prefork server run as its own process, for the supervisor's signal tests.

``python prefork_app.py GATE_PORT``: serves the suite's command protocol over TCP with two
workers on the main thread, prints ``port <n>`` once bound, and exits 0 after a graceful stop
(SIGTERM or SIGINT), logging the drain report on stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tests.strategies.support import CommandStream
from typedserve import Prefork, Server, ServerConfig, TCPTransport


def busy(request: Any) -> None:
    request.socket.sendall(b"BUSY\n")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=CommandStream,
        strategy=Prefork(workers=2, threads_per_worker=2),  # threads: loops stay responsive
        state={"gate": ("127.0.0.1", int(sys.argv[1]))},
        on_busy=busy,
    )
    with server:
        print(f"port {server.address[1]}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
