"""The ``typedserve`` command: ``serve``, ``demo`` and ``check-config``.

``typedserve serve MODULE:ATTR`` serves a handler class (the transport follows the handler and
the flags) or calls a factory ``ATTR(config) -> Server``. The config is layered: defaults <
``--config FILE`` (TOML) < ``TYPEDSERVE_*`` environment variables < flags. SIGINT and SIGTERM
stop the server gracefully (requests in flight get ``shutdown.grace`` seconds) and exit 0.
Exit status 2 means the config or the address was rejected; the message says why.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from typedserve.config import InetAddress, ServerConfig
from typedserve.errors import ConfigError, TypedServeError
from typedserve.handlers import DatagramHandler, Handler, StreamHandler
from typedserve.server import Server
from typedserve.strategies.base import Strategy
from typedserve.transports import (
    TCPTransport,
    UDPTransport,
    UnixDatagramTransport,
    UnixStreamTransport,
)

__all__ = ["STRATEGY_NAMES", "main"]

AnyServer = Server[Any, Any]

# CLI name -> (class name in typedserve.strategies, the keyword --workers sets, if any).
_STRATEGIES: dict[str, tuple[str, str | None]] = {
    "inline": ("Inline", None),
    "threads": ("ThreadPerRequest", None),
    "pool": ("ThreadPool", "max_workers"),
    "fork": ("ForkPerRequest", "max_children"),
    "prefork": ("Prefork", "workers"),
    "asyncio": ("AsyncIO", None),
}
STRATEGY_NAMES = tuple(_STRATEGIES)
"""The names ``--strategy`` accepts (those whose class this version provides)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except (TypedServeError, OSError) as exc:
        print(f"typedserve: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="typedserve", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve a handler class or a server factory")
    serve.add_argument("target", metavar="MODULE:ATTR", help="handler class or factory(config)")
    serve.add_argument("--config", metavar="FILE", help="TOML config file")
    _add_address_flags(serve)
    serve.add_argument("--udp", action="store_true", help="serve datagrams (UDP / Unix dgram)")
    serve.add_argument("--strategy", choices=STRATEGY_NAMES, default="threads")
    serve.add_argument("--workers", type=int, metavar="N", help="size for pool/fork/prefork")
    serve.set_defaults(command=_serve)

    demo = commands.add_parser("demo", help="run the embedded echo server on TCP and UDP")
    _add_address_flags(demo, unix=False)
    demo.set_defaults(command=_demo)

    check = commands.add_parser("check-config", help="validate a TOML config file")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(command=_check_config)
    return parser


def _add_address_flags(parser: argparse.ArgumentParser, *, unix: bool = True) -> None:
    parser.add_argument("--host", help="listen on this host (IPv4/IPv6 literal or name)")
    parser.add_argument("--port", type=int, help="listen on this port (0: any free port)")
    if unix:
        parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket path")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "unix", None):
        overrides = {"address.kind": "unix", "address.path": args.unix}
    if args.host is not None or args.port is not None:
        if overrides:
            raise ConfigError("--unix cannot be combined with --host/--port")
        overrides["address.kind"] = "inet"
        if args.host is not None:
            overrides["address.host"] = args.host
        if args.port is not None:
            overrides["address.port"] = args.port
    return overrides


# -- serve ----------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    config = ServerConfig.load(toml=args.config, overrides=_overrides(args))
    target = _import_target(args.target)
    if isinstance(target, type) and issubclass(target, Handler):
        server = _server_for_handler(target, config, args)
    elif callable(target):
        server = target(config)
        if not isinstance(server, Server):
            raise TypedServeError(f"{args.target} returned {server!r}, not a typedserve Server")
    else:
        raise TypedServeError(f"{args.target} is neither a handler class nor a factory")
    return run_until_signal([server])


def _import_target(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise TypedServeError(f"expected MODULE:ATTR, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current directory are found
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TypedServeError(f"cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TypedServeError(f"module {module_name!r} has no attribute {attr!r}") from None


def _server_for_handler(
    handler: type[Handler[Any, Any]], config: ServerConfig, args: argparse.Namespace
) -> AnyServer:
    datagram = issubclass(handler, DatagramHandler) or args.udp
    if datagram and issubclass(handler, StreamHandler):
        raise TypedServeError(f"{handler.__name__} is a StreamHandler; it cannot serve --udp")
    unix = config.address.kind == "unix"
    transport: Any
    if datagram:
        transport = UnixDatagramTransport() if unix else UDPTransport()
    else:
        transport = UnixStreamTransport() if unix else TCPTransport()
    return Server(
        config=config,
        transport=transport,
        handler=handler,
        strategy=strategy_from_name(args.strategy, args.workers),
    )


def strategy_from_name(name: str, workers: int | None = None) -> Strategy:
    """Build the strategy ``--strategy NAME --workers N`` describes."""
    from typedserve import strategies

    class_name, size_keyword = _STRATEGIES[name]
    cls = getattr(strategies, class_name, None)
    if cls is None:
        raise TypedServeError(f"strategy {name!r} is not available in this version")
    kwargs = {size_keyword: workers} if size_keyword and workers is not None else {}
    strategy: Strategy = cls(**kwargs)
    return strategy


def run_until_signal(servers: Sequence[AnyServer]) -> int:
    """Serve every server (the first on this thread) until SIGINT/SIGTERM; close all; return 0."""
    primary, *others = servers

    def stop(signum: int, frame: FrameType | None) -> None:
        for server in servers:
            server.request_shutdown()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    threads = [
        threading.Thread(target=server.serve_forever, name=f"typedserve-{index}")
        for index, server in enumerate(others, 1)
    ]
    try:
        for thread in threads:
            thread.start()
        for server in servers:
            print(f"typedserve: serving {_describe(server)}", file=sys.stderr, flush=True)
        primary.serve_forever()
    finally:
        for server in servers:
            server.close()
        for thread in threads:
            thread.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("typedserve: stopped", file=sys.stderr, flush=True)
    return 0


def _describe(server: AnyServer) -> str:
    kind = type(server.transport).__name__.removesuffix("Transport")
    return f"{kind} on {_format_address(server.address)} with {type(server.strategy).__name__}"


def _format_address(address: Any) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


# -- demo -----------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from typedserve.demo import DEMO_CONFIG, DatagramEcho, StreamEcho
    from typedserve.strategies import ThreadPerRequest

    config = DEMO_CONFIG.with_overrides(_overrides(args)) if _overrides(args) else DEMO_CONFIG
    tcp = Server(
        config=config, transport=TCPTransport(), handler=StreamEcho, strategy=ThreadPerRequest()
    )
    try:
        # The UDP echo shares the TCP port (the real one, when --port 0 asked for any).
        assert isinstance(config.address, InetAddress)
        udp_config = config.with_overrides({"address.port": tcp.address[1]})
        udp = Server(config=udp_config, transport=UDPTransport(), handler=DatagramEcho)
    except BaseException:
        tcp.close()
        raise
    host, port = _client_host(tcp.address[0]), tcp.address[1]
    print(
        "typedserve demo: an echo server. Talk to it from another terminal:\n"
        f"  TCP {_format_address(tcp.address)}   printf 'hello\\n' | nc -N {host} {port}"
        f"      (or: socat - TCP:{host}:{port})\n"
        f"  UDP {_format_address(udp.address)}   printf 'hello\\n' | nc -u -w1 {host} {port}"
        f"   (or: socat - UDP:{host}:{port})\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    return run_until_signal([tcp, udp])


def _client_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


# -- check-config ---------------------------------------------------------------------------------


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = ServerConfig.load(toml=args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"# {args.file}: valid. Effective config (defaults < file < TYPEDSERVE_* environment):")
    print(config.model_dump_json(indent=2))
    return 0
