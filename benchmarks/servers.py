"""Echo servers under test, one per process: ``python benchmarks/servers.py KIND NAME``.

KIND is ``tcp``, ``udp``, ``lines``, ``files``, ``file-lines``, ``tls``, ``proxied`` or
``metrics`` (see
below).

Every server binds 127.0.0.1 on an ephemeral port, prints the port on stdout once it is
listening, and echoes (stream: recv -> sendall until EOF; datagram: reply with the same bytes;
``lines``: one line per connection, read and written back, for the slow-clients row).
A server exits by itself when its stdin reaches EOF (the controller closed it or died) or after
``--max-seconds``; the controller additionally kills its whole process group.

NAME is one of ``stdlib-TCPServer``, ``stdlib-ThreadingTCPServer``, ``stdlib-ForkingTCPServer``,
``stdlib-UDPServer``, ``stdlib-ThreadingUDPServer``, ``asyncio-streams``, ``asyncio-protocol``,
``uvloop-protocol``, ``uvloop-streams`` or ``typedserve-<Strategy>`` (a class in
``typedserve.strategies``). The ``lines`` servers are ``stdlib-ThreadingTCPServer``,
``asyncio-streams``, ``uvloop-streams`` and ``typedserve-<Strategy>``; the typedserve ones
keep the default config except the address.
``files`` (``rfile.read1`` -> ``wfile.write``) and ``file-lines`` (``for line in self.rfile``)
echo through the file objects users write handlers with: ``stdlib-TCPServer``,
``stdlib-ThreadingTCPServer`` (``StreamRequestHandler``) and ``typedserve-<Strategy>``
(``StreamHandler``).
``tls`` (``--certfile F --keyfile K``) is the ``tcp`` echo over TLS:
``stdlib-ThreadingTCPServer:accept-handshake`` (``get_request`` returns
``context.wrap_socket(sock, server_side=True)``: the handshake runs on the accept loop),
``stdlib-ThreadingTCPServer:handler-handshake`` (``do_handshake_on_connect=False`` there and
``do_handshake()`` in the handler's ``setup``, on the connection's thread), ``asyncio-streams``
and ``uvloop-streams`` (``start_server(..., ssl=context)``), all with
``SSLContext(PROTOCOL_TLS_SERVER)`` and ``load_cert_chain``, as their users write it; and
``typedserve-<Strategy>`` over ``TLSTransport(TCPTransport())`` with ``config.tls`` naming the
files (the context typedserve builds from it).
``proxied`` is the ``tcp`` echo of ``typedserve-<Strategy>`` behind a load balancer that sends
a PROXY protocol header (the ``echo 1KiB x50 through HAProxy`` rows' ``+proxy-v2`` servers):
``ProxyProtocolTransport(TCPTransport())`` with ``proxy_protocol`` ``mode="required"`` (the
header is read where each connection is served; loopback upstreams are trusted by default).
``metrics`` is the ``tcp`` echo of ``typedserve-<Strategy>`` with the Prometheus metrics of
``typedserve.metrics`` as a deployment turns them on: ``typedserve-<Strategy>`` alone (metrics
off, the row the others are compared with), ``typedserve-<Strategy>+metrics`` (the server
registered in ``prometheus_client``'s default registry and ``/metrics`` served by a
``MetricsEndpoint`` on 127.0.0.1, on a thread of the server's process; the request-duration
histogram off) and ``typedserve-<Strategy>+metrics+histogram`` (also
``metrics.duration_histogram``). With metrics the port line also carries the endpoint's URL:
``PORT http://127.0.0.1:MPORT/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import os
import pkgutil
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

HOST = "127.0.0.1"
TLS_NODELAY = True
"""Every TLS server turns Nagle's algorithm off (asyncio and uvloop do by default; typedserve's
``StreamHandler.nodelay``, and the stdlib handlers in ``setup``, as the http.server rows set
``disable_nagle_algorithm``): a TLS 1.3 server writes its session tickets after the handshake
in small writes of their own, so without it the first echo waits behind them for the client's
delayed ACK (~40 ms), and every threaded server measures that timer (22 handshakes/s)."""
BACKLOG = socket.SOMAXCONN  # typedserve's default backlog, used by every server (README.md)
REPO = Path(__file__).resolve().parent.parent


def announce(port: int, url: str = "") -> None:
    """Tell the controller we are ready (and, with metrics, where ``/metrics`` is)."""
    sys.stdout.write(f"{port} {url}\n" if url else f"{port}\n")
    sys.stdout.flush()


def start_watchdog(max_seconds: float) -> None:
    """Exit the process when stdin closes or after ``max_seconds``, whatever the server does."""

    def wait_stdin() -> None:
        try:
            while os.read(0, 256):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=wait_stdin, name="stdin-watchdog", daemon=True).start()
    timer = threading.Timer(max_seconds, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


# ---------------------------------------------------------------- stdlib socketserver


class StdStreamEcho(socketserver.BaseRequestHandler):
    request: socket.socket

    def handle(self) -> None:
        sock = self.request
        while data := sock.recv(65536):
            sock.sendall(data)


class StdLineEcho(socketserver.StreamRequestHandler):
    """One line in, the same line out; the server then closes the connection."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class StdFileEcho(socketserver.StreamRequestHandler):
    """Echo through the file objects, as users write it: ``rfile.read1`` -> ``wfile.write``."""

    def handle(self) -> None:
        while data := self.rfile.read1(65536):
            self.wfile.write(data)


class StdFileLineEcho(socketserver.StreamRequestHandler):
    """Line echo through the file objects: ``for line in self.rfile``."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class StdDatagramEcho(socketserver.BaseRequestHandler):
    request: tuple[bytes, socket.socket]

    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


class QuietErrors:
    """Do not print tracebacks for connections the load generator resets."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class StdTCPServer(QuietErrors, socketserver.TCPServer):
    request_queue_size = BACKLOG


class StdThreadingTCPServer(QuietErrors, socketserver.ThreadingTCPServer):
    request_queue_size = BACKLOG
    daemon_threads = True


class StdForkingTCPServer(QuietErrors, socketserver.ForkingTCPServer):
    request_queue_size = BACKLOG


class StdUDPServer(QuietErrors, socketserver.UDPServer):
    pass


class StdThreadingUDPServer(QuietErrors, socketserver.ThreadingUDPServer):
    daemon_threads = True


STDLIB: dict[tuple[str, str], Callable[[], socketserver.TCPServer]] = {
    ("tcp", "stdlib-TCPServer"): lambda: StdTCPServer((HOST, 0), StdStreamEcho),
    ("tcp", "stdlib-ThreadingTCPServer"): lambda: StdThreadingTCPServer((HOST, 0), StdStreamEcho),
    ("tcp", "stdlib-ForkingTCPServer"): lambda: StdForkingTCPServer((HOST, 0), StdStreamEcho),
    ("lines", "stdlib-ThreadingTCPServer"): lambda: StdThreadingTCPServer((HOST, 0), StdLineEcho),
    ("files", "stdlib-TCPServer"): lambda: StdTCPServer((HOST, 0), StdFileEcho),
    ("files", "stdlib-ThreadingTCPServer"): lambda: StdThreadingTCPServer((HOST, 0), StdFileEcho),
    ("file-lines", "stdlib-TCPServer"): lambda: StdTCPServer((HOST, 0), StdFileLineEcho),
    ("file-lines", "stdlib-ThreadingTCPServer"): lambda: StdThreadingTCPServer(
        (HOST, 0), StdFileLineEcho
    ),
    ("udp", "stdlib-UDPServer"): lambda: StdUDPServer((HOST, 0), StdDatagramEcho),
    ("udp", "stdlib-ThreadingUDPServer"): lambda: StdThreadingUDPServer((HOST, 0), StdDatagramEcho),
}


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """The server context of the stdlib and asyncio TLS rows, as their users write it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


class StdTLSServer(StdThreadingTCPServer):
    """``ThreadingTCPServer`` with a TLS-wrapped socket per connection, made in ``get_request``
    (on the accept loop). ``handshake_in_handler``: the wrap does not handshake
    (``do_handshake_on_connect=False``); :class:`StdTLSHandlerHandshake` does, in ``setup``."""

    def __init__(self, context: ssl.SSLContext, handshake_in_handler: bool) -> None:
        self.context = context
        self.handshake_on_connect = not handshake_in_handler
        handler = StdTLSHandlerHandshake if handshake_in_handler else StdTLSEcho
        super().__init__((HOST, 0), handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        wrapped = self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=self.handshake_on_connect
        )
        return wrapped, address


class StdTLSEcho(StdStreamEcho):
    """The echo with Nagle's algorithm off, set in ``setup`` as ``StreamRequestHandler``'s
    ``disable_nagle_algorithm`` does (see ``TLS_NODELAY``)."""

    def setup(self) -> None:
        if TLS_NODELAY:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class StdTLSHandlerHandshake(StdTLSEcho):
    """The echo, after the handshake on the connection's own thread."""

    request: ssl.SSLSocket  # type: ignore[assignment]

    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()


STDLIB_TLS = {
    "stdlib-ThreadingTCPServer:accept-handshake": False,
    "stdlib-ThreadingTCPServer:handler-handshake": True,
}


def run_stdlib(kind: str, name: str, tls: tuple[str, str] | None = None) -> None:
    if kind == "tls":
        if name not in STDLIB_TLS or tls is None:
            sys.exit(f"no tls server named {name!r} (or no --certfile/--keyfile)")
        with StdTLSServer(tls_context(*tls), STDLIB_TLS[name]) as tls_server:
            announce(int(tls_server.socket.getsockname()[1]))
            tls_server.serve_forever()
        return
    if (kind, name) not in STDLIB:
        sys.exit(f"no {kind} server named {name!r}")
    with STDLIB[(kind, name)]() as server:
        announce(int(server.socket.getsockname()[1]))
        server.serve_forever()


# ---------------------------------------------------------------- asyncio / uvloop


async def streams_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def streams_line_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(await reader.readline())
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


class EchoProtocol(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.transport.sendto(data, addr)


async def serve_asyncio(kind: str, name: str, tls: tuple[str, str] | None = None) -> None:
    loop = asyncio.get_running_loop()
    if kind == "udp":
        transport, _ = await loop.create_datagram_endpoint(
            EchoDatagramProtocol, local_addr=(HOST, 0)
        )
        announce(transport.get_extra_info("sockname")[1])
        await asyncio.Event().wait()  # forever; the watchdog ends the process
        return
    streams = name in ("asyncio-streams", "uvloop-streams")
    if kind in ("lines", "tls") and not streams:
        sys.exit(f"no {kind} server named {name!r}")
    if kind == "tls":
        if tls is None:
            sys.exit("tls: --certfile and --keyfile are required")
        server = await asyncio.start_server(
            streams_echo, HOST, 0, backlog=BACKLOG, ssl=tls_context(*tls)
        )
    elif streams:
        echo = streams_line_echo if kind == "lines" else streams_echo
        server = await asyncio.start_server(echo, HOST, 0, backlog=BACKLOG)
    else:
        server = await loop.create_server(EchoProtocol, HOST, 0, backlog=BACKLOG)
    async with server:
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()


def run_asyncio(kind: str, name: str, tls: tuple[str, str] | None = None) -> None:
    if name.startswith("uvloop-"):
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.run(serve_asyncio(kind, name, tls))
    else:
        asyncio.run(serve_asyncio(kind, name, tls))


# ---------------------------------------------------------------- typedserve


def import_typedserve() -> Any:
    """Import typedserve, falling back to the checkout this file lives in."""
    try:
        import typedserve
    except ImportError:
        sys.path.insert(0, str(REPO))
        import typedserve
    return typedserve


def discover_strategies() -> dict[str, Any]:
    """Strategy classes in ``typedserve.strategies`` and its submodules, by class name.

    A class counts when it has ``in_flight`` and ``submit`` or ``run``, is neither abstract nor
    a Protocol, and can be built without arguments; submodules that fail to import (work in
    progress) are skipped.
    """
    import_typedserve()
    import typedserve.strategies as package

    modules: list[Any] = [package]
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        with contextlib.suppress(Exception):
            modules.append(importlib.import_module(info.name))
    found: dict[str, Any] = {}
    for module in modules:
        for name, obj in vars(module).items():
            if (
                name.startswith("_")
                or name in found
                or not inspect.isclass(obj)
                or not hasattr(obj, "in_flight")
                or not (
                    callable(getattr(obj, "submit", None)) or callable(getattr(obj, "run", None))
                )
                or inspect.isabstract(obj)
                or getattr(obj, "_is_protocol", False)
                or not obj.__module__.startswith("typedserve.")
            ):
                continue
            try:
                obj()
            except Exception:
                continue
            found[name] = obj
    return found


def make_strategy(spec: str) -> Any:
    """``Name`` or ``Name:loop`` (``AsyncIO:asyncio``) -> a typedserve strategy instance."""
    name, _, loop = spec.partition(":")
    cls = discover_strategies()[name]
    return cls(loop=loop) if loop else cls()


def is_async(strategy: Any) -> bool:
    """Whether the strategy runs async handlers (``AsyncIO``)."""
    return type(strategy).__name__ == "AsyncIO"


def typedserve_server(
    kind: str, spec: str, tls: tuple[str, str] | None = None, histogram: bool = False
) -> Any:
    """A bound typedserve echo server on 127.0.0.1 (free port) with the strategy ``spec``;
    ``tls``: the ``tcp`` echo over ``TLSTransport(TCPTransport())``, ``config.tls`` naming the
    certificate and key files; ``proxied``: the ``tcp`` echo over
    ``ProxyProtocolTransport(TCPTransport())``, a PROXY header required on every connection;
    ``histogram``: ``metrics.duration_histogram`` on."""
    if kind == "lines":
        return typedserve_line_server(spec)
    if kind in ("files", "file-lines"):
        return typedserve_file_server(kind, spec)
    ts = import_typedserve()
    strategy = make_strategy(spec)
    handler: Any
    if is_async(strategy):
        from typedserve.aio.handlers import AsyncHandler  # type: ignore[import-not-found,unused-ignore]

        class AsyncEcho(AsyncHandler):  # type: ignore[misc,type-arg,unused-ignore]
            async def handle(self) -> None:
                stream = self.request
                while data := await stream.read(65536):
                    stream.write(data)
                    await stream.drain()

        class AsyncUdpEcho(AsyncHandler):  # type: ignore[misc,type-arg,unused-ignore]
            async def handle(self) -> None:
                self.request.reply(self.request.payload)

        handler = AsyncEcho if kind in ("tcp", "tls", "proxied") else AsyncUdpEcho
    else:

        class Echo(ts.StreamHandler):  # type: ignore[misc,name-defined,unused-ignore]
            nodelay = kind == "tls" and TLS_NODELAY

            def handle(self) -> None:
                sock = self.request.socket
                while data := sock.recv(65536):
                    sock.sendall(data)

        class UdpEcho(ts.DatagramHandler):  # type: ignore[misc,name-defined,unused-ignore]
            def handle(self) -> None:
                self.request.reply(self.request.payload)

        handler = Echo if kind in ("tcp", "tls", "proxied") else UdpEcho
    address: dict[str, Any] = {"kind": "inet", "host": HOST, "port": 0}
    fields: dict[str, Any] = {"address": address, "backlog": BACKLOG}
    if histogram:
        fields["metrics"] = {"duration_histogram": True}
    transport: Any
    if kind == "tls":
        if tls is None:
            sys.exit("tls: --certfile and --keyfile are required")
        fields["tls"] = {"certfile": tls[0], "keyfile": tls[1]}
        transport = ts.TLSTransport(ts.TCPTransport())
    elif kind == "proxied":
        fields["proxy_protocol"] = ts.ProxyProtocolConfig(mode="required")
        transport = ts.ProxyProtocolTransport(ts.TCPTransport())
    else:
        transport = ts.TCPTransport() if kind == "tcp" else ts.UDPTransport()
    config = ts.ServerConfig.model_validate(fields)
    return ts.Server(config=config, transport=transport, strategy=strategy, handler=handler)


def typedserve_line_server(spec: str) -> Any:
    """A bound typedserve line echo server with the strategy ``spec`` and the default config
    except the address (what a user gets out of the box): a ``StreamHandler`` with
    ``framing = Lines()``, or for ``AsyncIO`` an async handler that reads one line."""
    ts = import_typedserve()
    from typedserve.framing import Lines

    strategy = make_strategy(spec)
    handler: Any
    if is_async(strategy):
        from typedserve.aio.handlers import AsyncHandler  # type: ignore[import-not-found,unused-ignore]

        class AsyncLineEcho(AsyncHandler):  # type: ignore[misc,type-arg,unused-ignore]
            async def handle(self) -> None:
                self.request.write(await self.request.readline())
                await self.request.drain()

        handler = AsyncLineEcho
    else:

        class LineEcho(ts.StreamHandler):  # type: ignore[misc,name-defined,unused-ignore]
            framing = Lines()

            def handle(self) -> None:
                self.wfile.write(self.rfile.readline())

        handler = LineEcho
    config = ts.ServerConfig.model_validate({"address": {"kind": "inet", "host": HOST, "port": 0}})
    return ts.Server(config=config, transport=ts.TCPTransport(), strategy=strategy, handler=handler)


def typedserve_file_server(kind: str, spec: str) -> Any:
    """The ``files`` (``rfile.read1`` -> ``wfile.write``) or ``file-lines`` (``for line in
    self.rfile``) echo on a ``StreamHandler``, as the stdlib rows write it."""
    ts = import_typedserve()

    class FileEcho(ts.StreamHandler):  # type: ignore[misc,name-defined,unused-ignore]
        def handle(self) -> None:
            while data := self.rfile.read1(65536):
                self.wfile.write(data)

    class FileLineEcho(ts.StreamHandler):  # type: ignore[misc,name-defined,unused-ignore]
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line)

    handler = FileEcho if kind == "files" else FileLineEcho
    address: dict[str, Any] = {"kind": "inet", "host": HOST, "port": 0}
    config = ts.ServerConfig.model_validate({"address": address, "backlog": BACKLOG})
    strategy = make_strategy(spec)
    return ts.Server(config=config, transport=ts.TCPTransport(), strategy=strategy, handler=handler)


def run_typedserve(kind: str, spec: str, tls: tuple[str, str] | None = None) -> None:
    """Serve ``typedserve-SPEC``; ``SPEC+metrics[+histogram]`` (the ``metrics`` rows) also
    serves ``/metrics`` (and keeps the request-duration histogram)."""
    spec, *options = spec.split("+")
    if kind == "metrics":
        kind = "tcp"
    elif options:
        sys.exit(f"+{'+'.join(options)}: only the metrics rows have options")
    if not set(options) <= {"metrics", "histogram"}:
        sys.exit(f"unknown options {options!r}: +metrics, +metrics+histogram")
    with typedserve_server(kind, spec, tls, histogram="histogram" in options) as server:
        if "metrics" not in options:
            announce(server.address[1])
            server.serve_forever()
            return
        from typedserve.metrics import MetricsEndpoint, register  # type: ignore[import-not-found,unused-ignore]

        register(server, name="bench")
        with MetricsEndpoint(HOST, 0) as endpoint:
            announce(server.address[1], endpoint.url)
            server.serve_forever()


def default_concurrency(strategy: Any) -> int | None:
    """How many requests a strategy built with its defaults runs at once (``None``: no bound)."""
    per_worker = getattr(strategy, "threads_per_worker", None)
    if isinstance(per_worker, int):  # Prefork: a pool of threads in each worker
        return int(strategy.workers) * per_worker
    for attribute in ("max_workers", "max_children", "workers", "capacity"):
        value = getattr(strategy, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "kind",
        choices=[
            *("tcp", "udp", "lines", "files", "file-lines", "tls", "proxied", "metrics"),
            "list-strategies",
        ],
    )
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--certfile", help="tls: the server certificate (PEM)")
    parser.add_argument("--keyfile", help="tls: its private key (PEM)")
    args = parser.parse_args()
    kind: str = args.kind
    name: str = args.name
    tls = (args.certfile, args.keyfile) if args.certfile and args.keyfile else None
    if kind == "list-strategies":  # "Name N": N requests run at once by default ("-": unbounded)
        for strategy_name, cls in discover_strategies().items():
            strategy = cls()
            print(strategy_name, "-" if (n := default_concurrency(strategy)) is None else n)
        return
    if kind == "proxied" and not name.startswith("typedserve-"):
        sys.exit(f"no proxied server named {name!r} (typedserve-<Strategy> only)")
    start_watchdog(args.max_seconds)
    if name.startswith("stdlib-"):
        run_stdlib(kind, name, tls)
    elif name in ("asyncio-streams", "asyncio-protocol", "uvloop-protocol", "uvloop-streams"):
        run_asyncio(kind, name, tls)
    elif name.startswith("typedserve-"):
        run_typedserve(kind, name.removeprefix("typedserve-"), tls)
    else:
        sys.exit(f"unknown server {name!r}")


if __name__ == "__main__":
    main()
