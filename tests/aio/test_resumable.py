"""``ResumableTask`` on its own: parking, in-place resumption, and what the task sees.

No sockets: a ``Parker`` plays the stream (its ``wait`` parks when the runner's coroutine awaits
it), and plain loop callbacks play ``data_received``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import pytest

from typedserve.aio.loops import LoopName, loop_factory
from typedserve.aio.resumable import PARK, ResumableTask

pytestmark = pytest.mark.timeout(10)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


class Parker:
    """An awaitable source of values that parks the runner's coroutine, or uses a future."""

    def __init__(self) -> None:
        self.runner: ResumableTask | None = None
        self.future: asyncio.Future[object] | None = None

    @types.coroutine
    def wait(self) -> Generator[Any, Any, object]:
        if self.runner is not None and self.runner.stepping:
            return (yield PARK)
        self.future = asyncio.get_running_loop().create_future()
        return (yield from self.future)


def start(parker: Parker, coro: Coroutine[Any, Any, None]) -> ResumableTask:
    parker.runner = ResumableTask(asyncio.get_running_loop(), coro)
    return parker.runner


def from_callback(action: Callable[[], object]) -> asyncio.Future[object]:
    """Run ``action`` in a plain loop callback (as the protocol callbacks run); its result."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[object] = loop.create_future()
    loop.call_soon(lambda: done.set_result(action()))
    return done


def run(main: Coroutine[Any, Any, None], loop_name: LoopName) -> None:
    loop = loop_factory(loop_name)()
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_values_are_sent_in_place_as_the_task_in_its_own_context(loop_name: LoopName) -> None:
    async def main() -> None:
        parker, seen = Parker(), []

        async def serve() -> None:
            var.set("mine")
            while (value := await parker.wait()) is not None:
                seen.append((value, asyncio.current_task() is runner.task, var.get()))

        runner = start(parker, serve())
        await settle()
        for value in ("a", "b"):
            assert await from_callback(functools.partial(runner.resume, value)) is True
            assert seen[-1] == (value, True, "mine")  # already handled, in the callback
        assert var.get() == "unset"  # the handler's context is not the caller's
        await from_callback(lambda: runner.resume(None))
        await asyncio.wait_for(runner.task, 1)
        assert runner.task.result() is None

    run(main(), loop_name)


def test_a_cancel_reaches_the_parked_coroutine_and_it_may_go_on(loop_name: LoopName) -> None:
    async def main() -> None:
        parker, seen = Parker(), list[object]()

        async def serve() -> None:
            try:
                await parker.wait()
            except asyncio.CancelledError:
                seen.append("cancelled")
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            seen.append(await parker.wait())

        runner = start(parker, serve())
        await settle()
        runner.task.cancel()
        assert runner.resume("lost") is False  # not taken: the cancel comes first
        await settle()
        assert seen == ["cancelled"]
        await from_callback(lambda: runner.resume("next"))
        await asyncio.wait_for(runner.task, 1)
        assert seen == ["cancelled", "next"]

    run(main(), loop_name)


def test_what_else_it_does_in_place_is_handed_to_the_task(
    loop_name: LoopName,
) -> None:
    async def main() -> None:
        parker, seen = Parker(), []

        async def serve() -> None:
            seen.append(await parker.wait())
            await asyncio.sleep(0.01)  # a future, awaited after an in-place resumption
            seen.append(await parker.wait())
            raise ValueError("boom")

        runner = start(parker, serve())
        await settle()
        await from_callback(lambda: runner.resume(1))
        await asyncio.sleep(0.05)
        await from_callback(lambda: runner.resume(2))
        with pytest.raises(ValueError, match="boom"):
            await asyncio.wait_for(runner.task, 1)
        assert seen == [1, 2]

    run(main(), loop_name)


def test_resumed_from_a_task_or_with_an_error_it_goes_through_the_task(
    loop_name: LoopName,
) -> None:
    async def main() -> None:
        parker, seen = Parker(), []

        async def serve() -> None:
            seen.append(await parker.wait())
            try:
                await parker.wait()
            except KeyError as exc:
                seen.append(exc)

        runner = start(parker, serve())
        await settle()
        assert runner.resume("from a task") is True  # this test's task is running
        assert seen == []
        await settle()
        assert seen == ["from a task"]
        error = KeyError("k")
        assert await from_callback(lambda: runner.throw(error)) is True
        await asyncio.wait_for(runner.task, 1)
        assert seen == ["from a task", error]

    run(main(), loop_name)


def test_a_wait_in_another_task_uses_a_future(loop_name: LoopName) -> None:
    async def main() -> None:
        parker, seen = Parker(), []

        async def serve() -> None:
            # A task of its own (wait_for alone runs the wait in this task since 3.12).
            seen.append(await asyncio.wait_for(asyncio.ensure_future(parker.wait()), 1))

        runner = start(parker, serve())
        await settle()
        assert parker.future is not None  # awaited by another task: no park
        assert runner.resume("x") is False
        parker.future.set_result("x")
        await asyncio.wait_for(runner.task, 1)
        assert seen == ["x"]

    run(main(), loop_name)


def test_a_cancel_after_the_coroutine_returned_in_place_is_too_late(loop_name: LoopName) -> None:
    async def main() -> None:
        parker = Parker()

        async def serve() -> None:
            await parker.wait()

        runner = start(parker, serve())
        await settle()

        def resume_then_cancel() -> bool:
            runner.resume("last")  # returns in place; the task ends on its next step
            return runner.task.cancel()

        await from_callback(resume_then_cancel)
        await asyncio.wait_for(runner.task, 1)
        assert not runner.task.cancelled()

    run(main(), loop_name)
