"""``ServerContext``: what a handler may know about the server that runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic

from typing_extensions import TypeVar

from typedserve.config import ServerConfig
from typedserve.requests import PeerAddress

__all__ = ["ServerContext", "StateT"]

StateT = TypeVar("StateT", default=None)
"""The type of the shared-state object the user injects into a server (``None`` by default)."""


@dataclass(frozen=True, slots=True)
class ServerContext(Generic[StateT]):
    """The typed view of a server that every handler receives, in place of an untyped ``server``.

    ``state`` is the object passed as ``Server(state=...)``: one instance shared by every request
    (guard it with a lock under thread strategies; under forking strategies changes made in a
    child never reach the parent). ``shutdown`` asks the server to stop; it is safe to call from
    a handler and never blocks there.
    """

    config: ServerConfig
    address: PeerAddress
    state: StateT
    shutdown: Callable[[], None]
