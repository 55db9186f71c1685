"""TCP and UDP echo, composed by hand: one config, two transports, two strategies.

Run it::

    python examples/echo_server.py --port 8765
    printf 'hello\\n' | nc -N 127.0.0.1 8765        # TCP
    printf 'hello\\n' | nc -u -w1 127.0.0.1 8765    # UDP
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from typedserve import (
    Datagram,
    DatagramHandler,
    InetAddress,
    InetSockAddr,
    Inline,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    ThreadPerRequest,
    UDPTransport,
)
from typedserve.cli import run_until_signal


class LineEcho(StreamHandler):
    """Echo every line until the client closes."""

    nodelay = True  # answer each line at once, do not wait for more to coalesce

    def handle(self) -> None:
        """Copy lines from ``rfile`` to ``wfile``."""
        for line in self.rfile:
            self.wfile.write(line)


class DatagramEcho(DatagramHandler):
    """Reply to each datagram with its own bytes."""

    def handle(self) -> None:
        """Send the payload back."""
        self.request.reply(self.request.payload)


TCPEcho: TypeAlias = Server[StreamRequest[InetSockAddr], None, InetSockAddr, ThreadPerRequest]
UDPEcho: TypeAlias = Server[Datagram[InetSockAddr], None, InetSockAddr, Inline]


def build_servers(config: ServerConfig) -> tuple[TCPEcho, UDPEcho]:
    """The TCP echo server and a UDP echo server on the same port."""
    tcp = Server(
        config=config, transport=TCPTransport(), handler=LineEcho, strategy=ThreadPerRequest()
    )
    port = tcp.address[1]  # an int: a TCP server's address is (host, port[, flow, scope])
    overrides: dict[str, object] = {"address.port": port}
    udp = Server(
        config=config.with_overrides(overrides),
        transport=UDPTransport(),
        handler=DatagramEcho,
    )
    return tcp, udp


class Args(argparse.Namespace):
    """The command line, typed."""

    host: str
    port: int


def main() -> int:
    """Parse ``--host``/``--port`` and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(namespace=Args())
    config = ServerConfig(address=InetAddress(host=args.host, port=args.port))
    tcp, udp = build_servers(config)
    print(f"echo on TCP and UDP {args.host}:{tcp.address[1]}", flush=True)
    return run_until_signal([tcp, udp])


if __name__ == "__main__":
    raise SystemExit(main())
