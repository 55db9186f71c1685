"""How long ``shutdown()`` takes to return, in-process: ``python shutdown_latency.py NAME``.

For each sample: start the server's ``serve_forever`` in a thread, serve a few echo requests
from this thread, then time the ``shutdown()`` call until it returns. Prints one JSON line
``{"server": NAME, "samples_ms": [...]}``. NAME is ``stdlib-TCPServer``,
``stdlib-ThreadingTCPServer`` or ``typedserve-<Strategy>``.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading
import time
from typing import Protocol

from servers import HOST, StdStreamEcho, typedserve_server


class Stoppable(Protocol):
    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...


def echo_once(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"s" * 64)
        got = 0
        while got < 64:
            chunk = sock.recv(64 - got)
            if not chunk:
                raise ConnectionError("server closed early")
            got += len(chunk)


SETTLE = 0.02  # let the loop go back to waiting for the next request before shutdown()


def timed_shutdown(server: Stoppable, port: int, requests: int) -> float:
    thread = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    thread.start()
    for _ in range(requests):
        echo_once(port)
    time.sleep(SETTLE)
    start = time.perf_counter()
    server.shutdown()
    elapsed = time.perf_counter() - start
    thread.join(10)
    if thread.is_alive():
        raise RuntimeError("serve_forever did not return after shutdown()")
    return elapsed * 1000.0


def sample_stdlib(name: str, requests: int) -> float:
    cls: type[socketserver.TCPServer] = (
        socketserver.ThreadingTCPServer
        if name == "stdlib-ThreadingTCPServer"
        else socketserver.TCPServer
    )
    with cls((HOST, 0), StdStreamEcho) as server:
        return timed_shutdown(server, server.server_address[1], requests)


def sample_typedserve(spec: str, requests: int) -> float:
    with typedserve_server("tcp", spec) as server:
        return timed_shutdown(server, server.address[1], requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    name: str = args.name
    samples: list[float] = []
    for _ in range(max(1, min(args.samples, 1000))):
        if name.startswith("typedserve-"):
            samples.append(sample_typedserve(name.removeprefix("typedserve-"), args.requests))
        else:
            samples.append(sample_stdlib(name, args.requests))
    print(json.dumps({"server": name, "samples_ms": samples}), flush=True)


if __name__ == "__main__":
    main()
