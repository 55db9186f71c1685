"""``socketserver`` typed as :mod:`typedserve.compat` types it: for code that keeps the import.

Put this directory on mypy's path (``mypy_path = stubs`` in the config, or ``MYPYPATH=stubs``)
and ``import socketserver`` is checked against this stub instead of typeshed's: the request
handlers are generic in the server type (``StreamRequestHandler[MyServer]`` types
``self.server``; unparametrised means ``BaseServer``, as in typeshed), and the de-facto
internals are declared. It is ``typedserve/compat/__init__.pyi`` without the functions only
compat has (``install``, ``uninstall``); ``tests/compat/test_compat_stubs.py`` keeps the two
equal. Whether the program runs on the stdlib or on ``typedserve.compat.install()``, these
are the types.
"""

import os as os
import selectors as selectors
import socket as socket
import sys as sys
import threading as threading
from collections.abc import Callable, Iterable
from io import BufferedIOBase as BufferedIOBase
from io import BytesIO
from socket import socket as _socket
from typing import Any, ClassVar, Generic, Self, TypeAlias

from _typeshed import ReadableBuffer
from typing_extensions import TypeVar

__version__: str

# The stdlib's names, in the stdlib's order.
__all__ = [  # noqa: RUF022
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "ThreadingUDPServer",
    "ThreadingTCPServer",
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
    "ThreadingMixIn",
]
if sys.platform != "win32":
    __all__ += [  # noqa: RUF022
        "ForkingUDPServer",
        "ForkingTCPServer",
        "ForkingMixIn",
        "UnixStreamServer",
        "UnixDatagramServer",
        "ThreadingUnixStreamServer",
        "ThreadingUnixDatagramServer",
    ]
    if sys.version_info >= (3, 12):
        __all__ += ["ForkingUnixStreamServer", "ForkingUnixDatagramServer"]  # noqa: RUF022

_RequestType: TypeAlias = _socket | tuple[bytes, _socket]
_Address: TypeAlias = tuple[Any, ...] | str | ReadableBuffer
_RetAddress: TypeAlias = Any
_AfUnixAddress: TypeAlias = str | ReadableBuffer
_AfInetAddress: TypeAlias = tuple[str | bytes | bytearray, int]
_AfInet6Address: TypeAlias = tuple[str | bytes | bytearray, int, int, int]

_ServerT = TypeVar("_ServerT", bound=BaseServer, default=BaseServer)

_ServerSelector: type[selectors.BaseSelector]

# The stdlib's ``from time import monotonic as time``: the clock handle_request times out on.
def time() -> float: ...

class BaseServer:
    """Base class of the servers: the request loop and the hooks subclasses override."""

    server_address: _Address
    timeout: float | None
    RequestHandlerClass: Callable[[Any, _RetAddress, Self], BaseRequestHandler[Any]]
    # De-facto API: set it to true (from a handler or a signal handler) to stop serve_forever.
    _BaseServer__shutdown_request: bool
    def __init__(
        self,
        server_address: _Address,
        RequestHandlerClass: Callable[[Any, _RetAddress, Self], BaseRequestHandler[Any]],
    ) -> None: ...
    def handle_request(self) -> None: ...
    def serve_forever(self, poll_interval: float = 0.5) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...
    def finish_request(self, request: _RequestType, client_address: _RetAddress) -> None: ...
    def get_request(self) -> tuple[Any, Any]: ...
    def handle_error(self, request: _RequestType, client_address: _RetAddress) -> None: ...
    def handle_timeout(self) -> None: ...
    def process_request(self, request: _RequestType, client_address: _RetAddress) -> None: ...
    def server_activate(self) -> None: ...
    def verify_request(self, request: _RequestType, client_address: _RetAddress) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...
    def service_actions(self) -> None: ...
    def shutdown_request(self, request: _RequestType) -> None: ...
    def close_request(self, request: _RequestType) -> None: ...
    def _handle_request_noblock(self) -> None: ...

class TCPServer(BaseServer):
    """A synchronous server on a stream socket, by default TCP over IPv4."""

    address_family: int
    socket: _socket
    allow_reuse_address: bool
    request_queue_size: int
    socket_type: int
    allow_reuse_port: bool
    server_address: _AfInetAddress | _AfInet6Address
    def __init__(
        self,
        server_address: _AfInetAddress | _AfInet6Address,
        RequestHandlerClass: Callable[[Any, _RetAddress, Self], BaseRequestHandler[Any]],
        bind_and_activate: bool = True,
    ) -> None: ...
    def fileno(self) -> int: ...
    def get_request(self) -> tuple[_socket, _RetAddress]: ...
    def server_bind(self) -> None: ...

class UDPServer(TCPServer):
    """A synchronous server on a datagram socket, by default UDP over IPv4."""

    max_packet_size: ClassVar[int]
    def get_request(self) -> tuple[tuple[bytes, _socket], _RetAddress]: ...  # type: ignore[override]

if sys.platform != "win32":
    class UnixStreamServer(TCPServer):
        """A synchronous server on a Unix stream socket."""

        server_address: _AfUnixAddress  # type: ignore[assignment]
        def __init__(
            self,
            server_address: _AfUnixAddress,
            RequestHandlerClass: Callable[[Any, _RetAddress, Self], BaseRequestHandler[Any]],
            bind_and_activate: bool = True,
        ) -> None: ...

    class UnixDatagramServer(UDPServer):
        """A synchronous server on a Unix datagram socket."""

        server_address: _AfUnixAddress  # type: ignore[assignment]
        def __init__(
            self,
            server_address: _AfUnixAddress,
            RequestHandlerClass: Callable[[Any, _RetAddress, Self], BaseRequestHandler[Any]],
            bind_and_activate: bool = True,
        ) -> None: ...

    class ForkingMixIn:
        """Mix-in that handles each request in a child process."""

        timeout: float | None
        active_children: set[int] | None
        max_children: int
        block_on_close: bool
        def collect_children(self, *, blocking: bool = False) -> None: ...
        def handle_timeout(self) -> None: ...
        def service_actions(self) -> None: ...
        def process_request(self, request: _RequestType, client_address: _RetAddress) -> None: ...
        def server_close(self) -> None: ...

class _Threads(list[threading.Thread]):
    """The joinable list of a threading server's non-daemon request threads."""

    def __init__(self, iterable: Iterable[threading.Thread] = (), /) -> None: ...
    def append(self, thread: threading.Thread) -> None: ...
    def pop_all(self) -> list[threading.Thread]: ...
    def join(self) -> None: ...
    def reap(self) -> None: ...
    def discard(self, thread: threading.Thread) -> None: ...

class _NoThreads:
    """The degenerate ``_Threads`` of a server that does not wait for its threads."""

    def append(self, thread: threading.Thread) -> None: ...
    def join(self) -> None: ...

class ThreadingMixIn:
    """Mix-in that handles each request in a new thread."""

    daemon_threads: bool
    block_on_close: bool
    _threads: _Threads | _NoThreads
    def process_request_thread(
        self, request: _RequestType, client_address: _RetAddress
    ) -> None: ...
    def process_request(self, request: _RequestType, client_address: _RetAddress) -> None: ...
    def server_close(self) -> None: ...

if sys.platform != "win32":
    class ForkingTCPServer(ForkingMixIn, TCPServer):
        """``ForkingMixIn`` + ``TCPServer``."""

    class ForkingUDPServer(ForkingMixIn, UDPServer):
        """``ForkingMixIn`` + ``UDPServer``."""

    if sys.version_info >= (3, 12):
        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            """``ForkingMixIn`` + ``UnixStreamServer``."""

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            """``ForkingMixIn`` + ``UnixDatagramServer``."""

class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """``ThreadingMixIn`` + ``TCPServer``."""

class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """``ThreadingMixIn`` + ``UDPServer``."""

if sys.platform != "win32":
    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
        """``ThreadingMixIn`` + ``UnixStreamServer``."""

    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
        """``ThreadingMixIn`` + ``UnixDatagramServer``."""

class BaseRequestHandler(Generic[_ServerT]):
    """Base class of request handlers: one instance per request.

    Generic in the server type: ``BaseRequestHandler[MyServer]`` types ``self.server``.
    """

    # ``request`` is a socket or ``(bytes, socket)``; Any, as in typeshed, for convenience.
    request: Any
    client_address: _RetAddress
    server: _ServerT
    def __init__(
        self, request: _RequestType, client_address: _RetAddress, server: _ServerT
    ) -> None: ...
    def setup(self) -> None: ...
    def handle(self) -> None: ...
    def finish(self) -> None: ...

class StreamRequestHandler(BaseRequestHandler[_ServerT]):
    """Handler for stream sockets: ``rfile`` reads the request, ``wfile`` writes the reply."""

    rbufsize: ClassVar[int]
    wbufsize: ClassVar[int]
    timeout: ClassVar[float | None]
    disable_nagle_algorithm: ClassVar[bool]
    connection: Any
    rfile: BufferedIOBase
    wfile: BufferedIOBase

class _SocketWriter(BufferedIOBase):
    """An unbuffered writable ``BufferedIOBase`` over a socket: every write is a ``sendall``."""

    _sock: _socket
    def __init__(self, sock: _socket) -> None: ...
    def writable(self) -> bool: ...
    def write(self, b: ReadableBuffer) -> int: ...
    def fileno(self) -> int: ...

class DatagramRequestHandler(BaseRequestHandler[_ServerT]):
    """Handler for datagram sockets: ``rfile`` holds the packet, ``wfile`` collects the reply."""

    packet: bytes
    socket: _socket
    rfile: BufferedIOBase
    wfile: BytesIO
