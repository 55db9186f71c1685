"""The type parameters of ``Server`` that are its own (the request and state ones come from
``transports.base`` and ``context``), and those its constructor solves from its arguments."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeVar

from typedserve.requests import PeerAddress
from typedserve.strategies.base import LoopOwner, Strategy
from typedserve.strategies.inline import Inline

__all__ = ["AddressT_co", "DispatchT", "PeerT", "StrategyT_co"]

AddressT_co = TypeVar("AddressT_co", bound=PeerAddress, covariant=True, default=Any)
"""A server's address type: its transport's (``server.address``). A ``Server`` built in place
has the precise one; an annotation that leaves it out (``Server[StreamRequest, Store]``) says
"any", as it did before addresses were typed."""

StrategyT_co = TypeVar("StrategyT_co", bound=LoopOwner, covariant=True, default=Any)
"""A server's strategy type (``server.strategy``): ``handle_request`` needs a dispatching one
(a :class:`~typedserve.strategies.base.Strategy`, not ``AsyncIO``). Left out of an
annotation: any."""

PeerT = TypeVar("PeerT", bound=PeerAddress)
"""The constructor's peer address type (invariant: solved from the transport)."""

DispatchT = TypeVar("DispatchT", bound=Strategy, default=Inline)
"""The constructor's dispatching strategy type (``Inline`` when none is given)."""
