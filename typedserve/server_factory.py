"""``ServerFactory``: the shape of what ``typedserve serve MODULE:ATTR`` calls to build a server."""

from __future__ import annotations

from typing import Protocol

from typedserve.config import ServerConfig
from typedserve.requests import PeerAddress, Request
from typedserve.server import Server
from typedserve.strategies.base import LoopOwner

__all__ = ["ServerFactory"]


class ServerFactory(Protocol):
    """What ``typedserve serve MODULE:ATTR`` calls when ``ATTR`` is not a handler class: a
    callable taking the effective config (positionally) and returning a server it built.

    Annotate a factory's result ``Server[...]`` as precisely as you like (every server is a
    ``Server[Request, object, PeerAddress, LoopOwner]``); extra parameters need defaults.
    The command line checks what it loads against this shape before calling it, and checks
    the result is a :class:`Server`, naming the object when either is not.

    Example::

        def build_server(config: ServerConfig) -> Server[StreamRequest, Store]:
            return Server(config=config, transport=TCPTransport(), handler=KV, state=Store())
    """

    def __call__(self, config: ServerConfig, /) -> Server[Request, object, PeerAddress, LoopOwner]:
        """Build the server for ``config`` (bound, or built with ``bind=False``)."""
        ...
