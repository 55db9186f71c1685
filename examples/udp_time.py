"""A UDP time and quote service: each request datagram gets one reply datagram.

Requests (ASCII, case-insensitive): ``time`` -> the UTC time in ISO 8601; ``quote`` -> a quote;
anything else -> ``error: ...``. Oversized datagrams are dropped and counted (see
``limits.max_datagram_size``), never clipped.

Run it::

    python examples/udp_time.py --port 3700
    printf 'time' | nc -u -w1 127.0.0.1 3700
"""

from __future__ import annotations

import argparse
import datetime
import itertools

from typedserve import (
    Datagram,
    DatagramHandler,
    InetAddress,
    InetSockAddr,
    Inline,
    Limits,
    Server,
    ServerConfig,
    UDPTransport,
)
from typedserve.cli import run_until_signal

QUOTES = (
    "Simple is better than complex.",
    "Errors should never pass silently.",
    "In the face of ambiguity, refuse the temptation to guess.",
)


class Quotes:
    """Hands out quotes in turn (shared by every request)."""

    def __init__(self) -> None:
        self._next = itertools.cycle(QUOTES)

    def next(self) -> str:
        """The next quote."""
        return next(self._next)


class TimeService(DatagramHandler[Quotes, InetSockAddr]):
    """Answer ``time`` and ``quote`` requests (over UDP: ``self.request.peer`` is an inet
    address, ``(host, port)`` or ``(host, port, flowinfo, scope_id)``)."""

    def handle(self) -> None:
        """Write the answer to ``wfile``: it is sent as one reply datagram."""
        command = self.rfile.read().decode("ascii", "replace").strip().lower()
        if command == "time":
            answer = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        elif command == "quote":
            answer = self.state.next()
        else:
            answer = f"error: unknown request {command[:40]!r}; try 'time' or 'quote'"
        self.wfile.write(answer.encode())


def build_server(
    config: ServerConfig,
) -> Server[Datagram[InetSockAddr], Quotes, InetSockAddr, Inline]:
    """The time service on ``config`` (a ``typedserve serve`` factory)."""
    return Server(config=config, transport=UDPTransport(), handler=TimeService, state=Quotes())


class Args(argparse.Namespace):
    """The command line, typed."""

    host: str
    port: int


def main() -> int:
    """Parse ``--host``/``--port`` and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3700)
    args = parser.parse_args(namespace=Args())
    config = ServerConfig(
        address=InetAddress(host=args.host, port=args.port),
        limits=Limits(max_datagram_size=512),
    )
    server = build_server(config)
    print(f"time service on UDP {args.host}:{server.address[1]}", flush=True)
    return run_until_signal([server])


if __name__ == "__main__":
    raise SystemExit(main())
