"""``ServerOptions``: the optional keywords a :class:`~typedserve.server.Server` takes, typed by
the request kind its transport produces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypedDict

from typedserve.drain import BusyPolicy
from typedserve.policies import AccessPolicy, ErrorPolicy
from typedserve.requests import RequestT

__all__ = ["ServerOptions"]


class ServerOptions(TypedDict, Generic[RequestT], total=False):
    """The optional keywords of :class:`Server` (typed per request kind)."""

    verify_request: AccessPolicy[RequestT] | None
    """The access policy: called on the loop thread per request; ``False`` refuses it."""
    handle_error: ErrorPolicy | None
    """Called with a handler's exception and the peer (default: log it)."""
    on_timeout: Callable[[], None] | None
    """Called when :meth:`Server.handle_request` times out."""
    on_busy: BusyPolicy[RequestT] | None
    """Called with each request turned away (overload or drain) before its clean close."""
    bind: bool
    """Bind and activate the transport now (default ``True``)."""
