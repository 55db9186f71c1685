"""Concurrency strategies: objects that decide where each request runs."""

from typedserve.strategies.aio import AsyncIO
from typedserve.strategies.base import Strategy
from typedserve.strategies.forking import ForkPerRequest
from typedserve.strategies.inline import Inline
from typedserve.strategies.pool import ThreadPool
from typedserve.strategies.prefork import Prefork
from typedserve.strategies.threads import ThreadPerRequest

__all__ = [
    "AsyncIO",
    "ForkPerRequest",
    "Inline",
    "Prefork",
    "Strategy",
    "ThreadPerRequest",
    "ThreadPool",
]
