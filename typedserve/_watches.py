"""The threads that cut a serial strategy's request when the loop thread cannot: its handler
runs on that thread (``Inline``), so neither the sweep nor the drain's wait can check the clock
while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["DeadlineWatch", "Watchdog"]


class Watchdog:
    """Cuts a serial strategy's running request at a drain's deadline: its handler runs on
    the draining thread itself, which cannot check the clock while it waits."""

    def __init__(self, deadline: float, cut: Callable[[], int]) -> None:
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()
        self._timer.join()


class DeadlineWatch:
    """Cuts a serial strategy's running request once its ``timeouts.request`` deadline has
    passed (checked every ``period`` seconds, as the loop's sweep does): its handler runs on the
    loop thread, which cannot sweep while the handler waits on a socket it reads directly."""

    def __init__(self, period: float, cut_expired: Callable[[float], None]) -> None:
        self._period = period
        self._cut_expired = cut_expired
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="typedserve-deadlines", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._period):
            self._cut_expired(time.monotonic())

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
