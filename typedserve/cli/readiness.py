"""What the ``typedserve`` command tells systemd (``Type=notify``): ready, then stopping.

``READY=1`` (with ``MAINPID`` and a ``STATUS=`` line of the counters) goes once every server's
loop runs; ``STOPPING=1`` (with the counters then) when the stop begins. Both only when
``$NOTIFY_SOCKET`` is set; see :mod:`typedserve.systemd` (which also pings the watchdog from
the loops themselves).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Final, Protocol

from typedserve.server import ServerStats
from typedserve.systemd import notify_ready, notify_stopping, status_line

__all__ = ["Readiness"]

_CHECK_STOP_EVERY: Final = 0.1  # seconds: how often a wait for the loops looks at the stop


class _Serving(Protocol):
    def wait_serving(self, timeout: float | None = None) -> bool: ...
    def stats(self) -> ServerStats: ...


class Readiness:
    """Sends ``READY=1`` from a ``typedserve-ready`` thread once every server serves, unless the
    stop came first; :meth:`stopping` sends ``STOPPING=1`` (once). The thread is started by
    :meth:`start` (only when ``$NOTIFY_SOCKET`` is set) and joined by :meth:`close`, which
    first ends its wait (it waits a bounded time per check, looking at the stop between)."""

    def __init__(self, servers: Sequence[_Serving]) -> None:
        self._servers = servers
        self._lock = threading.Lock()  # READY is never sent after STOPPING
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Wait for the servers on a thread of its own, then send ``READY=1``."""
        if os.environ.get("NOTIFY_SOCKET"):
            self._thread = threading.Thread(target=self._announce, name="typedserve-ready")
            self._thread.start()

    def _announce(self) -> None:
        for server in self._servers:
            while not server.wait_serving(_CHECK_STOP_EVERY):
                if self._stopped.is_set():
                    return
        with self._lock:
            if not self._stopped.is_set():
                notify_ready(self._status("serving"))

    def stopping(self) -> None:
        """The stop begins: ``STOPPING=1`` (the first call only)."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            if self._thread is not None:
                notify_stopping(self._status("stopping"))

    def close(self) -> None:
        """End the wait for the servers, if it still runs, and join the thread."""
        self.stopping()
        if self._thread is not None:
            self._thread.join()

    def _status(self, what: str) -> str:
        return status_line((server.stats() for server in self._servers), what)
