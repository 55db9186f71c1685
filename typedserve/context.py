"""``ServerContext``: what a handler may know about the server that runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic

from typing_extensions import TypeVar

from typedserve.config import ServerConfig
from typedserve.requests import PeerAddress

__all__ = ["ServerContext", "StateT", "StateT_co"]

StateT = TypeVar("StateT", default=None)
"""The type of the shared-state object the user injects into a server (``None`` by default)."""

StateT_co = TypeVar("StateT_co", covariant=True, default=None)
"""``StateT`` where it is only read (the frozen context, the server): covariant, so a handler
written against an interface accepts any implementation of it."""


@dataclass(frozen=True, slots=True)
class ServerContext(Generic[StateT_co]):
    """The typed view of a server that every handler receives, in place of an untyped ``server``.

    Covariant in its state type: it is frozen, so a ``ServerContext[MemoryStore]`` is a
    ``ServerContext[Store]`` when ``MemoryStore`` implements (or subclasses) ``Store``, and a
    handler declared ``StreamHandler[Store]`` may be given ``state=MemoryStore()``.

    ``state`` is the object passed as ``Server(state=...)``: one instance shared by every request
    (guard it with a lock under thread strategies; under forking strategies changes made in a
    child never reach the parent). ``shutdown`` asks the server to stop; it is safe to call from
    a handler and never blocks there.
    """

    config: ServerConfig
    address: PeerAddress
    state: StateT_co
    shutdown: Callable[[], None]
