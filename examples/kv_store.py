"""A line-protocol key-value store shared by every connection, guarded by a lock.

The seed's point about shared state: with a threaded strategy all handlers see one store
(injected as the server's ``state``), so access is serialised with a lock. Under a forking
strategy each child would get a copy and writes would never reach the parent.

The handler depends on an interface, ``Store`` (a ``Protocol``), not on the implementation the
server is given (``MemoryStore``): ``StreamHandler[Store]`` accepts ``state=MemoryStore()``, or
any other implementation (a test double, a store on disk), and mypy checks that it is one.

Protocol (one command per line, UTF-8)::

    SET key value   -> OK
    GET key         -> VALUE value | NOT_FOUND
    DEL key         -> DELETED | NOT_FOUND
    KEYS            -> KEYS k1 k2 ...
    QUIT            -> BYE (and the connection closes)
    anything else   -> ERROR <reason>

Run it::

    python examples/kv_store.py --port 7070
    printf 'SET a 1\\nGET a\\nQUIT\\n' | nc -N 127.0.0.1 7070
"""

from __future__ import annotations

import argparse
import threading
from typing import Protocol, TypeAlias

from typedserve import (
    InetAddress,
    InetSockAddr,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    Timeouts,
)
from typedserve.cli import run_until_signal
from typedserve.strategies import ThreadPerRequest

MAX_LINE = 64 * 1024


class Store(Protocol):
    """What the handler needs from the shared state (the server is given an implementation)."""

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        ...

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None``."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        ...

    def keys(self) -> list[str]:
        """The keys, sorted."""
        ...


class MemoryStore:
    """A ``Store``: a dict of strings behind a lock, the state every connection shares."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        with self._lock:
            self._data[key] = value

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None``."""
        with self._lock:
            return self._data.get(key)

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        with self._lock:
            return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        """The keys, sorted."""
        with self._lock:
            return sorted(self._data)


class KVHandler(StreamHandler[Store]):
    """Serve the line protocol over one connection."""

    def handle(self) -> None:
        """Read commands until ``QUIT`` or end of input."""
        while line := self.rfile.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE:
                self.reply("ERROR line too long")
                return
            answer = self.execute(line.decode("utf-8", "replace").strip())
            self.reply(answer)
            if answer == "BYE":
                return

    def execute(self, command: str) -> str:
        """The answer to one command line."""
        verb, _, rest = command.partition(" ")
        store = self.state
        match verb.upper(), rest.split(" ", 1) if rest else []:
            case "SET", [key, value]:
                store.set(key, value)
                return "OK"
            case "GET", [key]:
                found = store.get(key)
                return "NOT_FOUND" if found is None else f"VALUE {found}"
            case "DEL", [key]:
                return "DELETED" if store.delete(key) else "NOT_FOUND"
            case "KEYS", []:
                return " ".join(["KEYS", *store.keys()])
            case "QUIT", []:
                return "BYE"
            case _:
                return f"ERROR unknown or malformed command {verb!r}"

    def reply(self, text: str) -> None:
        """Send one answer line."""
        self.wfile.write(text.encode() + b"\n")


KVServer: TypeAlias = Server[StreamRequest[InetSockAddr], Store, InetSockAddr, ThreadPerRequest]
"""The server's full type: request, state, address and strategy (all four checked)."""


def build_server(config: ServerConfig, store: Store | None = None) -> KVServer:
    """The key-value server on ``config`` (a ``typedserve serve`` factory); ``store`` is any
    ``Store`` (a new ``MemoryStore`` by default)."""
    return Server(
        config=config,
        transport=TCPTransport(),
        handler=KVHandler,
        state=MemoryStore() if store is None else store,
        strategy=ThreadPerRequest(),
    )


class Args(argparse.Namespace):
    """The command line, typed."""

    host: str
    port: int


def main() -> int:
    """Parse ``--host``/``--port`` and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7070)
    args = parser.parse_args(namespace=Args())
    config = ServerConfig(
        address=InetAddress(host=args.host, port=args.port), timeouts=Timeouts(idle=300)
    )
    server = build_server(config)
    print(f"key-value store on {args.host}:{server.address[1]}", flush=True)
    return run_until_signal([server])


if __name__ == "__main__":
    raise SystemExit(main())
