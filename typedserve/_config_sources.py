"""Where a config's data comes from, and how the layers combine, before pydantic validates it.

Each source becomes a nested mapping in the shape of the TOML file: :func:`read_toml` (a
file), :func:`env_layer` (``TYPEDSERVE_*`` variables), :func:`dotted_layer` (``{"a.b": 1}``
overrides). :func:`merge` lays one over another, field by field; :func:`config_error` turns
pydantic's report into a :class:`~typedserve.errors.ConfigError` that names each field. The
models themselves, and the order of the layers, are in :mod:`typedserve.config`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from typedserve.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "address_kind",
    "config_error",
    "dotted_layer",
    "env_layer",
    "merge",
    "read_toml",
]

ENV_PREFIX = "TYPEDSERVE_"


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The nested layer described by ``TYPEDSERVE_*`` variables in ``environ``: the prefix is
    dropped, the rest lowercased, ``__`` separates levels (``TYPEDSERVE_TLS__CERTFILE`` is
    ``tls.certfile``)."""
    flat = {
        key[len(ENV_PREFIX) :].lower().replace("__", "."): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX)
    }
    return dotted_layer(flat)


def dotted_layer(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"address.port": 1}`` into ``{"address": {"port": 1}}``."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{dotted}: {part!r} is a value, not a table")
            node = child
        node[leaf] = value
    return nested


def merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``layer`` over ``base``.

    A layer that names a different address kind (by ``kind`` or by a key only that kind has,
    such as ``path``) replaces the whole address, so that e.g. ``--unix PATH`` does not inherit
    the TOML file's ``port``.
    """
    merged = dict(base)
    for key, value in layer.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            kind = _layer_kind(value) if key == "address" else None
            if kind is not None and kind != address_kind(old):
                merged[key] = dict(value)
            else:
                merged[key] = merge(old, value)
        else:
            merged[key] = value
    return merged


def address_kind(value: Any) -> str:
    """The address union's tag: ``kind`` if given, else inferred (``path`` -> unix, ``fd`` ->
    fd, else inet)."""
    if isinstance(value, Mapping):
        if "kind" in value:
            return str(value["kind"])
        return "unix" if "path" in value else "fd" if "fd" in value else "inet"
    return str(getattr(value, "kind", "inet"))


def _layer_kind(address: Mapping[str, Any]) -> str | None:
    """The address kind a layer names, explicitly or by a kind-specific key; else ``None``."""
    if "kind" in address:
        return str(address["kind"])
    for keys, kind in ((("path",), "unix"), (("fd",), "fd"), (("host", "port"), "inet")):
        if any(k in address for k in keys):
            return kind
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of the TOML file at ``path``; an unreadable or invalid file is a
    :class:`ConfigError` naming it."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _field_path(loc: list[str]) -> str:
    """``["tls", "sni", "a.example", "certfile"]`` -> ``tls.sni["a.example"].certfile``: a
    server name (a dict key with dots) is quoted; pydantic's ``[key]`` marker (the key itself
    is wrong) is dropped."""
    path = ""
    for index, part in enumerate(loc):
        if part == "[key]":
            continue
        if index >= 2 and loc[index - 2 : index] == ["tls", "sni"]:
            path += f'["{part}"]'
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


class _Missing:
    """The value shown for a required field that was not given (pydantic reports the parent)."""

    def __repr__(self) -> str:
        return "(not set)"


_MISSING = _Missing()


def config_error(exc: ValidationError, source: str) -> ConfigError:
    """The :class:`ConfigError` for pydantic's report: a header naming ``source``, then one
    ``field = value: rule`` line per problem."""
    problems: list[tuple[str, object, str]] = []
    for error in exc.errors(include_url=False):
        # Drop the discriminator tag pydantic inserts into union paths ("address.unix.path").
        loc = [str(part) for part in error["loc"]]
        if len(loc) >= 2 and loc[0] == "address" and loc[1] in ("inet", "unix", "fd"):
            del loc[1]
        field = _field_path(loc)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        value = _MISSING if error["type"] == "missing" else error.get("input")
        problems.append((field, value, message))
    lines = [f"invalid server config ({source}):"]
    lines += [f"  {field} = {value!r}: {rule}" for field, value, rule in problems]
    return ConfigError("\n".join(lines), tuple(problems))
