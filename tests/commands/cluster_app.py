"""The backend of the HAProxy cluster test: says which process served whom."""

from __future__ import annotations

import os

from typedserve import StreamHandler
from typedserve.requests import InetSockAddr


class WhoAmI(StreamHandler[None, InetSockAddr]):
    """Replies ``<pid> <client host> <line>`` to one line; nothing to a silent health check."""

    def handle(self) -> None:
        line = self.rfile.readline().strip()
        if line:
            host = self.request.peer[0].encode()
            self.wfile.write(b"%d %s %s\n" % (os.getpid(), host, line))
