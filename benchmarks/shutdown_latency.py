"""How long ``shutdown()`` takes to return, in-process: ``python shutdown_latency.py NAME``.

For each sample: start the server's ``serve_forever`` in a thread, serve a few echo requests
from this thread, then time the ``shutdown()`` call until it returns. Prints one JSON line
``{"server": NAME, "samples_ms": [...], "close_errors": [...], "close_ms": [...]}``: the
exceptions raised by the server's ``close()`` after a sample, and for typedserve how long the
first sample's ``close()`` with the default ``shutdown.grace`` took (later samples close with
``grace=0``, as nothing is in flight by then). NAME is ``stdlib-TCPServer``,
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


def sample_typedserve(
    spec: str, requests: int, close_errors: list[str], close_ms: list[float] | None = None
) -> float:
    """One sample. The server is then closed with ``grace=0`` (nothing is in flight), or with
    the default grace, timed into ``close_ms``, when that list is given. An exception from
    ``close()`` is recorded in ``close_errors``, not raised."""
    server = typedserve_server("tcp", spec)
    try:
        return timed_shutdown(server, server.address[1], requests)
    finally:
        start = time.perf_counter()
        try:
            server.close() if close_ms is not None else server.close(grace=0)
        except Exception as exc:
            close_errors.append(f"{type(exc).__name__}: {exc}")
        if close_ms is not None:
            close_ms.append((time.perf_counter() - start) * 1000.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    name: str = args.name
    samples: list[float] = []
    close_errors: list[str] = []
    close_ms: list[float] = []  # the first sample's close() with the default grace
    for index in range(max(1, min(args.samples, 1000))):
        if name.startswith("typedserve-"):
            spec = name.removeprefix("typedserve-")
            timed_close = close_ms if index == 0 else None
            samples.append(sample_typedserve(spec, args.requests, close_errors, timed_close))
        else:
            samples.append(sample_stdlib(name, args.requests))
    result = {
        "server": name,
        "samples_ms": samples,
        "close_errors": close_errors,
        "close_ms": close_ms,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
