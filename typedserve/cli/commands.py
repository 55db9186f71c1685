"""What each ``typedserve`` subcommand does, once :func:`typedserve.cli.main` parsed its flags.

``serve`` and ``demo`` check everything they can before binding (a mistake raises
:class:`Rejected`: exit status 2), then serve until a signal (:mod:`typedserve.cli.stopping`).
``check-config`` only reads and validates a file.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typedserve.cli.demo_tls import self_signed
from typedserve.cli.metrics import CommandMetrics, metrics_overrides
from typedserve.cli.stopping import format_address, serve_until_signal
from typedserve.cli.targets import (
    check_workers,
    handler_shape,
    import_target,
    server_for_handler,
    server_from_factory,
)
from typedserve.config import InetAddress, ServerConfig
from typedserve.errors import ConfigError, TypedServeError
from typedserve.server import Server
from typedserve.tls.context import build_context
from typedserve.transports import TCPTransport, UDPTransport
from typedserve.transports.tls import TLSTransport

__all__ = ["Rejected", "check_config", "demo", "serve"]


class Rejected(Exception):
    """A user mistake: printed as ``typedserve: <message>``, exit status 2."""


@contextlib.contextmanager
def _rejections() -> Iterator[None]:
    """Turn what typedserve rejects while setting up (config, target, address) into exit 2."""
    try:
        yield
    except (TypedServeError, OSError) as exc:
        raise Rejected(str(exc)) from None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = _fd_overrides(args)
    if getattr(args, "unix", None):
        if overrides:
            raise ConfigError("--unix cannot be combined with --fd/--fdname")
        overrides = {"address.kind": "unix", "address.path": args.unix}
    if args.host is not None or args.port is not None:
        if overrides:
            given = "--unix" if overrides["address.kind"] == "unix" else "--fd/--fdname"
            raise ConfigError(f"{given} cannot be combined with --host/--port")
        overrides["address.kind"] = "inet"
        if args.host is not None:
            overrides["address.host"] = args.host
        if args.port is not None:
            overrides["address.port"] = args.port
    if getattr(args, "access_log", False):
        overrides["access_log.enabled"] = True
    return overrides | _tls_overrides(args) | _proxy_overrides(args) | metrics_overrides(args)


def _fd_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--fd FD|systemd`` and ``--fdname NAME`` (which implies ``--fd systemd``) as
    ``address.*`` fields."""
    fd, name = getattr(args, "fd", None), getattr(args, "fdname", None)
    if fd is None and name is None:
        return {}
    if fd is None:
        fd = "systemd"
    elif fd != "systemd":
        if not fd.isdigit():
            raise ConfigError(f"--fd: {fd!r} is neither a file descriptor number nor 'systemd'")
        fd = int(fd)
    overrides: dict[str, Any] = {"address.kind": "fd", "address.fd": fd}
    if name is not None:
        overrides["address.name"] = name
    return overrides


def _tls_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--certfile``, ``--keyfile`` and ``--client-ca`` (``serve`` only) as ``tls.*`` fields;
    ``--client-ca`` also requires a client certificate."""
    names = ("certfile", "keyfile", "client_ca")
    given = {name: getattr(args, name, None) for name in names}
    overrides = {f"tls.{name}": value for name, value in given.items() if value is not None}
    if "tls.client_ca" in overrides:
        overrides["tls.client_auth"] = "required"
    return overrides


def _proxy_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--proxy-protocol MODE`` and ``--proxy-trusted CIDR`` (``serve`` only) as
    ``proxy_protocol.*`` fields."""
    overrides: dict[str, Any] = {}
    mode, trusted = getattr(args, "proxy_protocol", None), getattr(args, "proxy_trusted", None)
    if mode is not None:
        overrides["proxy_protocol.mode"] = mode
    if trusted:
        overrides["proxy_protocol.trusted"] = tuple(trusted)
    return overrides


# -- serve ----------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """``typedserve serve MODULE:ATTR``: build the target's server (see
    :mod:`typedserve.cli.targets`), then serve it until a signal."""
    with _rejections():
        metrics = CommandMetrics(args)
        check_workers(args.workers)
        config = ServerConfig.load(toml=args.config, overrides=_overrides(args))
        if config.tls is not None:  # read the certificates now: a bad one is exit 2, not a log
            build_context(config.tls)
        target = import_target(args.target)
        shape = handler_shape(args.target, target) if isinstance(target, type) else None
        metrics.start()  # /metrics first: an address taken there leaves nothing bound
        try:
            if shape is not None:
                server = server_for_handler(shape, config, args)
            else:
                server = server_from_factory(args.target, target, config, args)
        except BaseException:
            metrics.close()
            raise
        metrics.expose([server])
    try:
        return serve_until_signal([server])
    finally:
        metrics.close()  # after the server stopped


# -- demo -----------------------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    """``typedserve demo``: the embedded echo server on TCP and UDP (one port), until a signal;
    with ``--tls``, TLS on TCP with a certificate made at start."""
    if not args.tls:
        return _demo(args, None)
    with tempfile.TemporaryDirectory(prefix="typedserve-demo-") as directory:
        with _rejections():
            pair = self_signed(Path(directory))
        return _demo(args, pair)


def _demo(args: argparse.Namespace, pair: tuple[Path, Path] | None) -> int:
    from typedserve.demo import DEMO_CONFIG, DatagramEcho, StreamEcho
    from typedserve.strategies import ThreadPerRequest

    with _rejections():
        overrides = _overrides(args)
        if pair is not None:
            overrides |= {"tls.certfile": str(pair[0]), "tls.keyfile": str(pair[1])}
        config = DEMO_CONFIG.with_overrides(overrides) if overrides else DEMO_CONFIG
        stream: Any = TCPTransport() if pair is None else TLSTransport(TCPTransport())
        tcp = Server(
            config=config, transport=stream, handler=StreamEcho, strategy=ThreadPerRequest()
        )
        try:
            # The UDP echo shares the TCP port (the real one, when --port 0 asked for any).
            assert isinstance(config.address, InetAddress)
            udp_config = config.with_overrides({"address.port": tcp.address[1], "tls": None})
            udp = Server(config=udp_config, transport=UDPTransport(), handler=DatagramEcho)
        except BaseException:
            tcp.close()
            raise
    host, port = _client_host(tcp.address[0]), tcp.address[1]
    if pair is None:
        tcp_line = f"printf 'hello\\n' | nc -N {host} {port}      (or: socat - TCP:{host}:{port})"
    else:
        tcp_line = (
            f"openssl s_client -connect {host}:{port} -CAfile {pair[0]} -quiet\n"
            f"{'':{len(format_address(tcp.address)) + 8}}(or: socat - "
            f"OPENSSL:{host}:{port},cafile={pair[0]})"
        )
    print(
        "typedserve demo: an echo server. Talk to it from another terminal:\n"
        f"  {'TLS' if pair else 'TCP'} {format_address(tcp.address)}   {tcp_line}\n"
        f"  UDP {format_address(udp.address)}   printf 'hello\\n' | nc -u -w1 {host} {port}"
        f"   (or: socat - UDP:{host}:{port})\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    return serve_until_signal([tcp, udp])


def _client_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


# -- check-config ---------------------------------------------------------------------------------


def check_config(args: argparse.Namespace) -> int:
    """``typedserve check-config FILE``: print the effective config (0) or what is wrong (1)."""
    try:
        config = ServerConfig.load(toml=args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"# {args.file}: valid. Effective config (defaults < file < TYPEDSERVE_* environment):")
    print(config.model_dump_json(indent=2))
    return 0
