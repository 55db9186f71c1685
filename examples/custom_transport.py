"""A transport of your own: at most N connections per client address, refused at accept time.

``PeerLimitTransport`` wraps a built-in stream transport (``TCPTransport`` by default) and is
itself a ``Transport[StreamRequest[A], A]`` for the address type ``A`` of the transport it wraps
(``InetSockAddr`` for TCP, ``UnixSockAddr`` for a Unix stream socket): the server, the strategy
and the handler cannot tell it from the transport it wraps, and its addresses stay typed. It
delegates ``bind``, ``activate``, ``address``, ``fileno`` and ``close``, and filters
``receive``: a connection from a host that already holds ``limit`` open connections is turned
away with the request's own ``refuse`` and ``close`` before the server ever sees it, so it
costs no worker and no handler.

Run it, then open three connections from another terminal (the third one is closed at once)::

    python examples/custom_transport.py --port 7171 --limit 2
    nc 127.0.0.1 7171
"""

from __future__ import annotations

import argparse
import logging
import socket
from typing import Final, Generic, cast, overload

from typing_extensions import TypeVar

from typedserve import (
    InetAddress,
    InetSockAddr,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    ThreadPerRequest,
    Transport,
    TransportStats,
    UnixSockAddr,
)
from typedserve.cli import run_until_signal

logger = logging.getLogger("examples.custom_transport")

_REFUSALS_PER_RECEIVE: Final = 64  # then give the loop back (the listener is still readable)
_SWEEP_EVERY: Final = 256  # admissions between two sweeps of hosts whose connections all ended

StreamAddrT = TypeVar("StreamAddrT", bound=InetSockAddr | UnixSockAddr, default=InetSockAddr)
"""The address type of the wrapped stream transport (TCP's when not named)."""


class PeerLimitTransport(Generic[StreamAddrT]):
    """A ``Transport[StreamRequest[StreamAddrT], StreamAddrT]`` that lets each client host hold
    at most ``limit`` connections at a time.

    ``receive`` takes the wrapped transport's next connection. If its host (the peer's IP
    address; on a Unix socket every client is one host) already holds ``limit`` connections
    the server has not closed yet, the new one is refused: what the client sent is discarded
    and the connection closed, so the client reads an end of stream (it never reaches the
    server: not in ``server.stats()``; :attr:`refused` counts it, and a warning names the
    host). Then the next pending connection is tried.

    A connection counts until its socket is closed, whoever closes it: the server after the
    handler, or its loop for a connection it held itself (a client silent past
    ``timeouts.first_byte``, a refused one lingering). So this tracks the sockets, not calls
    to ``request.close()``.

    Resource handling: the wrapped transport owns the listening socket; an admitted request is
    the server's like any other; a refused one is closed here, on the spot.
    Threads: like any transport, driven by the server's loop thread only, so the table needs
    no lock. Counts are per process: under ``Prefork`` each worker keeps its own.

    Example::

        Server(config=config, transport=PeerLimitTransport(limit=4), handler=Echo,
               strategy=ThreadPerRequest())
    """

    @overload
    def __init__(self: PeerLimitTransport[InetSockAddr], limit: int) -> None: ...

    @overload
    def __init__(
        self, limit: int, inner: Transport[StreamRequest[StreamAddrT], StreamAddrT]
    ) -> None: ...

    def __init__(
        self, limit: int, inner: Transport[StreamRequest[StreamAddrT], StreamAddrT] | None = None
    ) -> None:
        if limit < 1:
            raise ValueError(f"PeerLimitTransport: limit must be at least 1, got {limit}")
        self.limit = limit
        """The most connections one host may hold at a time."""
        if inner is None:  # the first overload: StreamAddrT is InetSockAddr, TCP's
            inner = cast("Transport[StreamRequest[StreamAddrT], StreamAddrT]", TCPTransport())
        self.inner = inner
        """The wrapped transport, which owns the listening socket."""
        self.stats: TransportStats = self.inner.stats
        """The wrapped transport's counters (the same object)."""
        self.refused = 0
        """Connections refused because their host was at the limit (loop thread)."""
        self._open: dict[str | bytes, list[socket.socket]] = {}
        self._admitted = 0

    def bind(self, config: ServerConfig) -> None:
        """Bind the wrapped transport."""
        self.inner.bind(config)

    def activate(self) -> None:
        """Start the wrapped transport listening."""
        self.inner.activate()

    @property
    def address(self) -> StreamAddrT:
        """The wrapped transport's bound address."""
        return self.inner.address

    def fileno(self) -> int:
        """The wrapped transport's listening fd."""
        return self.inner.fileno()

    def receive(self) -> StreamRequest[StreamAddrT] | None:
        """The next connection whose host is under the limit, or ``None`` (nothing pending,
        or a burst of refusals: the loop calls again while the listener is readable)."""
        for _ in range(_REFUSALS_PER_RECEIVE):
            request = self.inner.receive()
            if request is None or self._admit(request):
                return request
        return None

    def close(self) -> None:
        """Close the wrapped transport and forget every host."""
        self.inner.close()
        self._open.clear()

    def _admit(self, request: StreamRequest[StreamAddrT]) -> bool:
        host = _host(request.peer)
        held = [conn for conn in self._open.get(host, ()) if conn.fileno() >= 0]
        if len(held) >= self.limit:
            self._open[host] = held
            self.refused += 1
            logger.warning(
                "refused a connection from %s: it holds %d already (limit %d)",
                host,
                len(held),
                self.limit,
            )
            # refuse() discards what the client sent, so the close below sends a FIN, not a
            # reset; the server would linger when it returns True, a transport must not wait.
            if request.refuse():
                request.close()
            return False
        held.append(request.socket)
        self._open[host] = held
        self._admitted += 1
        if self._admitted % _SWEEP_EVERY == 0:
            self._sweep()
        return True

    def _sweep(self) -> None:
        """Drop the hosts whose connections have all ended (the table would grow otherwise)."""
        self._open = {
            host: live
            for host, conns in self._open.items()
            if (live := [conn for conn in conns if conn.fileno() >= 0])
        }


def _host(peer: InetSockAddr | UnixSockAddr) -> str | bytes:
    """The part of a peer address that names the client host: the IP address of an inet
    peer (``(host, port)`` or ``(host, port, flow, scope)``), the whole of a Unix one."""
    return peer[0] if isinstance(peer, tuple) else peer


class LineEcho(StreamHandler):
    """Echo every line until the client closes."""

    nodelay = True

    def handle(self) -> None:
        """Copy lines from ``rfile`` to ``wfile``."""
        for line in self.rfile:
            self.wfile.write(line)


def build_server(
    config: ServerConfig, limit: int = 2
) -> Server[StreamRequest[InetSockAddr], None, InetSockAddr, ThreadPerRequest]:
    """A line echo server on ``config`` allowing ``limit`` connections per client host."""
    return Server(
        config=config,
        transport=PeerLimitTransport(limit),
        handler=LineEcho,
        strategy=ThreadPerRequest(),
    )


class Args(argparse.Namespace):
    """The command line, typed."""

    host: str
    port: int
    limit: int


def main() -> int:
    """Parse ``--host``/``--port``/``--limit`` and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7171)
    parser.add_argument("--limit", type=int, default=2, help="connections per client host")
    args = parser.parse_args(namespace=Args())
    config = ServerConfig(address=InetAddress(host=args.host, port=args.port))
    server = build_server(config, args.limit)
    print(
        f"echo on TCP {args.host}:{server.address[1]}, "
        f"at most {args.limit} connection(s) per client host",
        flush=True,
    )
    return run_until_signal([server])


if __name__ == "__main__":
    raise SystemExit(main())
