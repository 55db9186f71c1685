"""The compat module exposes the running interpreter's socketserver surface, defaults included."""

from __future__ import annotations

import inspect
import io
import os
import socketserver
import sys
from typing import Any

import pytest

import typedserve.compat

pytestmark = pytest.mark.timeout(10)

INTERNALS = ("_SocketWriter", "_ServerSelector", "_NoThreads", "_Threads")
DUNDERS_COMPARED = ("__init__", "__enter__", "__exit__")


def _public_classes() -> list[str]:
    return [*socketserver.__all__, "_SocketWriter", "_NoThreads", "_Threads"]


def test_all_is_the_stdlib_all() -> None:
    assert typedserve.compat.__all__ == socketserver.__all__


def test_version_specific_names() -> None:
    has_forking_unix = sys.version_info >= (3, 12) and hasattr(os, "fork")
    for name in ("ForkingUnixStreamServer", "ForkingUnixDatagramServer"):
        assert hasattr(typedserve.compat, name) == has_forking_unix
        assert hasattr(socketserver, name) == has_forking_unix
        assert (name in typedserve.compat.__all__) == has_forking_unix


@pytest.mark.parametrize("name", [*socketserver.__all__, *INTERNALS])
def test_name_exists(name: str) -> None:
    assert hasattr(typedserve.compat, name)


def test_server_selector_default_is_the_stdlib_one() -> None:
    assert typedserve.compat._ServerSelector is vars(socketserver)["_ServerSelector"]


@pytest.mark.parametrize("name", _public_classes())
def test_class_shape(name: str) -> None:
    """Same MRO (by name), same class attributes and defaults, same method signatures."""
    std: Any = getattr(socketserver, name)
    ours: Any = getattr(typedserve.compat, name)
    assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in std.__mro__]
    for attr in dir(std):
        if attr.startswith("__") and attr not in DUNDERS_COMPARED:
            continue
        std_value = inspect.getattr_static(std, attr)
        assert hasattr(ours, attr), f"{name}.{attr} is missing"
        our_value = inspect.getattr_static(ours, attr)
        if inspect.isfunction(std_value):
            assert inspect.isfunction(our_value), f"{name}.{attr} is not a function"
            std_sig = inspect.signature(std_value)
            our_sig = inspect.signature(our_value)
            assert [(p.name, p.kind, p.default) for p in our_sig.parameters.values()] == [
                (p.name, p.kind, p.default) for p in std_sig.parameters.values()
            ], f"{name}.{attr}{our_sig} != {std_sig}"
        elif callable(std_value) and not isinstance(std_value, type):
            assert callable(our_value), f"{name}.{attr}"
        elif isinstance(std_value, int | float | str | bool | type(None)):
            assert our_value == std_value, f"{name}.{attr} = {our_value!r} != {std_value!r}"
            assert type(our_value) is type(std_value)
        else:  # an instance such as ThreadingMixIn._threads
            assert type(our_value).__name__ == type(std_value).__name__, f"{name}.{attr}"


@pytest.mark.parametrize(
    ("name", "attr", "value"),
    [
        ("BaseServer", "timeout", None),
        ("TCPServer", "request_queue_size", 5),
        ("TCPServer", "allow_reuse_address", False),
        ("TCPServer", "allow_reuse_port", False),
        ("UDPServer", "max_packet_size", 8192),
        ("ForkingMixIn", "timeout", 300),
        ("ForkingMixIn", "max_children", 40),
        ("ForkingMixIn", "active_children", None),
        ("ForkingMixIn", "block_on_close", True),
        ("ThreadingMixIn", "daemon_threads", False),
        ("ThreadingMixIn", "block_on_close", True),
        ("StreamRequestHandler", "rbufsize", -1),
        ("StreamRequestHandler", "wbufsize", 0),
        ("StreamRequestHandler", "timeout", None),
        ("StreamRequestHandler", "disable_nagle_algorithm", False),
    ],
)
def test_documented_defaults(ss: Any, name: str, attr: str, value: object) -> None:
    assert getattr(getattr(ss, name), attr) == value


def test_socket_writer_is_a_buffered_io_base(ss: Any) -> None:
    assert issubclass(ss._SocketWriter, io.BufferedIOBase)


def test_base_server_defines_no_socket_methods(ss: Any) -> None:
    # Code tests hasattr(server, "fileno") to tell socket-less servers apart.
    assert not hasattr(ss.BaseServer, "fileno")
    assert not hasattr(ss.BaseServer, "get_request")
    assert not hasattr(ss.BaseServer, "socket")


def test_every_public_name_has_a_docstring() -> None:
    for name in [*socketserver.__all__, "install", "uninstall"]:
        obj: Any = getattr(typedserve.compat, name)
        assert inspect.getdoc(obj), name
        if isinstance(obj, type):
            for attr, value in vars(obj).items():
                if inspect.isfunction(value) and not attr.startswith("_"):
                    assert inspect.getdoc(value), f"{name}.{attr}"
