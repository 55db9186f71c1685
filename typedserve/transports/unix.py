"""Unix-domain transports: stream and datagram, on a path or an abstract name."""

from __future__ import annotations

import socket
from typing import ClassVar

from typedserve.transports.datagram import DatagramTransport
from typedserve.transports.stream import StreamTransport

__all__ = ["UnixDatagramTransport", "UnixStreamTransport"]


class UnixStreamTransport(StreamTransport):
    """A ``Transport[StreamRequest]`` on a Unix stream socket (path, ``@abstract``, or fd).

    Socket file hygiene follows the config's ``UnixAddress``: stale files are removed only after
    a probe proves nobody listens, ``mode`` is applied, and the file is unlinked on close.
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_UNIX})


class UnixDatagramTransport(DatagramTransport):
    """A ``Transport[Datagram]`` on a Unix datagram socket (path, ``@abstract``, or fd).

    A client must bind its own socket to get replies (an unbound client has no address).
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_UNIX})
