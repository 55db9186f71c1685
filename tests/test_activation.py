"""Socket activation in-process: real listening sockets placed at fds 3, 4... and the
``LISTEN_*`` variables set for this process, as systemd would pass them."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator

import pytest

from typedserve import (
    BindError,
    ConfigError,
    FDAddress,
    InetSockAddr,
    Inline,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    TransportMismatchError,
    UDPTransport,
    activation,
)
from typedserve.cli import main
from typedserve.handlers import DatagramHandler

pytestmark = pytest.mark.timeout(30)

_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class Named(StreamHandler):
    """Answers with the name of the socket its server was given."""

    def handle(self) -> None:
        address = self.context.config.address
        assert isinstance(address, FDAddress)
        self.wfile.write(f"{address.name}\n".encode())


class Ignore(DatagramHandler):
    def handle(self) -> None:
        pass


Passing = Callable[..., list[int]]


@pytest.fixture
def passing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Passing]:
    """``passing(*names, pid=None, names_var=True)``: TCP listeners at fds 3.. with the
    variables set (the fds' previous owners are put back afterwards); their ports."""
    saved: list[tuple[int, int | None]] = []
    activation.forget()

    def pass_sockets(*names: str, pid: int | None = None, names_var: bool = True) -> list[int]:
        ports = []
        for index, _ in enumerate(names):
            fd = activation.LISTEN_FDS_START + index
            listener = socket.create_server(("127.0.0.1", 0))
            ports.append(listener.getsockname()[1])
            try:
                previous: int | None = os.dup(fd)
            except OSError:
                previous = None
            saved.append((fd, previous))
            os.dup2(listener.fileno(), fd)  # inheritable, as after an exec
            listener.close()
        monkeypatch.setenv("LISTEN_FDS", str(len(names)))
        monkeypatch.setenv("LISTEN_PID", str(os.getpid() if pid is None else pid))
        if names_var:
            monkeypatch.setenv("LISTEN_FDNAMES", ":".join(names))
        return ports

    yield pass_sockets
    activation.forget()
    for fd, previous in reversed(saved):
        if previous is None:
            with contextlib.suppress(OSError):  # a server owned it and closed it
                os.close(fd)
        else:
            os.dup2(previous, fd)
            os.close(previous)


def _server(name: str | None) -> Server[StreamRequest[InetSockAddr], None, InetSockAddr, Inline]:
    config = ServerConfig(address=FDAddress(fd="systemd", name=name))
    return Server(config=config, transport=TCPTransport(), handler=Named)


def test_each_server_takes_its_named_socket(passing: Passing) -> None:
    web_port, admin_port = passing("web", "admin")
    with _server("admin") as admin, _server("web") as web:
        assert admin.address[1] == admin_port and web.address[1] == web_port
        for server, port, answer in ((web, web_port, b"web\n"), (admin, admin_port, b"admin\n")):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"which?\n")
                assert server.handle_request(10)
                assert client.makefile("rb").readline() == answer


def test_passed_fds_are_close_on_exec_and_variables_removed(passing: Passing) -> None:
    passing("web", "admin")
    table = activation.passed_sockets()
    assert table.fds == (3, 4) and table.names == ("web", "admin")
    assert not os.get_inheritable(3) and not os.get_inheritable(4)
    assert not any(variable in os.environ for variable in _VARIABLES)
    assert activation.passed_sockets() is table  # cached for the other servers


def test_an_unknown_name_lists_the_names_passed(passing: Passing) -> None:
    passing("web", "admin")
    with pytest.raises(ConfigError, match=r"'api'.*'web' \(fd 3\), 'admin' \(fd 4\)"):
        _server("api")


def test_several_sockets_and_no_name_lists_the_names(passing: Passing) -> None:
    passing("web", "admin")
    with pytest.raises(ConfigError, match=r"2 sockets.*'web' \(fd 3\), 'admin'.*--fdname"):
        _server(None)


def test_one_socket_needs_no_name(passing: Passing) -> None:
    (port,) = passing("whatever", names_var=False)
    with _server(None) as server:
        assert server.address[1] == port
    assert activation.passed_sockets().names == ("unknown",)


def test_a_socket_is_taken_once(passing: Passing) -> None:
    passing("web")
    with _server("web"), pytest.raises(BindError, match=r"'web'.*already taken"):
        _server("web")


def test_sockets_of_another_process_are_not_for_us(passing: Passing) -> None:
    passing("web", pid=os.getpid() + 1)
    with pytest.raises(BindError, match=r"LISTEN_PID=\d+ is another process's.*not for us"):
        _server("web")
    assert "LISTEN_FDS" in os.environ  # not ours: left as it was
    assert os.get_inheritable(3)


def test_names_must_match_the_count(passing: Passing, monkeypatch: pytest.MonkeyPatch) -> None:
    passing("web", "admin")
    monkeypatch.setenv("LISTEN_FDNAMES", "web")
    with pytest.raises(BindError, match=r"names 1 socket.*LISTEN_FDS=2"):
        _server("web")


def test_a_socket_the_transport_rejects_can_be_taken_by_another(passing: Passing) -> None:
    passing("web")
    config = ServerConfig(address=FDAddress(fd="systemd", name="web"))
    with pytest.raises(TransportMismatchError, match="systemd's fd 3 \\('web'\\)"):
        Server(config=config, transport=UDPTransport(), handler=Ignore)
    with _server("web"):
        pass


def test_the_name_is_config_from_every_source() -> None:
    environ = {
        "TYPEDSERVE_ADDRESS__KIND": "fd",
        "TYPEDSERVE_ADDRESS__FD": "systemd",
        "TYPEDSERVE_ADDRESS__NAME": "web",
    }
    assert ServerConfig.from_env(environ).address == FDAddress(fd="systemd", name="web")
    data = {"address": {"fd": "systemd", "name": "admin"}}
    assert ServerConfig.from_data(data).address == FDAddress(fd="systemd", name="admin")
    overridden = ServerConfig().with_overrides(
        {"address.kind": "fd", "address.fd": "systemd", "address.name": "x"}
    )
    assert overridden.address == FDAddress(fd="systemd", name="x")


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        ({"fd": 3, "name": "web"}, "needs fd='systemd'"),
        ({"fd": "systemd", "name": "a:b"}, "without ':'"),
        ({"fd": "systemd", "name": ""}, "at least 1"),
    ],
)
def test_bad_names_are_config_errors(data: dict[str, object], rule: str) -> None:
    with pytest.raises(ConfigError, match=rf"address\.name = [\s\S]*{rule}"):
        ServerConfig.from_data({"address": data})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fd", "three"], "--fd: 'three' is neither a file descriptor number nor 'systemd'"),
        (["--fdname", "web", "--port", "0"], "--fd/--fdname cannot be combined with --host/--port"),
        (["--fd", "3", "--fdname", "web"], "address.name = 'web': a name selects a socket"),
        (["--fdname", "web"], "needs socket activation: LISTEN_PID/LISTEN_FDS are not set"),
    ],
)
def test_the_command_line_flags(
    flags: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable in _VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(logging, "basicConfig", lambda **_: None)  # leave pytest's root logger
    assert main(["serve", "typedserve.demo:StreamEcho", *flags]) == 2
    assert message in capsys.readouterr().err
