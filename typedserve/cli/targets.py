"""What ``typedserve serve MODULE:ATTR`` serves: resolving the target and building its server.

A target is a handler class (checked against the flags, then given a transport and a strategy)
or a factory ``ATTR(config) -> Server`` (a :class:`~typedserve.server_factory.ServerFactory`,
checked against that shape before it is called). Every mistake raises
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

from typedserve.cli.transports import (
    ADDRESSES,
    base_transport,
    check_factory_transport,
    wrap_for_config,
)
from typedserve.config import InetAddress, ServerConfig, UnixAddress
from typedserve.errors import TypedServeError
from typedserve.handlers import Handler
from typedserve.requests import (
    Datagram,
    InetSockAddr,
    IPv4SockAddr,
    IPv6SockAddr,
    StreamRequest,
    UnixDatagramPeer,
    UnixSockAddr,
)
from typedserve.server import Server
from typedserve.server_factory import ServerFactory
from typedserve.strategies.base import Strategy
from typedserve.transports.binding import listens_on_unix

if typing.TYPE_CHECKING:
    from typedserve.strategies.aio import AsyncIO

__all__ = [
    "STRATEGY_NAMES",
    "HandlerShape",
    "as_server_factory",
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
    address: object = None  # the address type it names (``StreamHandler[S, A]``); None: any


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
    address = next(iter(typing.get_args(request)), None)
    if isinstance(address, typing.TypeVar):
        address = None  # not named: the PeerAddress union, any transport's
    return HandlerShape(cls, is_async, datagram, address)


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
    unix = listens_on_unix(config.address)  # a path, or an inherited Unix socket
    transport = base_transport(datagram=datagram, unix=unix)
    given = ADDRESSES[type(transport)]
    if shape.address is not None and not _accepts(shape.address, given):
        raise TypedServeError(
            f"{args.target} is typed for {_address_name(shape.address)} addresses, but it would "
            f"be served on a {type(transport).__name__} ({_where(config)}), whose addresses "
            f"are {_address_name(given)}"
        )
    # After the address check: the wrappers keep the inner transport's addresses.
    transport = wrap_for_config(transport, config, args.target, datagram)
    handler: Any = shape.cls  # the checks above made the pairing the overloads require
    return Server(config=config, transport=transport, handler=handler, strategy=strategy)


def _accepts(declared: object, given: object) -> bool:
    """Whether a handler typed for ``declared`` addresses accepts ``given`` ones (every member
    of the ``given`` union is one of ``declared``'s; unknown forms: yes)."""
    declared_members, given_members = _union_members(declared), _union_members(given)
    if declared_members is None or given_members is None:
        return True
    return given_members <= declared_members


def _union_members(annotation: object) -> set[object] | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members: set[object] = set()
        for arg in typing.get_args(annotation):
            inner = _union_members(arg)
            if inner is None:
                return None
            members |= inner
        return members
    if annotation is None:
        return {type(None)}
    try:
        return {annotation}
    except TypeError:  # unhashable: cannot tell
        return None


def _address_name(annotation: object) -> str:
    for name, known in _ADDRESS_NAMES.items():
        if annotation == known:
            return name
    return _type_name(annotation)


_ADDRESS_NAMES: dict[str, object] = {
    "InetSockAddr": InetSockAddr,
    "IPv4SockAddr": IPv4SockAddr,
    "IPv6SockAddr": IPv6SockAddr,
    "UnixSockAddr": UnixSockAddr,
    "UnixDatagramPeer": UnixDatagramPeer,
}


def _where(config: ServerConfig) -> str:
    address = config.address
    if isinstance(address, UnixAddress):
        return f"unix:{address.path}"
    if isinstance(address, InetAddress):
        return f"{address.host}:{address.port}"
    return f"fd {address.fd}"


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


def as_server_factory(spec: str, target: object) -> ServerFactory:
    """``target`` as a :class:`~typedserve.server_factory.ServerFactory`: a callable that takes the
    config as its one required (positional) argument and is not annotated to return something
    other than a ``Server``. Raises :class:`~typedserve.errors.TypedServeError` naming ``spec``
    otherwise; what it returns is checked by :func:`server_from_factory` once called."""
    if isinstance(target, type) and not issubclass(target, Server):
        raise TypedServeError(
            f"{spec} is a class but not a handler: subclass typedserve.handlers.StreamHandler "
            "or DatagramHandler, or typedserve.aio.AsyncHandler, or give a factory(config)"
        )
    if not callable(target):
        raise TypedServeError(
            f"{spec} is an object of type {type(target).__name__}, not a handler class or "
            "a factory(config) -> Server (typedserve.ServerFactory)"
        )
    try:
        signature: inspect.Signature | None = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have none: calling them will tell
        signature = None
    if signature is not None:
        try:
            signature.bind(object())  # the config: only the arity is checked
        except TypeError as exc:
            raise TypedServeError(f"{spec} is not a factory(config) -> Server: {exc}") from None
    returns = _declared_return(target)
    if returns is not None and not _may_be_a_server(returns):
        raise TypedServeError(
            f"{spec} is not a factory(config) -> Server: it is annotated to return "
            f"{_type_name(returns)}"
        )
    factory: ServerFactory = target  # its shape is checked; the result is checked when called
    return factory


def _declared_return(target: object) -> object | None:
    """The return annotation of ``target``, resolved; ``None`` when absent or unresolvable."""
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # a name only imported for type checking, a class without hints...
        return None
    return hints.get("return")


def _may_be_a_server(annotation: object) -> bool:
    """Whether a value of the type ``annotation`` may be a ``Server`` (unknown forms: yes)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_may_be_a_server(arg) for arg in typing.get_args(annotation))
    cls = origin if isinstance(origin, type) else annotation
    if annotation is None or cls is type(None):
        return False
    if not isinstance(cls, type):
        return True  # Any, a TypeVar, a string...: cannot tell
    return issubclass(cls, Server) or issubclass(Server, cls)


def server_from_factory(
    spec: str, target: object, config: ServerConfig, args: argparse.Namespace
) -> AnyServer:
    """Check that ``target`` is a factory (:func:`as_server_factory`) and the flags do not
    try to shape its server, call ``target(config)`` and check that it made a server."""
    factory = as_server_factory(spec, target)
    flags = [flag for flag, value in _handler_flags(args) if value]
    if flags:
        raise TypedServeError(
            f"{spec} is a factory that builds its own server: {', '.join(flags)} cannot change "
            "it (they apply to a handler class; set the strategy and transport in the factory)"
        )
    try:
        made: object = factory(config)
    except TypedServeError:
        raise  # already names the address or the field
    except Exception as exc:
        logger.debug("%s(config) raised", spec, exc_info=True)
        raise TypedServeError(
            f"{spec}(config) raised {type(exc).__name__}: {exc} (-v shows the traceback)"
        ) from None
    if not isinstance(made, Server):
        raise TypedServeError(f"{spec}(config) returned {made!r}, not a typedserve Server")
    server: AnyServer = made
    check_factory_transport(spec, server, config)
    server.bind()  # a factory may build it with bind=False
    return server


def _handler_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    return [("--strategy", args.strategy), ("--workers", args.workers), ("--udp", args.udp)]
