"""``PullSource``: worker threads that receive datagrams themselves, instead of the loop thread.

A datagram is received and served in a few microseconds, so handing each one from the loop
thread to a worker (a queue put, a thread wake-up, two GIL hand-offs) costs as much as serving
it. With a strategy that can lend its threads (:class:`~typedserve.strategies.base.Pulling`:
``ThreadPool``, and so ``Prefork``'s workers), the loop gives the datagram socket to up to
``limit`` of those threads while it runs: each receives a datagram, counts and checks it as
the loop would (``accepted``, the access policy) and serves it on the spot. The loop thread
keeps everything else (the stop, the sweep of ``timeouts.request``, the systemd watchdog).

Waiting: a busy thread does not wait at all: it receives until the socket is empty. Then one
idle thread at a time waits on the socket (the round's one ``epoll``: the socket, and a
wake-up fd for the stop); the other idle threads wait on a condition until that watcher takes
a datagram and hands the watch to one of them, so an arrival wakes one thread, not all.

At most ``limit`` requests are in flight (one per pulling thread), so the admission limit holds
without a queue; what exceeds it waits in the socket's receive buffer, as with
``limits.overload="pause"`` (the only overload policy pulled serving is used with: "reject"
needs the loop to see what it turns away).

The stop (:meth:`PullSource.stop`, from the loop thread) is exact: once it returns no thread is
between receiving a datagram and recording it, every datagram received before it is already
counted in the strategy's ``in_flight``, and any received after the stop was asked is handed
back (:meth:`PullSource.take_leftovers`, counted as accepted, not yet checked) for the loop to
serve or refuse with its drain, so nothing is lost or served behind the drain's back.

Only on Linux (``EPOLLEXCLUSIVE``); elsewhere the loop dispatches datagrams itself.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from functools import partial
from typing import Generic

from typedserve._serving import Serving
from typedserve._wakeup import Waker
from typedserve.admission import AcceptBackoff, log_backoff
from typedserve.counters import ACCEPTED
from typedserve.requests import RequestT
from typedserve.transports.base import Transport

__all__ = ["PULL_SUPPORTED", "PullSource", "PullWork"]

logger = logging.getLogger("typedserve.server")

PULL_SUPPORTED = hasattr(select, "epoll") and hasattr(select, "EPOLLEXCLUSIVE")
"""Whether this platform lets threads share a socket's readiness one at a time."""

PullWork = Callable[[Callable[[], None], Callable[[], None]], None]
"""What a pulling thread runs: ``work(started, ended)`` (see :meth:`PullSource.work`)."""

_STOP_WAIT = 5.0  # a receiving thread is inside one non-blocking recvfrom: microseconds


class _Puller:
    """One pulling thread's flag: set while it may be inside a receive (its own attribute, so
    setting it takes no lock; the GIL orders it against the round's ``stopped``)."""

    __slots__ = ("receiving",)

    def __init__(self) -> None:
        self.receiving = False


class _Round:
    """One run of the loop's pulling: the watcher's ``epoll`` (the socket, and a wake-up pair
    for the stop) and the threads (the last one out of a stopped round closes both, so no
    waiting thread misses the stop)."""

    __slots__ = ("parked", "poller", "pullers", "stopped", "waker", "watching")

    def __init__(self, fd: int) -> None:
        self.waker = Waker()
        # One epoll for the round, used by its one watcher at a time: every epoll a socket is
        # registered in is visited for each datagram that arrives (16 threads with one each
        # served about 15 % fewer datagrams per second).
        self.poller = select.epoll(2)
        try:
            # EXCLUSIVE: of the processes sharing the socket (Prefork), one watcher is woken.
            self.poller.register(fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
            self.poller.register(self.waker.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise
        self.pullers: list[_Puller] = []
        self.stopped = False
        self.watching = False  # a thread waits on the socket
        self.parked = 0  # idle threads waiting to take over from it

    def over(self) -> bool:
        """Whether the round has stopped."""
        return self.stopped

    def quiet(self) -> bool:
        """Whether no thread of the round is inside a receive."""
        return not any(puller.receiving for puller in self.pullers)

    def close(self) -> None:
        """Release the epoll and the wake-up pair."""
        self.poller.close()
        self.waker.close()


class PullSource(Generic[RequestT]):
    """The datagram socket lent to a strategy's threads while the loop runs (module docstring)."""

    def __init__(
        self,
        transport: Transport[RequestT],
        receiver: Callable[[], Callable[[], RequestT | None] | None],
        serving: Serving[RequestT],
    ) -> None:
        self._transport = transport
        self._receiver = receiver
        self._serving = serving
        # Its own lock (a forked worker builds its loop, and so this, after the fork): it
        # guards the fields below, the strategy's ``started``/``ended`` and this process's
        # ``accepted`` count, which no other thread writes while threads pull.
        self._changed = threading.Condition(threading.Lock())
        self._round: _Round | None = None  # the open round, or None between runs
        self._leftovers: list[RequestT] = []
        self.error: BaseException | None = None
        """A receive error that is not a resource shortage: the loop raises it from ``run``."""
        self._on_error: Callable[[], None] = _nothing

    def open(self, on_error: Callable[[], None]) -> PullWork:
        """Let threads pull until :meth:`stop`: what each runs (``work(started, ended)``, see
        :meth:`work`); ``on_error`` wakes the loop when :attr:`error` is set."""
        round_ = _Round(self._transport.fileno())
        with self._changed:
            self._round, self.error, self._on_error = round_, None, on_error
        return partial(self.work, round_)

    def work(self, round_: _Round, started: Callable[[], None], ended: Callable[[], None]) -> None:
        """Pull and serve until ``round_`` stops, on a strategy's thread. ``started()`` counts
        one more request in the strategy's ``in_flight`` as a datagram is recorded as taken;
        ``ended()`` ends that count once it is served or refused (at the thread's next receive,
        in the same locked section: one lock per datagram). Both are called under this
        source's lock, so never at once."""
        puller = _Puller()
        with self._changed:
            if round_.over():
                return  # stopped before this thread got to it
            round_.pullers.append(puller)
        try:
            self._pull(round_, puller, started, ended)
        finally:
            with self._changed:
                puller.receiving = False
                round_.pullers.remove(puller)
                last = round_.over() and not round_.pullers
                self._changed.notify_all()
            if last:
                round_.close()

    def _pull(
        self,
        round_: _Round,
        puller: _Puller,
        started: Callable[[], None],
        ended: Callable[[], None],
    ) -> None:
        receive = self._receiver()
        if receive is None:
            return
        serving, leftovers = self._serving, self._leftovers
        lock, row = self._changed, serving.counters.row  # this process's row, now
        serve = serving.serve
        served = False  # a request served whose end is still to be counted (with the next)
        try:
            backoff = AcceptBackoff()
            while True:
                # The flag first, then the check: a stop that saw the flag clear finds this
                # thread out of any receive; one that came after the check waits for it.
                # (``self._round is not round_``: the stop has cleared it, or a new run
                # replaced it.)
                puller.receiving = True
                if self._round is not round_:
                    return
                failure = None
                try:
                    request = receive()
                except OSError as exc:
                    request, failure = None, exc
                lock.acquire()  # a bare pair, as in Serving.serve: nothing inside can raise
                if served:
                    ended()
                    served = False
                stopped = self._round is not round_
                if request is not None:
                    row[ACCEPTED] += 1
                    if stopped:
                        leftovers.append(request)
                        request = None
                    else:
                        started()
                puller.receiving = False
                if stopped:
                    lock.notify_all()
                lock.release()
                if failure is not None:
                    if not self._failed(backoff, failure, round_):
                        return
                    continue
                if request is None:
                    if not stopped:
                        self._idle(round_)
                    continue
                served = True
                verify = serving.verify
                if verify is None or serving.verified_by_worker(verify, request):
                    serve(request)
        finally:
            if served:
                with lock:
                    ended()

    def _idle(self, round_: _Round) -> None:
        """The socket is empty: wait on it, or, if another thread already does, wait to take
        over from it. One watcher at a time: on one core, every extra thread woken by an
        arrival costs GIL hand-offs (16 threads all in ``epoll_wait``, even with
        ``EPOLLEXCLUSIVE``, served about 10 % fewer datagrams per second than this)."""
        changed = self._changed
        with changed:
            if round_.over():
                return
            if round_.watching:  # park until the watcher takes a datagram, or the stop
                round_.parked += 1
                changed.wait()
                round_.parked -= 1
                return
            round_.watching = True
        try:
            round_.poller.poll()  # a datagram or the stop
        finally:
            with changed:
                round_.watching = False
                if round_.parked:
                    changed.notify()  # the next watcher (the stop notifies them all)

    def _failed(self, backoff: AcceptBackoff, exc: OSError, round_: _Round) -> bool:
        """A receive failed: wait out a resource shortage (or the stop), or record the error
        for the loop. Whether to keep pulling."""
        try:
            delay = backoff.failed(exc)  # re-raises what is not a resource error
        except OSError as fatal:
            with self._changed:
                if self.error is None:
                    self.error = fatal
            self._on_error()
            return False
        log_backoff(self._transport.address, exc, delay)
        stop = select.poll()
        stop.register(round_.waker.fileno(), select.POLLIN)
        stop.poll(delay * 1000)  # the stop ends the wait
        return True

    def stop(self) -> None:
        """End pulling (loop thread): wake every waiting thread and wait until none is inside
        a receive. What threads received after this began is in :meth:`take_leftovers`."""
        with self._changed:
            round_, self._round = self._round, None
            if round_ is None:
                return
            round_.stopped = True
            round_.waker.wake()  # stays readable: the watcher (and the backing off) see it
            self._changed.notify_all()  # the parked threads
            if not self._changed.wait_for(round_.quiet, _STOP_WAIT):
                logger.warning("a pulling thread did not leave its receive in %ss", _STOP_WAIT)
            unused = not round_.pullers
        if unused:
            round_.close()

    def take_leftovers(self) -> list[RequestT]:
        """The datagrams received after the stop was asked (accepted, not yet checked by the
        access policy), for the loop to serve or refuse."""
        with self._changed:
            leftovers, self._leftovers = self._leftovers, []
        return leftovers


def _nothing() -> None:
    return None
