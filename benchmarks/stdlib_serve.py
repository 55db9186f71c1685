"""The stdlib counterpart of ``typedserve serve examples.echo_server:LineEcho --port 0``.

What a user writes with ``socketserver``: a ``ThreadingTCPServer`` (typedserve serve's default
strategy is a thread per connection) with a ``StreamRequestHandler`` echoing lines, bound to
``127.0.0.1`` on a free port. Once it listens it prints ``serving TCP on 127.0.0.1:PORT`` to
stderr, the line ``typedserve serve`` prints when it is ready, then serves until a signal ends
it (SIGTERM's default action: the process exits at once).

``run.py``'s ``startup serve-ready`` rows time both from spawn to that line.
"""

import socketserver
import sys


class LineEcho(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


def main() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), LineEcho)
    server.daemon_threads = True
    port = server.server_address[1]
    print(f"serving TCP on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
