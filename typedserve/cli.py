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
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import logging
import os
import select
import signal
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

from typedserve.config import InetAddress, ServerConfig
from typedserve.errors import ConfigError, TypedServeError
from typedserve.handlers import Handler
from typedserve.requests import Datagram, StreamRequest
from typedserve.server import Server
from typedserve.strategies.base import Strategy
from typedserve.transports import (
    TCPTransport,
    UDPTransport,
    UnixDatagramTransport,
    UnixStreamTransport,
)

if typing.TYPE_CHECKING:
    from typedserve.strategies.aio import AsyncIO

__all__ = ["STOP_MARGIN", "STRATEGY_NAMES", "main", "run_until_signal", "strategy_from_name"]

logger = logging.getLogger("typedserve.cli")

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

STOP_MARGIN: Final = 5.0
"""Seconds past ``shutdown.grace`` within which the ``typedserve`` command's process exits once
the stop began (see the module docstring)."""

_INTERRUPT_AFTER = 1.0  # past the grace: interrupt a main-thread loop its cut did not free
_EXIT_AFTER = STOP_MARGIN - 1.0  # past the grace: exit, leaving a second for the exit itself


class _Rejected(Exception):
    """A user mistake: printed as ``typedserve: <message>``, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)  # a usage error exits 2 here, with argparse's message
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except _Rejected as exc:
        print(f"typedserve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # SIGINT before the signal handlers were installed
        print("typedserve: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _rejections() -> Iterator[None]:
    """Turn what typedserve rejects while setting up (config, target, address) into exit 2."""
    try:
        yield
    except (TypedServeError, OSError) as exc:
        raise _Rejected(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="typedserve", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve a handler class or a server factory")
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


# -- serve: what the target is --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    with _rejections():
        _check_workers(args.workers)
        config = ServerConfig.load(toml=args.config, overrides=_overrides(args))
        target = _import_target(args.target)
        shape = _handler_shape(args.target, target) if isinstance(target, type) else None
        if shape is not None:
            server = _server_for_handler(shape, config, args)
        else:
            server = _server_from_factory(args.target, target, config, args)
    return _serve_until_signal([server])


def _import_target(spec: str) -> object:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise TypedServeError(
            f"expected MODULE:ATTR (e.g. typedserve.demo:StreamEcho), got {spec!r}"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current directory are found
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TypedServeError(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the module's own code failed: say what, not where
        logger.debug("importing %s failed", module_name, exc_info=True)
        raise TypedServeError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc} (-v shows the traceback)"
        ) from None
    value: object = module
    for name in attr.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise TypedServeError(f"module {module_name!r} has no attribute {attr!r}") from None
    return value


@dataclass(frozen=True, slots=True)
class _HandlerShape:
    """A handler class as the command line serves it."""

    cls: type
    is_async: bool
    datagram: bool | None  # None: the class does not say; --udp decides


def _handler_shape(spec: str, cls: type) -> _HandlerShape | None:
    """Describe ``cls`` if it is a handler class (``None`` if it is another class); raise if it
    is one the command line cannot serve."""
    from typedserve.aio import AsyncHandler, AsyncStream

    base: type
    stream_type: type
    if issubclass(cls, Handler):
        base, is_async, stream_type = Handler, False, StreamRequest
    elif issubclass(cls, AsyncHandler):
        base, is_async, stream_type = AsyncHandler, True, AsyncStream
    else:
        return None
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise TypedServeError(f"{spec} is abstract: it does not implement {missing}")
    _check_methods(spec, cls, is_async)
    request, state, *_ = (*_type_arguments(cls, base), None, None)
    datagram: bool | None
    if request is stream_type:
        datagram = False
    elif request is Datagram:
        datagram = True
    elif request is None or request is Any or isinstance(request, typing.TypeVar):
        datagram = None
    else:
        raise TypedServeError(
            f"{spec} handles {_type_name(request)} requests; the command line serves "
            f"{stream_type.__name__} and Datagram handlers: serve a factory(config) -> Server"
        )
    if _needs_state(state):
        raise TypedServeError(
            f"{spec} expects shared state ({_type_name(state)}), which the command line cannot "
            "create: serve a factory(config) -> Server that passes state=..."
        )
    return _HandlerShape(cls, is_async, datagram)


def _check_methods(spec: str, cls: type, is_async: bool) -> None:
    for name in ("setup", "handle", "finish", "close"):
        if inspect.iscoroutinefunction(getattr(cls, name)) == is_async:
            continue
        if is_async:
            raise TypedServeError(
                f"{spec}.{name} is not a coroutine function: an AsyncHandler's methods are "
                "`async def`"
            )
        raise TypedServeError(
            f"{spec}.{name} is `async def` but the class is a synchronous handler: subclass "
            "typedserve.aio.AsyncHandler[AsyncStream] or AsyncHandler[Datagram]"
        )


def _type_arguments(cls: type, generic: type) -> tuple[object, ...]:
    """What ``cls`` passes for ``generic``'s type parameters through its bases (``()`` if
    unknown), e.g. ``(AsyncStream, None)`` for ``class Echo(AsyncHandler[AsyncStream])``."""
    bases: tuple[Any, ...] = cls.__dict__.get("__orig_bases__", cls.__bases__)
    for base in bases:
        origin = typing.get_origin(base) or base
        if not (isinstance(origin, type) and issubclass(origin, generic)):
            continue
        args = typing.get_args(base)
        if origin is generic:
            return args
        parameters = dict(zip(getattr(origin, "__parameters__", ()), args, strict=False))
        return tuple(parameters.get(arg, arg) for arg in _type_arguments(origin, generic))
    return ()


def _needs_state(state: object) -> bool:
    """Whether a handler's state type rules out ``None`` (the command line has no state)."""
    if state is None or state is type(None) or state is object or state is Any:
        return False
    origin = typing.get_origin(state)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) not in typing.get_args(state)
    return isinstance(state, type) or isinstance(origin, type)


def _type_name(value: object) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


# -- serve: building the server -------------------------------------------------------------------


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise TypedServeError(f"--workers must be at least 1, got {workers}")


def _server_for_handler(
    shape: _HandlerShape, config: ServerConfig, args: argparse.Namespace
) -> AnyServer:
    """Check the flags against the handler, then build (and bind) its server."""
    name = shape.cls.__name__
    if shape.datagram is False and args.udp:
        raise TypedServeError(f"{args.target} is a stream handler; it cannot serve --udp")
    strategy_name = args.strategy or ("asyncio" if shape.is_async else "threads")
    if shape.is_async and strategy_name != "asyncio":
        raise TypedServeError(
            f"{args.target} is an async handler: it runs only with --strategy asyncio "
            f"(the default for it), not {strategy_name}"
        )
    if not shape.is_async and strategy_name == "asyncio":
        raise TypedServeError(
            f"{args.target} is a synchronous handler: --strategy asyncio serves async handlers "
            f"(typedserve.aio.AsyncHandler); use inline, threads, pool, fork or prefork for {name}"
        )
    strategy = strategy_from_name(strategy_name, args.workers)
    datagram = args.udp if shape.datagram is None else shape.datagram
    unix = config.address.kind == "unix"
    transport: Any
    if datagram:
        transport = UnixDatagramTransport() if unix else UDPTransport()
    else:
        transport = UnixStreamTransport() if unix else TCPTransport()
    handler: Any = shape.cls  # the checks above made the pairing the overloads require
    server: AnyServer = Server(
        config=config, transport=transport, handler=handler, strategy=strategy
    )
    return server


def strategy_from_name(name: str, workers: int | None = None) -> Strategy | AsyncIO:
    """Build the strategy ``--strategy NAME --workers N`` describes.

    Raises :class:`~typedserve.errors.TypedServeError` naming the flag when ``NAME`` is unknown
    or unavailable, or when ``--workers`` is below 1 or given to a strategy it does not size.
    """
    from typedserve import strategies

    if name not in _STRATEGIES:
        raise TypedServeError(f"--strategy {name!r}: choose from {', '.join(STRATEGY_NAMES)}")
    class_name, size_keyword = _STRATEGIES[name]
    _check_workers(workers)
    if workers is not None and size_keyword is None:
        sized = ", ".join(n for n, (_, keyword) in _STRATEGIES.items() if keyword)
        raise TypedServeError(
            f"--workers sizes --strategy {sized}; --strategy {name} has no size "
            "(bound the requests in flight with limits.max_in_flight instead)"
        )
    cls = getattr(strategies, class_name, None)
    if cls is None:
        raise TypedServeError(f"--strategy {name} is not available in this version")
    kwargs = {size_keyword: workers} if size_keyword and workers is not None else {}
    try:
        strategy: Strategy | AsyncIO = cls(**kwargs)
    except ValueError as exc:
        raise TypedServeError(f"--strategy {name} --workers {workers}: {exc}") from None
    return strategy


def _server_from_factory(
    spec: str, factory: object, config: ServerConfig, args: argparse.Namespace
) -> AnyServer:
    """Call ``factory(config)`` and check that it made a server."""
    if isinstance(factory, type) and not issubclass(factory, Server):
        raise TypedServeError(
            f"{spec} is a class but not a handler: subclass typedserve.handlers.StreamHandler "
            "or DatagramHandler, or typedserve.aio.AsyncHandler, or give a factory(config)"
        )
    if not callable(factory):
        raise TypedServeError(
            f"{spec} is an object of type {type(factory).__name__}, not a handler class or "
            "a factory(config)"
        )
    flags = [flag for flag, value in _handler_flags(args) if value]
    if flags:
        raise TypedServeError(
            f"{spec} is a factory that builds its own server: {', '.join(flags)} cannot change "
            "it (they apply to a handler class; set the strategy and transport in the factory)"
        )
    try:
        signature: inspect.Signature | None = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have none: calling them will tell
        signature = None
    if signature is not None:
        try:
            signature.bind(config)
        except TypeError as exc:
            raise TypedServeError(f"{spec} is not a factory(config) -> Server: {exc}") from None
    try:
        server = factory(config)
    except TypedServeError:
        raise  # already names the address or the field
    except Exception as exc:
        logger.debug("%s(config) raised", spec, exc_info=True)
        raise TypedServeError(
            f"{spec}(config) raised {type(exc).__name__}: {exc} (-v shows the traceback)"
        ) from None
    if not isinstance(server, Server):
        raise TypedServeError(f"{spec}(config) returned {server!r}, not a typedserve Server")
    server.bind()  # a factory may build it with bind=False
    return server


def _handler_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    return [("--strategy", args.strategy), ("--workers", args.workers), ("--udp", args.udp)]


# -- running until a signal -----------------------------------------------------------------------


def run_until_signal(servers: Sequence[AnyServer]) -> int:
    """Serve every server (the first on this thread) until SIGINT/SIGTERM; close all.

    Must run on the main thread: it installs SIGINT and SIGTERM handlers (restored on return).
    The stop follows the module docstring. It begins at the first signal, or when the first
    server's loop returns (e.g. a handler called ``context.shutdown()``), and drains every
    server with its own ``shutdown.grace``. A handler holding this thread one second past the
    grace is interrupted; a second signal, or servers still not stopped 4 s after the largest
    grace, end the process at once (``os._exit(1)``). Threads still running once the servers
    are closed (a ``ThreadPerRequest`` handler that ignored its cut) are the caller's: the
    interpreter waits for them at exit unless they are daemon threads. Returns 0, or 1 if a
    server's loop on another thread failed (logged, and every server stopped); an exception
    from the first server's loop propagates once every server is closed.
    """
    return _run_until_signal(servers).status


def _run_until_signal(servers: Sequence[AnyServer]) -> _Stop:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "run_until_signal() installs signal handlers: call it on the main thread"
        )
    primary, *others = servers
    stop = _Stop(servers)
    previous = {sig: signal.signal(sig, stop.on_signal) for sig in _STOP_SIGNALS}
    threads = [
        threading.Thread(target=stop.serve_other, args=(server,), name=f"typedserve-{index}")
        for index, server in enumerate(others, 1)
    ]
    try:
        stop.start()
        for thread in threads:
            thread.start()
        for server in servers:
            print(f"typedserve: serving {_describe(server)}", file=sys.stderr, flush=True)
        stop.serve_main(primary)
    finally:
        try:
            stop.begin()
            stop.wait_drained()
            for thread in threads:
                if thread.ident is not None:
                    thread.join()
            for server in servers:
                server.close()
            print("typedserve: stopped", file=sys.stderr, flush=True)
        finally:
            stop.finish()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            stop.release()
    return stop


def _serve_until_signal(servers: Sequence[AnyServer]) -> int:
    """:func:`run_until_signal` for the command, which owns the whole process: threads still
    running when the servers are closed (handler threads that ignored their cut) get until 4 s
    after the grace, then the process exits without them, with the same status."""
    stop = _run_until_signal(servers)
    deadline = (stop.deadline or time.monotonic()) + _EXIT_AFTER
    lingering = [
        thread
        for thread in threading.enumerate()
        if not thread.daemon and thread is not threading.current_thread()
    ]
    for thread in lingering:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [thread.name for thread in lingering if thread.is_alive()]
    if left:
        _exit_now(
            stop.status,
            f"{len(left)} thread(s) still running {_EXIT_AFTER:g} s after the grace although "
            f"their requests were cut ({', '.join(left)}); exiting without them",
        )
    return stop.status


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_BEGIN = 0  # wake-up byte: begin the stop (the main loop returned); a signal sends its number
_DONE = 255  # wake-up byte: every server is closed


class _HeldPastGrace(BaseException):
    """Raised on the main thread in a loop that a handler held past the grace and its cut."""


class _Stop:
    """The stop sequence of :func:`run_until_signal` (see the module docstring).

    Threads: the signal handler runs on the main thread and only writes a byte to a pipe (no
    lock, so it cannot deadlock with the code it interrupted). The ``typedserve-stop`` thread,
    started before serving (so no thread starts in a signal handler), reads the pipe: at the
    first byte it starts one ``typedserve-drain`` thread per server calling
    ``server.shutdown(grace)``, then watches the deadlines and for a second signal. The main
    thread joins the drain threads, closes the servers, then joins the stop thread.
    """

    def __init__(self, servers: Sequence[AnyServer]) -> None:
        self.status = 0
        """0, or 1 once a server's loop failed."""
        self.deadline: float | None = None
        """When the largest grace ends (``time.monotonic()``), once the stop began."""
        self._servers = servers
        self._grace = max(server.config.shutdown.grace for server in servers)
        # Open before the signal handlers are installed, so no signal is lost before start().
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watcher = threading.Thread(target=self._watch, name="typedserve-stop")
        self._drains: list[threading.Thread] = []
        self._drains_started = threading.Event()
        self._main = threading.get_ident()
        self._in_loop = False  # the main thread is serving (only it writes this)
        self._interrupting = False  # the next signal on the main thread is the watcher's
        self._begun_at: float | None = None  # when the stop was asked for, first

    # -- the main thread ----------------------------------------------------------------------

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The SIGINT/SIGTERM handler (main thread): tell the watcher, or interrupt the loop."""
        if self._interrupting:
            self._interrupting = False
            if self._in_loop:
                raise _HeldPastGrace("the stop interrupted a handler that held the main thread")
            return
        self._ask(signum)

    def start(self) -> None:
        """Start the watcher thread (it reads any signal that came before)."""
        self._watcher.start()

    def serve_main(self, server: AnyServer) -> None:
        """Serve ``server`` on this (the main) thread until its loop stops."""
        try:
            self._in_loop = True
            try:
                server.serve_forever()
            finally:
                self._in_loop = False
        except _HeldPastGrace:  # the stop goes on as if the loop had returned
            logger.warning("where the handler was interrupted:", exc_info=True)

    def serve_other(self, server: AnyServer) -> None:
        """Serve ``server`` on a thread of its own; a failure stops every server."""
        try:
            server.serve_forever()
        except Exception:
            logger.exception("serving %s failed; stopping every server", _describe(server))
            self.status = 1
            self._ask(_BEGIN)

    def begin(self) -> None:
        """Begin the stop if no signal did yet: drain every server."""
        self._ask(_BEGIN)

    def wait_drained(self) -> None:
        """Wait until every server's ``shutdown(grace)`` returned."""
        if not self._watcher.is_alive() and not self._drains_started.is_set():
            self._start_drains()  # no watcher (it could not start): drain from here
        self._drains_started.wait()
        for drain in self._drains:
            drain.join()

    def finish(self) -> None:
        """Every server is closed: tell the watcher and join it."""
        self._poke(_DONE)
        if self._watcher.is_alive():
            self._watcher.join()

    def release(self) -> None:
        """Close the wake-up pipe (once the signal handlers are restored)."""
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- the watcher thread -------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            first = self._next_byte(None)
            self._start_drains()
            cause = (
                "" if first in (None, _BEGIN, _DONE) else f"{signal.Signals(first).name} received: "
            )
            print(
                f"typedserve: {cause}stopping; requests in flight have up to {self._grace:g} s "
                "(SIGINT or SIGTERM again exits at once)",
                file=sys.stderr,
                flush=True,
            )
            if first != _DONE:
                self._watch_deadlines()
        except Exception:
            logger.exception("the stop watcher failed")
        finally:
            self._drains_started.set()

    def _start_drains(self) -> None:
        if self._drains_started.is_set():
            return
        self.deadline = (self._begun_at or time.monotonic()) + self._grace
        self._drains = [
            threading.Thread(target=_drain, args=(server,), name="typedserve-drain")
            for server in self._servers
        ]
        for drain in self._drains:
            drain.start()
        self._drains_started.set()

    def _watch_deadlines(self) -> None:
        """Until the main thread is done: interrupt it if a handler holds it past the grace,
        exit if the stop outlasts its bound, exit at once on a second signal."""
        assert self.deadline is not None
        interrupt_at = self.deadline + _INTERRUPT_AFTER
        exit_at = self.deadline + _EXIT_AFTER
        while True:
            now = time.monotonic()
            if now >= exit_at:
                _exit_now(1, f"the servers did not stop {_EXIT_AFTER:g} s after the grace")
            if now >= interrupt_at:
                interrupt_at = exit_at
                self._interrupt_main()
            received = self._next_byte(min(interrupt_at, exit_at) - now)
            if received == _DONE:
                return
            if received not in (None, _BEGIN):
                name = signal.Signals(received).name
                _exit_now(1, f"{name} again: exiting now, without waiting for requests in flight")

    def _interrupt_main(self) -> None:
        if not self._in_loop:
            return
        print(
            f"typedserve: a handler still holds the main thread {_INTERRUPT_AFTER:g} s after the "
            "grace although its connection was cut; interrupting it",
            file=sys.stderr,
            flush=True,
        )
        self._interrupting = True
        signal.pthread_kill(self._main, signal.SIGTERM)

    # -- both -----------------------------------------------------------------------------------

    def _ask(self, value: int) -> None:
        """Tell the watcher; the first request starts the clock (the watcher may wake late)."""
        if self._begun_at is None:
            self._begun_at = time.monotonic()
        self._poke(value)

    def _poke(self, value: int) -> None:
        # Full: the watcher has plenty to read already. Closed (-1): everything is over.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, bytes((value,)))

    def _next_byte(self, timeout: float | None) -> int | None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1)):
            return None
        return os.read(self._wake_r, 1)[0]


def _exit_now(status: int, message: str) -> typing.NoReturn:
    """End the process at once (after flushing stdio), waiting for nothing."""
    print(f"typedserve: {message}", file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(status)


def _drain(server: AnyServer) -> None:
    """Stop ``server`` gracefully with its own grace (the drain report is logged)."""
    try:
        server.shutdown(server.config.shutdown.grace)
    except Exception:
        logger.exception("draining %s failed", _describe(server))


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

    with _rejections():
        overrides = _overrides(args)
        config = DEMO_CONFIG.with_overrides(overrides) if overrides else DEMO_CONFIG
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
    return _serve_until_signal([tcp, udp])


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
