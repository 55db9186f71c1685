"""``typedserve serve --log-level --log-format --access-log``: the command configures logging
once (stderr), and the access log's records reach it from the serving process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.commands.processes import ROOT, Running, tcp_roundtrip
from typedserve.access_log.config import FIELDS

pytestmark = pytest.mark.timeout(60)

_READY = r"serving TCP on 127\.0\.0\.1:(\d+)"


@pytest.mark.parametrize("strategy", ["threads", "prefork"])
def test_json_logs_carry_one_access_record_per_request(
    launch: Callable[..., Running], strategy: str
) -> None:
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--port", "0",
        "--strategy", strategy, "--access-log", "--log-format", "json", "--log-level", "info",
        port_pattern=_READY,
    )  # fmt: skip
    assert tcp_roundtrip(server.port, b"hello\n") == b"hello\n"
    seen = server.expect(r'"logger":"typedserve\.access"[^\n]*\n')
    status, rest = server.stop()
    assert status == 0, rest
    lines = (server.banner + seen + rest).splitlines()
    logged = [json.loads(line) for line in lines if not line.startswith("typedserve: ")]
    [access] = [line for line in logged if line["logger"] == "typedserve.access"]
    assert set(FIELDS) <= set(access)
    assert access["outcome"] == "completed"
    assert (access["bytes_in"], access["bytes_out"]) == (6, 6)
    assert access["local"] == f"127.0.0.1:{server.port}"
    assert access["level"] == "INFO"
    assert any(line["logger"] == "typedserve.server" for line in logged)  # the drain's line


def test_text_logs_and_the_level(launch: Callable[..., Running]) -> None:
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--port", "0",
        "--access-log",
        port_pattern=_READY,
    )  # fmt: skip
    assert tcp_roundtrip(server.port, b"hi\n") == b"hi\n"
    line = server.expect(r"INFO typedserve\.access: [^\n]*\n")
    assert re.search(
        rf"INFO typedserve\.access: 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{server.port} completed "
        r"\d+\.\d{3}ms in=3 out=3\n",
        line,
    ), line
    assert server.stop()[0] == 0
    quiet = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--port", "0",
        "--access-log", "--log-level", "warning",
        port_pattern=_READY,
    )  # fmt: skip
    assert tcp_roundtrip(quiet.port, b"hi\n") == b"hi\n"
    status, rest = quiet.stop()
    assert status == 0
    assert "typedserve.access" not in rest and "INFO" not in rest  # below the level


def test_a_bad_log_format_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "typedserve", "serve", "x:y", "--log-format", "xml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--log-format" in result.stderr
