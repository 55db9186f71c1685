"""A drop-in replacement for the stdlib :mod:`socketserver`.

Use it as ``import typedserve.compat as socketserver``, or call :func:`install` before
anything imports ``socketserver`` so that ``http.server``, ``xmlrpc.server``,
``wsgiref.simple_server`` and ``logging.config`` run on it. It exports the same names as the
running interpreter's ``socketserver`` and calls every hook as the stdlib does; see
``DIFFERENCES.md`` for what is intentionally different and ``MIGRATION.md`` for moving to the
typed API.

Shared with typedserve's core, and nothing more: ``serve_forever`` and ``handle_request`` wait
on :class:`typedserve._reactor.Reactor` (as the typed server's loop does) and ``shutdown``
wakes it through a :class:`typedserve._lifecycle.StopSignal` (see ``_loop``). Everything else
follows CPython's ``socketserver``. Importing this module imports only those two core modules
(and what they need), never the rest of typedserve (``typedserve/__init__.py`` is lazy).

The module has every global the stdlib module has (``os``, ``sys``, ``socket``, ``selectors``,
``threading``, ``BufferedIOBase``, ``time``), and the implementation reads the ones the
stdlib's methods use from here when a method runs: they are patch targets, as in the stdlib.

Type checkers read ``__init__.pyi`` next to this file; the implementation lives in the private
modules ``_server`` (the base and socket servers), ``_loop`` (their loops on the Reactor),
``_mixins`` (the mix-ins and the classes that combine them), ``_handlers``, ``_errors`` and
``_install``.
"""

import os as os
import selectors as selectors
import socket as socket
import sys as sys
import threading as threading
from io import BufferedIOBase as BufferedIOBase
from time import monotonic as time  # noqa: F401  # the stdlib's global (a patch target)

from typedserve.compat._handlers import BaseRequestHandler as BaseRequestHandler
from typedserve.compat._handlers import DatagramRequestHandler as DatagramRequestHandler
from typedserve.compat._handlers import StreamRequestHandler as StreamRequestHandler
from typedserve.compat._handlers import _SocketWriter as _SocketWriter
from typedserve.compat._install import install as install
from typedserve.compat._install import uninstall as uninstall
from typedserve.compat._mixins import ThreadingMixIn as ThreadingMixIn
from typedserve.compat._mixins import ThreadingTCPServer as ThreadingTCPServer
from typedserve.compat._mixins import ThreadingUDPServer as ThreadingUDPServer
from typedserve.compat._mixins import _NoThreads as _NoThreads
from typedserve.compat._mixins import _Threads as _Threads
from typedserve.compat._server import BaseServer as BaseServer
from typedserve.compat._server import TCPServer as TCPServer
from typedserve.compat._server import UDPServer as UDPServer

__version__ = "0.4"

# The stdlib's names, in the stdlib's order, under the stdlib's conditions.
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
if hasattr(os, "fork"):
    from typedserve.compat._mixins import ForkingMixIn as ForkingMixIn
    from typedserve.compat._mixins import ForkingTCPServer as ForkingTCPServer
    from typedserve.compat._mixins import ForkingUDPServer as ForkingUDPServer

    __all__.extend(["ForkingUDPServer", "ForkingTCPServer", "ForkingMixIn"])  # noqa: RUF022
if hasattr(socket, "AF_UNIX"):
    from typedserve.compat._mixins import ThreadingUnixDatagramServer as ThreadingUnixDatagramServer
    from typedserve.compat._mixins import ThreadingUnixStreamServer as ThreadingUnixStreamServer
    from typedserve.compat._server import UnixDatagramServer as UnixDatagramServer
    from typedserve.compat._server import UnixStreamServer as UnixStreamServer

    _unix = ["UnixStreamServer", "UnixDatagramServer"]
    __all__.extend([*_unix, "ThreadingUnixStreamServer", "ThreadingUnixDatagramServer"])
    del _unix
    if hasattr(os, "fork") and sys.version_info >= (3, 12):
        from typedserve.compat._mixins import ForkingUnixDatagramServer as ForkingUnixDatagramServer
        from typedserve.compat._mixins import ForkingUnixStreamServer as ForkingUnixStreamServer

        __all__.extend(["ForkingUnixStreamServer", "ForkingUnixDatagramServer"])  # noqa: RUF022

# poll/select need no extra file descriptor, unlike epoll/kqueue (and make a single syscall).
# Patching this module attribute changes the selector every server loop uses. (Not annotated:
# mypy reads __init__.pyi, and an annotation would add __annotations__, which the stdlib lacks.)
if hasattr(selectors, "PollSelector"):
    _ServerSelector = selectors.PollSelector
else:  # pragma: no cover - platforms without poll()
    _ServerSelector = selectors.SelectSelector
