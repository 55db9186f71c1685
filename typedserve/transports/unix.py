"""Unix-domain transports: stream and datagram, on a path or an abstract name."""

from __future__ import annotations

import socket
from typing import ClassVar

from typedserve.requests import UnixDatagramPeer, UnixSockAddr
from typedserve.transports.datagram import DatagramTransport
from typedserve.transports.stream import StreamTransport

__all__ = ["UnixDatagramTransport", "UnixStreamTransport"]


class UnixStreamTransport(StreamTransport[UnixSockAddr]):
    """A ``Transport[StreamRequest[UnixSockAddr], UnixSockAddr]`` on a Unix stream socket
    (path, ``@abstract``, or fd). An address is a path (``str``; a client's is usually ``""``,
    unnamed) or an abstract name (``bytes`` starting with a NUL byte).

    Socket file hygiene follows the config's ``UnixAddress``: stale files are removed only after
    a probe proves nobody listens, ``mode`` is applied, and the file is unlinked on close.
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_UNIX})


class UnixDatagramTransport(DatagramTransport[UnixDatagramPeer, UnixSockAddr]):
    """A ``Transport[Datagram[UnixDatagramPeer], UnixSockAddr]`` on a Unix datagram socket
    (path, ``@abstract``, or fd).

    A client must bind its own socket to get replies (an unbound client has no address: its
    datagrams' ``peer`` is ``None``).
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_UNIX})
