"""The ``typedserve`` command: ``serve``, ``demo`` and ``check-config``.

``typedserve serve MODULE:ATTR`` serves a handler class or calls a factory
``ATTR(config) -> Server``. A handler class picks its transport (a stream handler gets TCP or a
Unix stream socket, a datagram handler UDP or a Unix datagram socket) and its default strategy
(``threads``; ``asyncio`` for a ``typedserve.aio.AsyncHandler``). The config is layered:
defaults < ``--config FILE`` (TOML) < ``TYPEDSERVE_*`` environment variables < flags.

Exit status:

- 0: ``serve``/``demo`` stopped after SIGINT or SIGTERM (or after the main server's loop
  returned on its own); ``check-config``: the file is valid.
- 1: ``check-config``: the file is invalid or unreadable. ``serve``/``demo``: a second signal
  ended the stop early, the stop outlasted its bound, a server's loop on another thread failed,
  or serving failed unexpectedly (with a traceback).
- 2: a mistake on the command line, in the config or in the target (not ``MODULE:ATTR``, not
  importable, neither a handler class nor a factory, a handler class the command cannot serve,
  a flag that does not fit it, a factory that raised or returned no ``Server``), or an address
  that cannot be bound. One line names the flag, the field or the object (a config error: a
  header, then one line per problem); no traceback (``-v`` logs the traceback of an exception
  raised by the user's module or factory). All of it is checked before anything is bound,
  except what a factory binds itself.
- 130: SIGINT before serving began.

Signals (``serve``, ``demo`` and :func:`run_until_signal`): the first SIGINT or SIGTERM begins
the stop (so does the main server's loop returning on its own). Every server stops accepting at
once, requests in flight get the server's ``shutdown.grace`` seconds, and at the deadline those
still running are cut: their connections are shut down (a handler blocked reading or writing
wakes up), their ``fork`` children or ``prefork`` workers are stopped. Then the servers are
closed and the process exits 0. Whatever the handlers do, the process exits within
``shutdown.grace`` + :data:`STOP_MARGIN` (5) seconds of the signal (the largest grace, with
several servers):

- 1 s after the grace, a handler still holding the main thread although its connection was cut
  (an ``inline`` or async handler sleeping or computing, or blocking the event loop) is
  interrupted by an exception raised where it is (for ``inline``, that place is logged).
- 4 s after the grace, handler threads still running are abandoned (the servers are closed:
  exit 0; the ``typedserve`` command only); if the servers have not stopped, the process
  exits 1.

A second SIGINT or SIGTERM while stopping exits 1 at once, without waiting for the grace: the
exit closes the connections still open; a ``fork`` child goes on until its request ends and
``prefork`` workers finish their own drain.

Logging (``serve``, ``demo``): configured once, at start: one handler on the root logger,
writing to stderr, at ``--log-level`` (default INFO; ``-v``: DEBUG), as text lines or with
``--log-format json`` one JSON object per record. ``--access-log`` enables the access log (one
INFO record per request on ``typedserve.access``; see :mod:`typedserve.access_log`).

Metrics: ``serve --metrics HOST:PORT`` serves Prometheus's ``/metrics`` for the server
(:mod:`typedserve.cli.metrics`; ``--metrics-histogram`` adds the request-duration histogram), from
before it binds until it has stopped; it needs ``pip install 'typedserve[prometheus]'``.

Under systemd: ``--fd systemd --fdname NAME`` serves the socket passed under that name
(:mod:`typedserve.activation`); with ``$NOTIFY_SOCKET`` set (``Type=notify``) the command sends
``READY=1`` once every server's loop runs and ``STOPPING=1`` when the stop begins, and the loops
ping the watchdog (:mod:`typedserve.systemd`). ``examples/deploy/`` has the units.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from typedserve.cli import commands
from typedserve.cli.logging_setup import add_logging_flags, configure_logging
from typedserve.cli.metrics import add_metrics_flags
from typedserve.cli.stopping import STOP_MARGIN, run_until_signal
from typedserve.cli.targets import STRATEGY_NAMES, strategy_from_name

# Here: the flags and main(). commands.py runs each subcommand, targets.py turns MODULE:ATTR
# into a server, stopping.py serves until a signal and bounds the stop, logging_setup.py
# configures logging (--log-level, --log-format) and adds those flags, metrics.py serves
# /metrics (--metrics).

__all__ = ["STOP_MARGIN", "STRATEGY_NAMES", "main", "run_until_signal", "strategy_from_name"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)  # a usage error exits 2 here, with argparse's message
    configure_logging(args)  # the only place logging is configured (logging_setup.py)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except commands.Rejected as exc:
        print(f"typedserve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # SIGINT before the signal handlers were installed
        print("typedserve: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="typedserve", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subcommands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = subcommands.add_parser("serve", help="serve a handler class or a server factory")
    serve.add_argument("target", metavar="MODULE:ATTR", help="handler class or factory(config)")
    serve.add_argument("--config", metavar="FILE", help="TOML config file")
    _add_address_flags(serve)
    serve.add_argument("--udp", action="store_true", help="serve datagrams (UDP / Unix dgram)")
    serve.add_argument(
        "--strategy",
        choices=STRATEGY_NAMES,
        help="where handlers run (default: threads; asyncio for an async handler)",
    )
    serve.add_argument("--workers", type=int, metavar="N", help="size for pool/fork/prefork")
    _add_tls_flags(serve)
    _add_proxy_flags(serve)
    add_logging_flags(serve)
    add_metrics_flags(serve)
    serve.set_defaults(command=commands.serve)

    demo = subcommands.add_parser("demo", help="run the embedded echo server on TCP and UDP")
    _add_address_flags(demo, unix=False)
    demo.add_argument(
        "--tls",
        action="store_true",
        help="serve TLS on TCP, with a self-signed certificate for 127.0.0.1 and localhost made "
        "at start by the openssl command (UDP stays plain)",
    )
    add_logging_flags(demo)
    demo.set_defaults(command=commands.demo)

    check = subcommands.add_parser("check-config", help="validate a TOML config file")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(command=commands.check_config)
    return parser


def _add_address_flags(parser: argparse.ArgumentParser, *, unix: bool = True) -> None:
    parser.add_argument("--host", help="listen on this host (IPv4/IPv6 literal or name)")
    parser.add_argument("--port", type=int, help="listen on this port (0: any free port)")
    if unix:
        parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket path")
        parser.add_argument(
            "--fd",
            metavar="FD|systemd",
            help="serve an inherited listening socket: an fd number, or 'systemd' for a socket "
            "passed by socket activation (address.kind = fd, address.fd)",
        )
        parser.add_argument(
            "--fdname",
            metavar="NAME",
            help="with --fd systemd (implied): the passed socket whose LISTEN_FDNAMES entry "
            "(FileDescriptorName=) is NAME (address.name)",
        )


def _add_proxy_flags(parser: argparse.ArgumentParser) -> None:
    proxy = parser.add_argument_group(
        "PROXY protocol, behind a load balancer (the [proxy_protocol] table of the config)"
    )
    proxy.add_argument(
        "--proxy-protocol",
        choices=("off", "optional", "required"),
        help="read a PROXY protocol header (v1 or v2) at the start of each connection: "
        "proxy_protocol.mode",
    )
    proxy.add_argument(
        "--proxy-trusted",
        action="append",
        metavar="CIDR",
        help="an upstream network allowed to send a header (repeatable; default: loopback): "
        "proxy_protocol.trusted",
    )


def _add_tls_flags(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS (the [tls] table of the config)")
    tls.add_argument("--certfile", metavar="FILE", help="certificate chain (PEM): tls.certfile")
    tls.add_argument("--keyfile", metavar="FILE", help="its private key (PEM): tls.keyfile")
    tls.add_argument(
        "--client-ca",
        metavar="FILE",
        help="require client certificates signed by these CAs (tls.client_ca, "
        "tls.client_auth = required)",
    )
