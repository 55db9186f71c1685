"""The body of a ``Prefork`` worker process, from just after the fork to ``os._exit``.

A worker makes the forked copy of the server its own (a fresh selector and wake-up pair, its
row of the shared counters, its signal handlers, its position's ``SO_REUSEPORT`` socket if the
config asks for them: see :mod:`.port_group`), tells the supervisor it is
:class:`~.messages.Ready`, runs the server's loop until the supervisor says
:class:`~.messages.Stop` or :class:`~.messages.Retire` (or its control pipe reaches EOF: the
supervisor died), drains, sends its :class:`~.messages.Report` and exits. It never returns
into the caller's code: whatever happens, it leaves with ``os._exit`` (status 0, or 70 if
anything raised, logged first).

**What a worker keeps of the supervisor's process.** ``fork`` copies every fd, including
those other threads of the supervisor's process hold for a moment: a thread inside
``subprocess.run`` holds the write end of its exec-status pipe, and the run waits for EOF on
it, which never comes while a worker holds a copy (a test doing ``serve_in_thread`` then
``subprocess.run(["curl", ...])`` would hang until the server stops). So, right after the
fork, a worker releases every fd it did not get on purpose. It keeps:

- stdio (0, 1, 2, and the fds of ``sys.stdin``/``stdout``/``stderr``);
- the listening socket, and the read end of its control pipe and write end of its status pipe
  (the supervisor's other fds, its pidfds and its pipes to the other workers, are closed);
- the files and sockets of ``logging`` handlers;
- every fd marked inheritable (``os.set_inheritable(fd, True)``: how an application says a
  child gets this fd);
- every other fd that was already open when supervision began (``serve_forever`` called
  ``Prefork.run``), except pipes: the application's own state made before serving, such as
  a data file or a metrics socket. (The server's loop fds are among them; the worker
  replaces them next.) A socket or file another thread happened to hold at that moment
  cannot be told from the application's and is kept too; a pipe never is.

Everything else is released, whenever the fork happens (first workers, replacements, a
rolling restart): pipes it was not given (they are how other threads wait for a child to exec
or exit) and whatever any thread opened after supervision began. A released fd is pointed
at ``/dev/null`` rather than closed, so its number is never reused under an object that still
holds it. Then a new worker closes its copies of clients of this server living in the
supervisor's process (see :mod:`typedserve.strategies._forked`), opened before supervision
began.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any, NoReturn

from typedserve.config import FDAddress, ServerConfig
from typedserve.drain import RELEASE_WAIT
from typedserve.errors import ServerClosedError
from typedserve.host import ListenerOnDrain, LoopHost
from typedserve.strategies._forked import (
    FdBaseline,
    close_inherited_clients,
    flush_stdio,
    release_inherited_fds,
)
from typedserve.strategies.base import Strategy
from typedserve.strategies.prefork.messages import (
    Decoder,
    Malformed,
    Message,
    Ready,
    Report,
    Retire,
    Stop,
    encode,
)

__all__ = ["Worker", "WorkerStart"]

logger = logging.getLogger("typedserve.server")

"""How long a worker's close waits for its handler threads after its drain (as ``Server``)."""

_EX_SOFTWARE = 70
_READ = 4096


@dataclass(frozen=True)
class WorkerStart:
    """What a new worker is handed by the supervisor at the fork."""

    host: LoopHost[Any]
    slot: int  # its row of the shared counters
    control: int  # read end of its control pipe
    status: int  # write end of its status pipe
    baseline: FdBaseline  # the supervisor's fds when supervision began
    rebind: ServerConfig | None = None  # reuse_port: adopt this position's socket (.port_group)


class Worker:
    """One worker process: ``inner`` is the strategy its loop dispatches to."""

    def __init__(self, start: WorkerStart, inner: Strategy) -> None:
        self.host = start.host
        self.slot = start.slot
        self.control = start.control
        self.status = start.status
        self.inner = inner
        self.baseline = start.baseline
        self.rebind = start.rebind
        self._retiring = False
        self._decoder = Decoder()

    def run(self) -> NoReturn:
        """Serve, drain, report, exit. Never returns."""
        host = self.host
        code = _EX_SOFTWARE  # if anything below raises
        try:
            self._settle_in()
            self._send(Ready())
            host.run_loop()
            grace = host.grace if host.grace is not None else host.config.shutdown.grace
            report = host.drain(grace, self._listener_on_drain())
            self.inner.close(RELEASE_WAIT)
            self._send(Report(report))
            code = 0
        except BaseException:
            logger.exception("worker %d failed", os.getpid())
        finally:
            with contextlib.suppress(BaseException):
                logging.shutdown()
                flush_stdio()
            os._exit(code)

    def _settle_in(self) -> None:
        host, rebind = self.host, self.rebind
        keep = {self._listener(), self.control, self.status}
        if rebind is not None and isinstance(rebind.address, FDAddress):
            keep.add(int(rebind.address.fd))  # its position's socket, adopted next
        release_inherited_fds(self.baseline, keep=keep)
        host.after_fork(loop=True, rebind=rebind)
        grace = host.config.shutdown.grace
        signal.signal(signal.SIGTERM, lambda signum, frame: host.request_stop(grace))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        host.counters.use_row(self.slot)
        close_inherited_clients(host.transport.address)
        host.watch(self.control, self._on_control)

    def _listener(self) -> int:
        """The listening socket's fd (-1 if it is closed)."""
        try:
            return self.host.transport.fileno()
        except ServerClosedError:
            return -1

    def _listener_on_drain(self) -> ListenerOnDrain:
        # Stopping: the supervisor holds the socket (it may serve again); retiring: the new
        # worker at this position serves it on.
        return "leave" if self._retiring else "share"

    def _on_control(self) -> None:
        """A message from the supervisor, or EOF (it died): stop gracefully either way."""
        data = os.read(self.control, _READ)
        messages: list[Message | Malformed] = (
            self._decoder.feed(data) if data else list(self._decoder.close())
        )
        if data and not messages:
            return  # part of a line: wait for the rest
        first = messages[0] if messages else None
        if isinstance(first, Malformed):
            logger.warning(
                "worker %d: malformed message from the supervisor: %r", os.getpid(), first
            )
        grace = first.grace if isinstance(first, Stop) else None
        self._retiring = isinstance(first, Retire)
        self.host.unwatch(self.control)
        os.close(self.control)
        self.host.request_stop(grace if grace is not None else self.host.config.shutdown.grace)

    def _send(self, message: Ready | Report) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
            os.write(self.status, encode(message))
