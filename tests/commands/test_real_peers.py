"""Real external clients (nc, socat, curl) against real servers, as a user would run them.

`.ci/run` installs these programs from Debian's packages; elsewhere a missing one skips its test.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.commands.processes import Running

pytestmark = pytest.mark.timeout(60)

_DEMO_READY = r"nc -N \S+ (\d+)[\s\S]*Press Ctrl-C to stop"


def _needs(program: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(program) is None, reason=f"{program} is not installed")


def _run(args: list[str], data: bytes) -> bytes:
    return subprocess.run(args, input=data, capture_output=True, timeout=20, check=True).stdout


@_needs("nc")
def test_the_readme_nc_commands_answer(launch: Callable[..., Running]) -> None:
    demo = launch("-m", "typedserve", "demo", "--port", "0", port_pattern=_DEMO_READY)
    port = str(demo.port)
    assert _run(["nc", "-N", "127.0.0.1", port], b"hello\n") == b"hello\n"
    assert _run(["nc", "-u", "-w1", "127.0.0.1", port], b"hello\n") == b"hello\n"
    assert demo.stop()[0] == 0


@_needs("socat")
def test_socat_over_a_unix_socket(launch: Callable[..., Running], tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--unix", str(path),
        port_pattern=r"serving UnixStream on ",
    )  # fmt: skip
    assert _run(["socat", "-t5", "-", f"UNIX-CONNECT:{path}"], b"via unix\n") == b"via unix\n"
    assert server.stop()[0] == 0


_HTTP_ON_COMPAT = """
import sys, typedserve.compat
typedserve.compat.install()
import functools, http.server
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
    print(f"http on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
"""


@_needs("curl")
def test_curl_fetches_from_stdlib_http_server_on_compat(
    launch: Callable[..., Running], tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_text("served by http.server on typedserve.compat\n")
    server = launch("-c", _HTTP_ON_COMPAT, str(tmp_path))
    url = f"http://127.0.0.1:{server.port}/hello.txt"
    body = _run(["curl", "-sSf", "--max-time", "10", url, url], b"")  # two requests, keep-alive
    assert body == b"served by http.server on typedserve.compat\n" * 2
    missing = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"http://127.0.0.1:{server.port}/nope",
        ],
        capture_output=True,
        timeout=20,
    )
    assert missing.stdout == b"404"
    server.stop()
