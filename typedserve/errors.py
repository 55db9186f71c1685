"""The exception hierarchy: every error typedserve raises on purpose is a :class:`TypedServeError`.

Each class also keeps the builtin base that code written for the stdlib already catches, so
``except TypedServeError`` catches everything typedserve diagnoses and ``except ValueError`` (or
``OSError``, ...) keeps working::

    TypedServeError                           the base; the CLI and a missing uvloop raise it as is
    +-- ConfigError (ValueError)              a config field or constructor argument is rejected
    +-- TransportMismatchError (ValueError)   an inherited socket does not fit its transport
    +-- FramingError (ValueError)             a peer's bytes break its handler's framing
    +-- ProxyProtocolError (ValueError)       a peer's PROXY protocol header is missing or malformed
    +-- StrategyMismatchError (TypeError)     the strategy cannot serve that handler or call
    +-- BindError (OSError)                   the listening endpoint cannot be created or bound
    +-- UnsupportedPlatformError (OSError)    the OS or Python lacks a feature (os.pidfd_open)
    +-- HandshakeError (OSError)              a client's TLS handshake failed or timed out
    +-- MissingDependencyError (ImportError)  an optional dependency (an extra) is not installed
    `-- StateError (RuntimeError)             an object is used out of order (framer fed after EOF)
        +-- ServerStateError                  the server's phase forbids the call (serving twice)
        `-- ServerClosedError                 the server, transport or strategy is closed or unbound

Outside the tree, on purpose: an I/O condition reported the way the socket would report it
(``TimeoutError`` at the ``timeouts.request`` deadline, ``ConnectionResetError`` from a lost
``AsyncStream``, ``asyncio.IncompleteReadError``); argument errors of the
``asyncio.StreamReader`` API that :class:`~typedserve.aio.AsyncStream` mirrors; the testing kit's
test failures (:class:`~typedserve.testing.LeakError`, an ``AssertionError``, and ``TimeoutError``
when a bounded wait runs out); and everything :mod:`typedserve.compat` raises, which is exactly
what :mod:`socketserver` raises. ``tests/test_errors.py`` keeps the list of such raise sites.
"""

from __future__ import annotations

from typing import Self

__all__ = [
    "BindError",
    "ConfigError",
    "FramingError",
    "HandshakeError",
    "MissingDependencyError",
    "ProxyProtocolError",
    "ServerClosedError",
    "ServerStateError",
    "StateError",
    "StrategyMismatchError",
    "TransportMismatchError",
    "TypedServeError",
    "UnsupportedPlatformError",
]


class TypedServeError(Exception):
    """Base class of every error raised by typedserve itself."""


class ConfigError(TypedServeError, ValueError):
    """A configuration value or a constructor argument was rejected.

    For a config (:class:`~typedserve.config.ServerConfig`, a TOML file, the command line) the
    message names each offending field (dotted path), the value given and the rule broken, one
    problem per line. For a constructor argument it names the class, the argument, the rule and
    the value (see :meth:`for_argument`). ``problems`` holds the same as ``(field, value, rule)``
    tuples, where they are known.
    """

    def __init__(self, message: str, problems: tuple[tuple[str, object, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    @classmethod
    def for_argument(cls, owner: str, name: str, value: object, rule: str) -> Self:
        """The error for one rejected constructor argument.

        Example: ``ConfigError.for_argument("ThreadPool", "max_workers", 0, ">= 1")`` says
        ``ThreadPool(max_workers=...) must be >= 1, got 0``, with ``problems`` set to
        ``(("max_workers", 0, ">= 1"),)``.
        """
        return cls(f"{owner}({name}=...) must be {rule}, got {value!r}", ((name, value, rule),))


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


class HandshakeError(TypedServeError, OSError):
    """A connection's TLS handshake failed or timed out (``timeouts.handshake``): the request
    never reaches its handler. Counted in ``stats().handshake_failures`` and logged as one INFO
    line with the peer and the reason (``reason``: OpenSSL's, or ``"timed out"``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingDependencyError(TypedServeError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra that installs it (``pip install 'typedserve[prometheus]'``). It is also an
    :class:`ImportError` (``name`` is the missing module), so ``except ImportError`` works."""


class UnsupportedPlatformError(TypedServeError, OSError):
    """The operating system or Python lacks a feature the requested object needs.

    Raised when the object is created (``ForkPerRequest()`` without ``os.pidfd_open``), never
    halfway through serving. The message names the missing feature and what provides it.
    """


class TransportMismatchError(TypedServeError, ValueError):
    """An inherited socket's family or type does not match the transport it was given to."""


class StateError(TypedServeError, RuntimeError):
    """An object was used out of order: the call is not possible in its current state.

    Examples: feeding a framer after end-of-file, two tasks reading one
    :class:`~typedserve.aio.AsyncStream` at once, starting a ``Trickler`` twice. It is a bug in
    the calling code, not a fault of a peer.
    """


class ServerClosedError(StateError):
    """An operation needs an open server, but it was closed."""


class ServerStateError(StateError):
    """An operation is not possible in the server's current phase (e.g. ``serve_forever`` while
    another thread serves)."""


class StrategyMismatchError(TypedServeError, TypeError):
    """The strategy cannot do what was asked: ``handle_request`` on a strategy that owns its
    loop (``AsyncIO``), or a handler or request of the wrong kind for the strategy."""


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


class ProxyProtocolError(TypedServeError, ValueError):
    """A peer's bytes are not a valid PROXY protocol header (:mod:`typedserve.proxy`).

    Raised by :func:`typedserve.proxy.parse` as soon as the bytes received prove it: a wrong
    signature, a malformed v1 line, an unknown v2 version, command or family, an address block
    too short for its family, a malformed TLV, a CRC32C mismatch. The message names the fault
    and the bytes or values involved. The connection cannot be trusted: close it.

    ``bad_signature`` is true when the bytes do not even start like a PROXY header of an
    allowed version (the peer is probably a plain client that does not speak the protocol);
    it is false once a signature matched and what follows is wrong.
    """

    def __init__(self, message: str, *, bad_signature: bool = False) -> None:
        super().__init__(message)
        self.bad_signature = bad_signature
