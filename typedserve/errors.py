"""The exception hierarchy: every error typedserve raises derives from :class:`TypedServeError`."""

from __future__ import annotations

__all__ = [
    "BindError",
    "ConfigError",
    "FramingError",
    "ServerClosedError",
    "ServerStateError",
    "StrategyMismatchError",
    "TransportMismatchError",
    "TypedServeError",
]


class TypedServeError(Exception):
    """Base class of every error raised by typedserve itself."""


class ConfigError(TypedServeError, ValueError):
    """A configuration value was rejected.

    The message names each offending field (dotted path), the value given and the rule broken,
    one problem per line. ``problems`` holds the same as ``(field, value, rule)`` tuples.
    """

    def __init__(self, message: str, problems: tuple[tuple[str, object, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class BindError(TypedServeError, OSError):
    """The listening endpoint could not be created, bound or activated.

    It is also an :class:`OSError` carrying the original ``errno``, so code written for the stdlib
    (``except OSError``) keeps working; the message names the address and, where one is known,
    the fix.
    """

    def __init__(self, errno: int | None, message: str, address: object = None) -> None:
        super().__init__(errno, message)
        self.address = address

    def __str__(self) -> str:
        return str(self.strerror)


class TransportMismatchError(TypedServeError, ValueError):
    """An inherited socket's family or type does not match the transport it was given to."""


class ServerClosedError(TypedServeError, RuntimeError):
    """An operation needs an open server, but it was closed."""


class ServerStateError(TypedServeError, RuntimeError):
    """An operation is not possible in the server's current phase (e.g. ``serve_forever`` while
    another thread serves)."""


class StrategyMismatchError(TypedServeError, TypeError):
    """The strategy cannot do what was asked: ``handle_request`` on a strategy that owns its
    loop (``AsyncIO``), or a handler of the wrong kind for the strategy."""


class FramingError(TypedServeError, ValueError):
    """A peer's bytes broke the framing its handler declares (:mod:`typedserve.framing`).

    Raised by a framer when a frame grows past its maximum or the peer closes the connection
    inside a frame. The connection cannot be resynchronised: close it. The message names the
    framing, the limit and the size seen; ``limit`` and ``size`` hold the same numbers (``limit``
    is ``None`` for an error that is not about a limit, such as end-of-file inside a frame).
    """

    def __init__(self, message: str, *, limit: int | None = None, size: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.size = size
