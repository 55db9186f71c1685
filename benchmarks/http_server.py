"""``http.server`` serving a small file, on stdlib ``socketserver`` or on ``typedserve.compat``.

``python http_server.py stdlib|compat`` prints the port when ready; fetch ``/small.txt``.
In ``compat`` mode ``typedserve.compat.install()`` runs before ``http.server`` is imported, so
``http.server`` builds on typedserve's ``socketserver``. Both modes use HTTP/1.1 keep-alive,
``TCP_NODELAY`` (``disable_nagle_algorithm``), the same listen backlog as the echo servers and
no per-request logging. The process exits
when stdin closes or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

from servers import BACKLOG, HOST, announce, import_typedserve, start_watchdog

SMALL_FILE = b"typedserve benchmark payload\n" * 35  # ~1 KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["stdlib", "compat"])
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    start_watchdog(args.max_seconds)
    if "http.server" in sys.modules:
        sys.exit("http.server was imported too early")
    if args.mode == "compat":
        import_typedserve()
        import typedserve.compat as compat  # type: ignore[import-not-found,unused-ignore]

        compat.install()
    import http.server

    if args.mode == "compat" and sys.modules["socketserver"].__name__ == "socketserver":
        sys.exit("typedserve.compat.install() did not replace socketserver")

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle on, each keep-alive response would wait
        # for the client's delayed ACK (~40 ms) and both modes would measure that timer.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = BACKLOG

    with tempfile.TemporaryDirectory(prefix="typedserve-bench-") as root:
        (Path(root) / "small.txt").write_bytes(SMALL_FILE)
        handler = functools.partial(Handler, directory=root)
        with Server((HOST, 0), handler) as server:
            announce(int(server.socket.getsockname()[1]))
            server.serve_forever()


if __name__ == "__main__":
    main()
