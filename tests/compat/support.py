"""Helpers for the conformance suite: recording servers, loop threads, clients."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

HOOKS = (
    "server_bind",
    "server_activate",
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_error",
    "handle_timeout",
    "service_actions",
    "server_close",
)


class Log:
    """A thread-safe list of ``(event, args)`` entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, event: str, *args: Any) -> None:
        """Record one event."""
        with self._lock:
            self.entries.append((event, args))

    def names(self, *, skip: tuple[str, ...] = ("service_actions",)) -> list[str]:
        """The event names, in order, without ``skip``."""
        with self._lock:
            return [name for name, _ in self.entries if name not in skip]

    def args(self, event: str) -> list[tuple[Any, ...]]:
        """The arguments of every ``event``."""
        with self._lock:
            return [args for name, args in self.entries if name == event]


def recording(base: type[Any], log: Log, *, hooks: tuple[str, ...] = HOOKS) -> type[Any]:
    """A subclass of ``base`` that logs every hook call, then calls the inherited hook."""
    namespace: dict[str, Any] = {}
    cls: type[Any]

    def make(hook: str) -> Any:
        def method(self: Any, *args: Any) -> Any:
            log.add(hook, *args)
            return getattr(super(cls, self), hook)(*args)

        method.__name__ = hook
        return method

    for hook in hooks:
        if hasattr(base, hook):
            namespace[hook] = make(hook)
    cls = type(f"Recording{base.__name__}", (base,), namespace)
    return cls


def recording_handler(base: type[Any], log: Log, body: Any = None) -> type[Any]:
    """A handler class logging ``setup``/``handle``/``finish``; ``handle`` runs ``body``."""

    class Handler(base):
        def setup(self) -> None:
            log.add("setup", self.request, self.client_address, self.server)
            super().setup()

        def handle(self) -> None:
            log.add("handle")
            if body is not None:
                body(self)

        def finish(self) -> None:
            log.add("finish")
            super().finish()

    return Handler


@contextlib.contextmanager
def serving(server: Any, poll_interval: float = 0.05) -> Iterator[threading.Thread]:
    """Run ``server.serve_forever`` in a thread; on exit shut it down, join it and close."""
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,))
    thread.start()
    try:
        yield thread
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def echo_line(handler: Any) -> None:
    """A stream handler body: echo one line."""
    handler.wfile.write(handler.rfile.readline())


def tcp_exchange(address: Any, data: bytes, family: int = socket.AF_INET) -> bytes:
    """Connect, send ``data``, half-close and read the reply to EOF."""
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        return read_all(client)


def read_all(sock: socket.socket) -> bytes:
    """Read until EOF."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def run_python(code: str, *args: str, timeout: float = 30) -> str:
    """Run ``code`` in a fresh interpreter (this one's), with this checkout importable.

    Fails the calling test (with the child's output) unless the child exits 0.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout
