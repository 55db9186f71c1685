"""Concurrency strategies: objects that decide where each request runs."""

from typedserve.strategies.base import Strategy
from typedserve.strategies.inline import Inline
from typedserve.strategies.threads import ThreadPerRequest

__all__ = ["Inline", "Strategy", "ThreadPerRequest"]
