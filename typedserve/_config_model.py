"""What every config model shares: the frozen base model and how text spells ``None``.

:mod:`typedserve.config` (``ServerConfig`` and its tables) and :mod:`typedserve.tls.config`
(``TLSConfig``) both build on these, so neither imports the other's internals.
"""

from __future__ import annotations

from pydantic import BaseModel, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["NONE_TEXT"]

NONE_TEXT = "none"
"""How text (an environment variable, a TOML string, a CLI flag) sets a field that may be
``None`` to ``None``: ``none``, in any case, e.g. ``TYPEDSERVE_TIMEOUTS__REQUEST=none`` over a
TOML file's ``request = 30``. The empty string and ``null`` are refused, naming the field."""


def _none_from_text(value: object) -> object:
    """``"none"`` (any case, spaces around ignored) is ``None``; ``""`` and ``"null"`` are
    errors that say so (an empty variable is more often a mistake than a choice).

    Rejections here and in the mode validators are ``PydanticCustomError``s: pydantic reports
    them against the field, and the loaders turn them into a :class:`ConfigError`."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word == NONE_TEXT:
            return None
        if word in ("", "null"):
            raise PydanticCustomError("none_text", f"to unset this field write {NONE_TEXT!r}")
    return value


_NONE_FROM_TEXT = BeforeValidator(_none_from_text)


class _Model(BaseModel, frozen=True, extra="forbid", validate_default=True):
    """The base of every config model: frozen, no unknown keys, defaults validated too.

    Each subclass repeats ``frozen=True`` as a class keyword: that is what mypy reads without
    the pydantic plugin (``dataclass_transform``), so assigning to a field of any config model
    (``config.backlog = 3``) is a type error with or without the plugin, as it is an error at
    run time. ``tests/typing/test_config_typing.py`` checks both ways.
    """
