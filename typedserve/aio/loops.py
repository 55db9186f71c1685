"""Choosing the event loop implementation: uvloop when it is installed, the stdlib otherwise."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Literal, TypeAlias

from typedserve.errors import TypedServeError

__all__ = ["LoopName", "loop_factory", "uvloop_available"]

LoopName: TypeAlias = Literal["auto", "asyncio", "uvloop"]
"""``"uvloop"`` requires uvloop (``pip install 'typedserve[uvloop]'``); ``"auto"`` uses it when
it is installed and the stdlib loop otherwise; ``"asyncio"`` always uses the stdlib loop."""


def uvloop_available() -> bool:
    """Whether ``uvloop`` can be imported."""
    try:
        importlib.import_module("uvloop")
    except ImportError:
        return False
    return True


def loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function creating a new event loop of the chosen kind.

    Raises :class:`~typedserve.errors.TypedServeError` for ``"uvloop"`` when it is not
    installed, naming the extra to install.
    """
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if name == "uvloop":
            raise TypedServeError(
                "AsyncIO(loop='uvloop') needs uvloop: pip install 'typedserve[uvloop]' "
                "(or use loop='auto' to fall back to the asyncio loop)"
            ) from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
