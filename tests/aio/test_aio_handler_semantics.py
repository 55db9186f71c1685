"""Inside an async handler, asyncio behaves as in any task.

The handler of one request is one task from start to end, with its own ``contextvars`` context;
``asyncio.timeout``, ``wait_for``, child tasks and sleeps work around the stream's reads; the
framing reads (``readexactly``, ``readuntil``, ``read()`` to the end) see data however the peer
split it. These hold on every loop, whatever shortcuts the server takes to resume a reader.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
from typing import TYPE_CHECKING

import pytest

from tests.conftest import DATAGRAM_CASES, STREAM_CASES
from typedserve import Datagram
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.aio.conftest import MakeAioServer

pytestmark = pytest.mark.timeout(20)

WAIT = 5.0
TCP = STREAM_CASES[0]
UDP = DATAGRAM_CASES[0]

label: contextvars.ContextVar[bytes] = contextvars.ContextVar("label", default=b"-")


def read_line(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and (chunk := client.recv(1)):
        data += chunk
    return data


class TaskAndContext(AsyncHandler[AsyncStream]):
    """Labels itself with its first line, then answers each line with what it sees."""

    async def handle(self) -> None:
        task = asyncio.current_task()
        label.set(await self.request.readline())
        self.request.write(b"ready\n")
        async for line in self.request:
            same = task is not None and asyncio.current_task() is task
            self.request.write(b"%d %s %s" % (same, label.get().strip(), line))
            await self.request.drain()


def test_each_request_is_one_task_with_its_own_context_across_reads(
    aio_server: MakeAioServer,
) -> None:
    server = aio_server(TCP, TaskAndContext)
    with serve_in_thread(server), connect(server) as one, connect(server) as two:
        one.sendall(b"one\n")
        two.sendall(b"two\n")
        assert read_line(one) == read_line(two) == b"ready\n"
        for n in range(3):  # one round trip at a time: every read waits for the peer
            one.sendall(b"a%d\n" % n)
            assert read_line(one) == b"1 one a%d\n" % n
            two.sendall(b"b%d\n" % n)
            assert read_line(two) == b"1 two b%d\n" % n


class TimeoutsAndChildTasks(AsyncHandler[AsyncStream]):
    speaks_first = True  # it acts (times out a read) before the client sends anything

    async def handle(self) -> None:
        stream = self.request
        try:
            async with asyncio.timeout(0.05):
                await stream.read(10)
        except TimeoutError:
            stream.write(b"timed out\n")
        stream.write(await asyncio.wait_for(stream.read(10), WAIT))
        stream.write(await asyncio.create_task(stream.readexactly(3)))
        await asyncio.sleep(0)
        stream.write(await stream.readline())
        await asyncio.sleep(0.001)
        first, second = await asyncio.gather(stream.readexactly(2), asyncio.sleep(0, b"!"))
        stream.write(first + second + b"\n")


def test_timeouts_wait_for_child_tasks_and_sleeps_work_around_reads(
    aio_server: MakeAioServer,
) -> None:
    server = aio_server(TCP, TimeoutsAndChildTasks)
    with serve_in_thread(server), connect(server) as client:
        assert read_line(client) == b"timed out\n"  # nothing sent: the read was cut
        client.sendall(b"hello\n")
        assert read_line(client) == b"hello\n"
        client.sendall(b"ab")
        client.sendall(b"c\n")
        assert read_line(client) == b"abc\n"
        client.sendall(b"xy")
        assert read_line(client) == b"xy!\n"


class Framing(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        stream = self.request
        stream.write(await stream.readexactly(3) + b"|")
        stream.write(await stream.readuntil(b"--") + b"|")
        stream.write(await stream.read(-1) + b"|")
        stream.write(b"%d" % stream.at_eof())


def test_framing_reads_see_the_data_however_it_was_split(aio_server: MakeAioServer) -> None:
    server = aio_server(TCP, Framing)
    with serve_in_thread(server), connect(server) as client:
        for piece in (b"a", b"bc", b"x-", b"-", b"rest", b" of it"):
            client.sendall(piece)
            if piece == b"bc":
                assert client.recv(4) == b"abc|"
        client.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := client.recv(100):
            data += chunk
        assert data == b"x--|rest of it|1"


class DatagramTaskAndContext(AsyncHandler[Datagram]):
    """Replies with the label it inherited, whether it runs as a task, and its own label."""

    async def handle(self) -> None:
        inherited = label.get()
        label.set(self.request.payload)
        task = asyncio.current_task()
        if self.request.payload == b"sleep":
            await asyncio.sleep(0.01)
        same = task is not None and asyncio.current_task() is task
        self.request.reply(b"%s %d %s" % (inherited, same, label.get()))


def test_each_datagram_is_one_task_with_its_own_context(aio_server: MakeAioServer) -> None:
    server = aio_server(UDP, DatagramTaskAndContext)
    with serve_in_thread(server), connect(server) as client:
        for payload in (b"one", b"sleep", b"two"):
            client.send(payload)
            assert client.recv(100) == b"- 1 " + payload
