"""What ``typedserve serve MODULE:ATTR`` serves: resolving the target and building its server.

A target is a handler class (checked against the flags, then given a transport and a strategy)
or a factory ``ATTR(config) -> Server``. Every mistake raises
:class:`~typedserve.errors.TypedServeError` with one line naming the target, the flag or the
type, before anything is bound (except what a factory binds itself).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

from typedserve.config import ServerConfig
from typedserve.errors import TypedServeError
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

__all__ = [
    "STRATEGY_NAMES",
    "HandlerShape",
    "check_workers",
    "handler_shape",
    "import_target",
    "server_for_handler",
    "server_from_factory",
    "strategy_from_name",
]

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


# -- resolving the target -------------------------------------------------------------------------


def import_target(spec: str) -> object:
    """Import ``MODULE`` and return ``MODULE.ATTR`` (``ATTR`` may be dotted), like ``python -m``
    looking in the current directory first; raise naming the module or attribute that failed."""
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
class HandlerShape:
    """A handler class as the command line serves it."""

    cls: type
    is_async: bool
    datagram: bool | None  # None: the class does not say; --udp decides


def handler_shape(spec: str, cls: type) -> HandlerShape | None:
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
    request_class = typing.get_origin(request) or request  # StreamRequest[A]: StreamRequest
    datagram: bool | None
    if request_class is stream_type:
        datagram = False
    elif request_class is Datagram:
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
    return HandlerShape(cls, is_async, datagram)


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
        return tuple(_substitute(arg, parameters) for arg in _type_arguments(origin, generic))
    return ()


def _substitute(arg: object, parameters: dict[Any, object]) -> object:
    """``arg`` with the type parameters in ``parameters`` replaced, also inside a generic
    alias (``StreamRequest[AddrT]`` becomes ``StreamRequest[InetSockAddr]``)."""
    if isinstance(arg, typing.TypeVar):
        return parameters.get(arg, arg)
    inner: tuple[object, ...] = getattr(arg, "__parameters__", ())
    if inner and typing.get_origin(arg) is not None:
        return arg[tuple(parameters.get(p, p) for p in inner)]  # type: ignore[index]
    return arg


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


# -- building the server --------------------------------------------------------------------------


def check_workers(workers: int | None) -> None:
    """Reject a ``--workers`` below 1, naming the flag."""
    if workers is not None and workers < 1:
        raise TypedServeError(f"--workers must be at least 1, got {workers}")


def server_for_handler(
    shape: HandlerShape, config: ServerConfig, args: argparse.Namespace
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
    check_workers(workers)
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


def server_from_factory(
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
