"""``ResumableTask``: the task serving one request, which loop callbacks may resume in place.

An ``asyncio`` task resumes its coroutine one loop iteration after the future it waits on is
resolved: resolving the future schedules a callback, and the callback steps the task. For a
request/response protocol that is the whole cost of a read that waits: a future, a scheduled
callback and a task step per message. A ``ResumableTask`` removes it for the waits that the
stream's own protocol callbacks end (data, end of stream): the coroutine yields :data:`PARK`
instead of a future, and ``data_received`` sends the data straight into it, the way a
``Protocol`` would handle it in place. Everything else the coroutine awaits (sleeps, locks,
other tasks, the stream's drain) is passed through to an ordinary task unchanged.

What handler code sees is what it would see in a task:

- It runs in one ``asyncio.Task`` (:attr:`ResumableTask.task`) from start to end:
  ``asyncio.current_task()`` is that task during an in-place resumption too, so
  ``asyncio.timeout`` and ``TaskGroup`` work, and ``task.cancel()`` interrupts it at the point
  where it waits, parked or not.
- It runs in the task's own ``contextvars`` context, in place or not.
- Only the coroutine the task runs may park: an awaitable parks only while
  :attr:`ResumableTask.stepping` is true, which it is exactly while this object is advancing
  its coroutine. A read awaited in another task (``wait_for``, ``gather``, ``create_task``)
  waits on a future instead.

Threads: everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Final, cast

__all__ = ["PARK", "ResumableTask"]

PARK: Final = object()
"""Yielded by an awaitable that waits to be resumed with :meth:`ResumableTask.resume`."""

_STEP: Final = 0  # hand-off kinds: the coroutine is parked, send it a value or throw into it
_YIELD: Final = 1  # it yielded something else (a future...), which the task must wait on
_DONE: Final = 2  # it returned (StopIteration) or raised

_HandOff = tuple[int, Any, BaseException | None]


class ResumableTask:
    """Runs ``coro`` in a new task on ``loop``; :meth:`resume` continues it where it parked.

    The coroutine parks by yielding :data:`PARK` (from a ``types.coroutine`` generator that
    checks :attr:`stepping` first). The task then waits on a private future, and
    :meth:`resume` steps the coroutine in place (in the task's context, as the current task),
    as often as it parks again. When it does something else in place (awaits a future,
    returns, raises), that is handed to the task: the private future is resolved and the task
    carries on from there on its next step.
    """

    __slots__ = (
        "_context",
        "_coro",
        "_handoff",
        "_loop",
        "_park",
        "_park_done",
        "_send",
        "stepping",
        "task",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        self._loop = loop
        self._coro = coro
        self._send = coro.send
        self._context = contextvars.copy_context()
        self._park: asyncio.Future[None] | None = None  # what the task waits on while parked
        self._park_done: Callable[[], bool] = bool  # self._park.done, bound once per park
        self._handoff: _HandOff | None = None  # what the task does when the park ends
        self.stepping = False
        """Whether this object is advancing the coroutine right now (only then may it park)."""
        self.task: asyncio.Task[None] = loop.create_task(self._drive(), context=self._context)
        """The task running the coroutine."""

    def resume(self, value: object) -> bool:
        """Continue the parked coroutine with ``value``: its ``yield PARK`` returns it.

        In place when this runs from a loop callback (that is the point); through the task
        while some task is running. Returns ``False``, and does nothing, when the task no
        longer waits for it: a cancel reached the park, and the coroutine will see
        ``CancelledError`` there instead.
        """
        park = self._park
        if park is None or self._park_done():
            return False
        task = self.task
        if self.stepping:
            self._hand_off((_STEP, value, None))
            return True
        try:
            _enter_task(self._loop, task)
        except RuntimeError:  # some task is running (a callback called from its step)
            self._hand_off((_STEP, value, None))
            return True
        self.stepping = True
        try:
            yielded = self._context.run(self._send, value)
        except BaseException as error:  # StopIteration included: the task returns the value
            self._hand_off((_DONE, None, error))
            return True
        finally:
            self.stepping = False
            _leave_task(self._loop, task)
        if yielded is not PARK:
            self._hand_off((_YIELD, yielded, None))
        # Parked again: the task goes on waiting on the same future (or, if it was cancelled
        # meanwhile, will throw CancelledError at the park).
        return True

    def throw(self, exc: BaseException) -> bool:
        """Raise ``exc`` in the parked coroutine, through the task (never in place, so that a
        timeout sweep does not run handler code in the middle of its loop). Returns ``False``
        when the task no longer waits (see :meth:`resume`).
        """
        park = self._park
        if park is None or park.done():
            return False
        self._hand_off((_STEP, None, exc))
        return True

    def _hand_off(self, handoff: _HandOff) -> None:
        park = self._park
        assert park is not None
        self._park = None
        self._handoff = handoff
        if not park.done():
            park.set_result(None)

    def _step(self, value: object, exc: BaseException | None) -> object:
        self.stepping = True
        try:
            if exc is None:
                return self._coro.send(value)
            return self._coro.throw(exc)
        finally:
            self.stepping = False

    async def _drive(self) -> None:
        """A native coroutine around :meth:`_run`: since 3.12, tasks accept no other kind."""
        await cast("Awaitable[None]", self._run())

    @types.coroutine
    def _run(self) -> Generator[Any, Any, None]:
        """The task's coroutine: ``yield from coro``, written out so that it can park."""
        value: object = None
        exc: BaseException | None = None
        while True:
            try:
                yielded = self._step(value, exc)
            except StopIteration:
                return  # the coroutine's value is None
            while yielded is PARK:
                park = self._park = self._loop.create_future()
                self._park_done = park.done
                thrown: BaseException | None = None
                try:
                    yield from park
                except GeneratorExit:
                    self._park = None
                    self._coro.close()
                    raise
                except BaseException as error:  # a cancel (of the park or of the task)
                    thrown = error
                self._park = None
                handoff, self._handoff = self._handoff, None
                if handoff is None:  # parked all along; only a cancel ends that
                    value, exc = None, thrown
                    break
                kind, payload, outcome = handoff
                if kind == _DONE:
                    assert outcome is not None
                    if isinstance(outcome, StopIteration):
                        return
                    raise outcome
                if thrown is not None:  # cancelled after the hand-off, before this step
                    if kind == _YIELD and isinstance(payload, asyncio.Future):
                        payload.cancel()  # as the task would cancel what it waits on
                    value, exc = None, thrown
                    break
                if kind == _STEP:
                    value, exc = payload, outcome
                    break
                yielded = payload  # _YIELD: wait on it as the coroutine asked
            else:
                try:
                    value, exc = (yield yielded), None
                except GeneratorExit:
                    self._coro.close()
                    raise
                except BaseException as error:
                    value, exc = None, error
