"""Two servers in one process, each on its own socket passed by systemd (``web``, ``admin``),
served until SIGTERM by the command's own stop (``typedserve.cli.run_until_signal``)."""

from __future__ import annotations

import sys

from typedserve import FDAddress, Server, ServerConfig, ThreadPerRequest, UnixStreamTransport
from typedserve.cli import run_until_signal
from typedserve.demo import StreamEcho


def main() -> int:
    """Serve the echo on the ``web`` and ``admin`` sockets until a signal."""
    servers = [
        Server(
            config=ServerConfig(address=FDAddress(fd="systemd", name=name)),
            transport=UnixStreamTransport(),
            handler=StreamEcho,
            strategy=ThreadPerRequest(),
        )
        for name in ("web", "admin")
    ]
    return run_until_signal(servers)


if __name__ == "__main__":
    sys.exit(main())
