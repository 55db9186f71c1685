"""The observer seam and the access log's parts that need no server of every strategy: the
registry, combining observers, the config table, the text and JSON forms, ``TCP_INFO``."""

from __future__ import annotations

import json
import logging
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from typedserve import ConfigError, Inline, Request, Server, ServerConfig, TCPTransport, observe
from typedserve._serving import Serving
from typedserve.access_log.config import FIELDS, AccessLogConfig
from typedserve.access_log.observer import AccessLog, access_fields, describe_address, text_line
from typedserve.access_log.tcp_info import parse_tcp_info, stream_bytes
from typedserve.counters import Counters
from typedserve.demo import StreamEcho
from typedserve.framing import Lines
from typedserve.handlers import StreamHandler
from typedserve.logformat import JsonFormatter
from typedserve.observe import OUTCOMES, Observers, Outcome, observers_for
from typedserve.testing import connect, serve_in_thread

pytestmark = pytest.mark.timeout(30)


class Collect:
    """A request observer that keeps what it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[Outcome, float, float]] = []

    def request_ended(
        self, request: Request, outcome: Outcome, started: float, ended: float
    ) -> None:
        self.heard.append((outcome, started, ended))


class Broken:
    def request_ended(
        self, request: Request, outcome: Outcome, started: float, ended: float
    ) -> None:
        raise RuntimeError("this observer is broken")


def test_nothing_is_observed_by_default_and_serve_is_the_plain_life_cycle() -> None:
    assert observers_for(ServerConfig(), Counters()) is None
    server = Server(config=ServerConfig(), transport=TCPTransport(), handler=StreamEcho)
    try:
        assert server._serving.observer is None
        assert getattr(server._serving.serve, "__func__", None) is Serving.serve  # plain
    finally:
        server.close()


def test_the_access_log_is_built_when_enabled() -> None:
    made = observers_for(ServerConfig(access_log=AccessLogConfig(enabled=True)), Counters())
    assert isinstance(made, Observers)
    [member] = made.members
    assert isinstance(member, AccessLog)
    assert OUTCOMES[0] == "completed" and len(OUTCOMES) == 9


def test_a_factory_added_to_the_registry_observes_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = Collect()
    monkeypatch.setattr(observe, "OBSERVER_FACTORIES", (lambda config, counters: seen,))
    server = Server(
        config=ServerConfig(), transport=TCPTransport(), handler=StreamEcho, strategy=Inline()
    )
    with serve_in_thread(server):
        for line in (b"a\n", b"bb\n"):
            with connect(server) as client:
                client.sendall(line)
                client.shutdown(socket.SHUT_WR)
                assert client.recv(10) == line
    server.close()
    assert [outcome for outcome, _, _ in seen.heard] == ["completed", "completed"]
    assert all(started <= ended for _, started, ended in seen.heard)


def test_one_failing_observer_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = Collect()
    both = Observers([Broken(), seen])
    request: Any = object()
    both.request_ended(request, "error", 1.0, 2.0)
    assert seen.heard == [("error", 1.0, 2.0)]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "failed" in record.getMessage() and record.exc_info is not None


class Framed(StreamHandler):
    framing = Lines()

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


def test_each_framed_request_is_one_record_with_its_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="typedserve.access")
    config = ServerConfig(access_log=AccessLogConfig(enabled=True, format="json"))
    server = Server(config=config, transport=TCPTransport(), handler=Framed)
    with serve_in_thread(server), connect(server) as client:
        for line in (b"one\n", b"three\n"):
            client.sendall(line)
            assert client.recv(10) == line.upper()
    server.close()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "typedserve.access"]
    assert [(line["outcome"], line["bytes_in"], line["bytes_out"]) for line in lines] == [
        ("completed", 4, None),  # a kept-alive connection's request: its frame, no total
        ("completed", 6, None),
    ]


# -- the config table --------------------------------------------------------------------------


def test_the_access_log_table_loads_from_toml_and_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text('[access_log]\nenabled = true\ntemplate = "{peer} {outcome}"\n')
    config = ServerConfig.load(toml=toml, environ={"TYPEDSERVE_ACCESS_LOG__FORMAT": "json"})
    assert config.access_log == AccessLogConfig(
        enabled=True, format="json", template="{peer} {outcome}"
    )
    unset = ServerConfig.load(toml=toml, environ={"TYPEDSERVE_ACCESS_LOG__TEMPLATE": "none"})
    assert unset.access_log.template is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"access_log.format": "xml"}, "access_log.format = 'xml': Input should be 'text' or"),
        ({"access_log.enabled": "maybe"}, "access_log.enabled = 'maybe': Input should be a"),
        ({"access_log.template": "{nope}"}, "access_log.template = '{nope}': unknown field"),
        ({"access_log.template": "{peer"}, "access_log.template = '{peer': not a format"),
        ({"access_log.template": "{bytes_in:d}"}, "may be '-', so give them no numeric"),
        ({"access_log.colour": "red"}, "access_log.colour = 'red': Extra inputs"),
    ],
)
def test_a_bad_access_log_value_names_the_field(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig().with_overrides(overrides)
    assert message in str(caught.value)


# -- the record --------------------------------------------------------------------------------


def test_addresses_are_written_as_the_log_shows_them() -> None:
    assert describe_address(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert describe_address(("::1", 80, 0, 0)) == "[::1]:80"
    assert describe_address("/run/s.sock") == "/run/s.sock"
    assert describe_address(b"\0name") == "@name"
    assert describe_address("") is None
    assert describe_address(None) is None


def test_the_text_line_and_a_template() -> None:
    fields: dict[str, Any] = dict.fromkeys(FIELDS) | {
        "peer": "127.0.0.1:40000",
        "local": "127.0.0.1:8000",
        "outcome": "completed",
        "duration_ms": 1.25,
        "bytes_in": 6,
    }
    assert text_line(fields) == "127.0.0.1:40000 -> 127.0.0.1:8000 completed 1.250ms in=6 out=-"
    assert text_line(fields, "{outcome} {duration_ms:.1f} {bytes_out}") == "completed 1.2 -"


def test_a_datagram_record_counts_its_payload() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        from typedserve.requests import new_datagram

        datagram = new_datagram(b"12345", ("127.0.0.1", 9), sock)
        fields = access_fields(datagram, "completed", 1.0, 1.5)
    assert (fields["bytes_in"], fields["bytes_out"]) == (5, None)
    assert fields["duration_ms"] == 500.0
    assert fields["peer"] == "127.0.0.1:9"


def test_the_json_formatter_renders_any_record_with_its_fields() -> None:
    formatter = JsonFormatter()
    record = logging.makeLogRecord(
        {"name": "app", "levelname": "WARNING", "msg": "%s!", "args": ("hi",), "peer": "x"}
    )
    line = json.loads(formatter.format(record))
    assert line["logger"] == "app" and line["level"] == "WARNING"
    assert line["message"] == "hi!" and line["peer"] == "x"
    assert line["time"].endswith("Z")
    try:
        raise ValueError("bad")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "oops", "exc_info": sys.exc_info(), "level": 1})
    assert "ValueError: bad" in json.loads(formatter.format(failed))["exception"]
    clash = logging.makeLogRecord({"msg": "m", "logger": "mine"})
    assert json.loads(formatter.format(clash))["extra_logger"] == "mine"


# -- TCP_INFO ----------------------------------------------------------------------------------


def _info(state: int, received: int, sent: int, retrans: int, notsent: int, acked: int) -> bytes:
    raw = bytearray(216)
    raw[0] = state
    struct.pack_into("=QQ", raw, 120, acked, received)
    struct.pack_into("=I", raw, 144, notsent)
    struct.pack_into("=QQ", raw, 200, sent, retrans)
    return bytes(raw)


def test_tcp_info_counts_written_bytes_and_drops_the_peers_fin() -> None:
    established, close_wait = 1, 8
    assert parse_tcp_info(_info(established, 10, 30, 5, 7, 20)) == (10, 32)
    assert parse_tcp_info(_info(close_wait, 11, 30, 0, 0, 30)) == (10, 30)
    older = _info(established, 10, 0, 0, 0, 20)[:200]  # a kernel before 4.19: acked bytes
    assert parse_tcp_info(older) == (10, 20)
    assert parse_tcp_info(b"\x01" * 100) == (None, None)


def test_tcp_info_of_real_sockets() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname(), timeout=5) as client:
        server, _ = listener.accept()
        with server:
            client.sendall(b"hello\n")
            assert server.recv(100) == b"hello\n"
            server.sendall(b"world!!\n")
            assert client.recv(100) == b"world!!\n"
            client.shutdown(socket.SHUT_WR)
            assert server.recv(100) == b""  # the FIN is in: not counted as a byte
            assert stream_bytes(server) == (6, 8)
    left, right = socket.socketpair()
    with left, right:
        assert stream_bytes(left) == (None, None)  # not TCP
    assert stream_bytes(left) == (None, None)  # closed
