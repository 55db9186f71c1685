"""What real code reads and patches behaves as on the stdlib (issue 11), each test both ways.

Bind errors are the stdlib's exception (class, ``str``, ``repr``, ``args``); the shutdown flag
lives in the instance ``__dict__``; the module has the stdlib's globals, and patching them
reaches the methods; installed, the classes say ``__module__ == "socketserver"``. (The import
cost is in ``test_compat_import_cost.py``.)
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import socket
import socketserver
import textwrap
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import typedserve.compat

from .support import run_python, tcp_exchange

pytestmark = pytest.mark.timeout(30)

LOCAL = ("127.0.0.1", 0)
FLAG = "_BaseServer__shutdown_request"


def _error_of(call: Callable[[], object]) -> OSError:
    with pytest.raises(OSError) as info:
        call()
    return info.value


def _raw_bind_error(family: int, kind: int, address: Any) -> OSError:
    """What ``socket.bind`` itself raises for ``address``: the stdlib lets it through."""
    with socket.socket(family, kind) as sock:
        return _error_of(lambda: sock.bind(address))


def _same_error(ours: OSError, raw: OSError) -> None:
    assert type(ours) is type(raw)
    assert str(ours) == str(raw)
    assert repr(ours) == repr(raw)
    assert ours.args == raw.args
    assert (ours.errno, ours.strerror, ours.filename) == (raw.errno, raw.strerror, raw.filename)


@pytest.fixture
def busy_tcp() -> Iterator[tuple[str, int]]:
    with socket.socket() as taken:
        taken.bind(LOCAL)
        taken.listen()
        yield taken.getsockname()


# -- bind errors -------------------------------------------------------------------------------


def test_bind_error_on_a_busy_port_is_the_stdlib_error(ss: Any, busy_tcp: tuple[str, int]) -> None:
    raw = _raw_bind_error(socket.AF_INET, socket.SOCK_STREAM, busy_tcp)
    assert raw.errno == errno.EADDRINUSE
    error = _error_of(lambda: ss.TCPServer(busy_tcp, ss.BaseRequestHandler))
    _same_error(error, raw)


def test_bind_error_of_a_udp_server_is_the_stdlib_error(ss: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(LOCAL)
        address = taken.getsockname()
        raw = _raw_bind_error(socket.AF_INET, socket.SOCK_DGRAM, address)
        error = _error_of(lambda: ss.UDPServer(address, ss.BaseRequestHandler))
    _same_error(error, raw)


def test_bind_error_keeps_the_errno_subclass(ss: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "missing" / "s.sock")
    raw = _raw_bind_error(socket.AF_UNIX, socket.SOCK_STREAM, path)
    assert type(raw) is FileNotFoundError
    error = _error_of(lambda: ss.UnixStreamServer(path, ss.BaseRequestHandler))
    _same_error(error, raw)


def test_bind_error_context_is_only_a_note(ss: Any, busy_tcp: tuple[str, int]) -> None:
    """The stdlib's error has no note; compat's names the address, and tracebacks show it."""
    error = _error_of(lambda: ss.TCPServer(busy_tcp, ss.BaseRequestHandler))
    host, port = busy_tcp
    notes = getattr(error, "__notes__", [])
    shown = "".join(traceback.format_exception(error))
    last = f"OSError: [Errno {errno.EADDRINUSE}] {os.strerror(errno.EADDRINUSE)}\n"
    if ss is socketserver:
        assert notes == []
        assert shown.endswith(last)
    else:
        assert notes == [f"cannot bind TCP server to {host}:{port}"]
        assert shown.endswith(last + notes[0] + "\n")


@pytest.mark.parametrize("impl", ["stdlib", "compat"])
def test_http_server_on_a_busy_port_fails_as_on_the_stdlib(impl: str) -> None:
    """``python -m http.server`` on a busy port: the same exception, whatever runs it."""
    code = textwrap.dedent(
        """
        import socket, sys
        if sys.argv[1] == "compat":
            import typedserve.compat
            typedserve.compat.install()
        import http.server
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            address = taken.getsockname()
            try:
                http.server.ThreadingHTTPServer(address, http.server.SimpleHTTPRequestHandler)
            except OSError as exc:
                error = exc
        print(type(error).__module__, type(error).__qualname__)
        print(str(error))
        print(repr(error))
        print(error.args)
        print(getattr(error, "__notes__", []) == [] or error.__notes__[0].startswith(
            f"cannot bind TCP server to 127.0.0.1:{address[1]}"))
        """
    )
    out = run_python(code, impl)
    assert out.splitlines() == [
        "builtins OSError",
        f"[Errno {errno.EADDRINUSE}] {os.strerror(errno.EADDRINUSE)}",
        f"OSError({errno.EADDRINUSE}, '{os.strerror(errno.EADDRINUSE)}')",
        f"({errno.EADDRINUSE}, '{os.strerror(errno.EADDRINUSE)}')",
        "True",
    ]


# -- the shutdown flag in the instance __dict__ -----------------------------------------------


def test_instance_dict_holds_what_the_stdlibs_does(ss: Any) -> None:
    with ss.TCPServer(LOCAL, ss.BaseRequestHandler) as server:
        assert set(vars(server)) == {
            "server_address",
            "RequestHandlerClass",
            "socket",
            "_BaseServer__is_shut_down",
            FLAG,
        }
        assert vars(server)[FLAG] is False
        server._BaseServer__shutdown_request = True
        assert vars(server)[FLAG] is True
        server._BaseServer__shutdown_request = 0
        assert vars(server)[FLAG] == 0
        assert type(vars(server)[FLAG]) is int
        assert server._BaseServer__shutdown_request == 0


def test_a_handler_reads_the_flag_from_the_server_dict(ss: Any) -> None:
    """As DLNA servers subclassing ThreadingHTTPServer do, then stop the loop through it."""
    seen: list[object] = []

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            seen.append(self.server.__dict__[FLAG])
            self.wfile.write(b"bye")
            self.server._BaseServer__shutdown_request = True

    with ss.ThreadingTCPServer(LOCAL, Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        assert tcp_exchange(server.server_address, b"") == b"bye"
        thread.join(10)
        assert not thread.is_alive()
    assert seen == [False]
    assert vars(server)[FLAG] is False  # serve_forever resets it, in the dict


def test_writing_the_flag_into_the_dict_stops_the_loop(ss: Any) -> None:
    """Bypassing the attribute: the loop still reads the dict (at its next poll, as the stdlib)."""

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            self.server.__dict__[FLAG] = True
            self.wfile.write(b"bye")

    with ss.TCPServer(LOCAL, Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        assert tcp_exchange(server.server_address, b"") == b"bye"
        thread.join(10)
        assert not thread.is_alive()
        assert vars(server)[FLAG] is False


def test_the_flag_without_init_is_the_stdlibs_attribute_error(ss: Any) -> None:
    server = ss.TCPServer.__new__(ss.TCPServer)
    with pytest.raises(AttributeError) as info:
        server._BaseServer__shutdown_request  # noqa: B018
    assert str(info.value) == f"'TCPServer' object has no attribute '{FLAG}'"


# -- module globals: present, and patch targets ------------------------------------------------


def _names(module: types.ModuleType) -> set[str]:
    # Without what pytest's assertion rewriting adds to the modules of its plugins'
    # distributions (typedserve is one: typedserve.testing.plugin): "@py_builtins", ...
    return {name for name in dir(module) if name.isidentifier()}


def test_dir_of_the_module_has_every_stdlib_name(ss: Any) -> None:
    """Every module-level name of this Python's stdlib module, public and private."""
    missing = _names(socketserver) - _names(ss)
    assert not missing
    extra = _names(ss) - _names(socketserver)
    if ss is typedserve.compat:  # the package's submodules and compat's own functions
        assert extra == {
            "__path__",
            *("_errors", "_handlers", "_install", "_loop", "_mixins", "_server"),
            *("install", "uninstall"),
        }
    else:
        assert extra == set()


def test_module_globals_are_the_stdlibs_objects(ss: Any) -> None:
    """``os``, ``sys``, ``socket``, ``selectors``, ``threading``, ``BufferedIOBase``, ``time``."""
    for name, value in vars(socketserver).items():
        if name.startswith("__") and name != "__version__":
            continue
        if isinstance(value, type) and value.__module__ == "socketserver":
            continue  # the module's own classes: test_compat_surface compares their shape
        assert getattr(ss, name) is value or getattr(ss, name) == value, name
    assert ss.time is __import__("time").monotonic
    assert ss.BufferedIOBase is io.BufferedIOBase


def _module_copy(module: types.ModuleType, **overrides: object) -> types.ModuleType:
    copy = types.ModuleType(module.__name__)
    vars(copy).update(vars(module))
    vars(copy).update(overrides)
    return copy


def test_patched_time_is_the_handle_request_clock(ss: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``socketserver.time`` is read for the deadline and after each early wake-up."""
    readings = iter([0.0, 0.0, 0.0, 100.0])
    calls: list[str] = []

    def clock() -> float:
        calls.append("time")
        return next(readings)

    class Server(ss.TCPServer):
        timeout = 0.01

        def handle_timeout(self) -> None:
            calls.append("handle_timeout")

    monkeypatch.setattr(ss, "time", clock)
    with Server(LOCAL, ss.BaseRequestHandler) as server:
        server.handle_request()
    # The deadline, then one reading after each of the three empty waits.
    assert calls == ["time"] * 4 + ["handle_timeout"]


def test_patched_socket_module_makes_the_listening_socket(
    ss: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[Any, ...]] = []

    def factory(*args: Any) -> socket.socket:
        made.append(args)
        return socket.socket(*args)

    monkeypatch.setattr(ss, "socket", _module_copy(socket, socket=factory))
    with ss.TCPServer(LOCAL, ss.BaseRequestHandler) as server:
        assert isinstance(server.socket, socket.socket)
    assert made == [(socket.AF_INET, socket.SOCK_STREAM)]


def test_patched_threading_module_makes_the_request_threads(
    ss: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    def thread(**kwargs: Any) -> threading.Thread:
        made.append(kwargs)
        return threading.Thread(**kwargs)

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"ok")

    monkeypatch.setattr(ss, "threading", _module_copy(threading, Thread=thread))
    with (
        ss.ThreadingTCPServer(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        client.shutdown(socket.SHUT_WR)
        assert client.recv(16) == b"ok"
    assert [sorted(kwargs) for kwargs in made] == [["args", "target"]]
    assert made[0]["target"] == server.process_request_thread


def test_patched_sys_module_receives_the_error_report(
    ss: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = io.StringIO()

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("reported")

    import sys

    monkeypatch.setattr(ss, "sys", _module_copy(sys, stderr=report))
    with (
        ss.TCPServer(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        peer = client.getsockname()
    assert report.getvalue() == (
        f"{'-' * 40}\nException occurred during processing of request from {peer}\n{'-' * 40}\n"
    )
    assert "ValueError: reported" in capsys.readouterr().err  # traceback.print_exc: sys.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_patched_os_module_reaps_the_children(ss: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[tuple[int, int]] = []

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        waited.append((pid, options))
        return pid, 0

    monkeypatch.setattr(ss, "os", _module_copy(os, waitpid=waitpid))
    with ss.ForkingTCPServer(LOCAL, ss.BaseRequestHandler) as server:
        server.active_children = {424242}  # not a child of ours: only the patch can reap it
        server.collect_children()
        assert server.active_children == set()
        server.active_children = None
    assert waited == [(424242, os.WNOHANG)]


# -- __module__ --------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["stdlib", "compat"])
def test_installed_classes_are_members_of_socketserver(impl: str) -> None:
    code = textwrap.dedent(
        """
        import pickle, sys
        if sys.argv[1] == "compat":
            import typedserve.compat as compat
            compat.install()
        import socketserver
        names = [*socketserver.__all__, "_SocketWriter", "_Threads", "_NoThreads"]
        for name in names:
            cls = getattr(socketserver, name)
            assert cls.__module__ == "socketserver", (name, cls.__module__)
            assert repr(cls) == f"<class 'socketserver.{name}'>", repr(cls)
            assert pickle.loads(pickle.dumps(cls)) is cls, name
        # CPython's MiscTestCase.test_all: public names defined here are exactly __all__.
        defined = [
            name for name in dir(socketserver)
            if not name.startswith("_")
            and getattr(getattr(socketserver, name), "__module__", None) == "socketserver"
        ]
        assert sorted(defined) == sorted(socketserver.__all__), defined
        if sys.argv[1] == "compat":
            compat.uninstall()
            for name in names:
                assert getattr(compat, name).__module__ == "typedserve.compat", name
            compat.install()
            assert compat.TCPServer.__module__ == "socketserver"
        print("OK")
        """
    )
    assert run_python(code, impl).strip() == "OK"


def test_without_install_classes_are_members_of_typedserve_compat() -> None:
    assert socketserver is not typedserve.compat
    for name in [*socketserver.__all__, "_SocketWriter", "_Threads", "_NoThreads"]:
        cls: Any = getattr(typedserve.compat, name)
        assert cls.__module__ == "typedserve.compat", name
        assert pickle.loads(pickle.dumps(cls)) is cls, name
