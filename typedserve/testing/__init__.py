"""Testing kit for typedserve servers: run a server on a thread, talk to it, check for leaks.

Hostile peers (:mod:`typedserve.testing.hostile`: silent, trickling and resetting clients)
try to break a server's promises. Everything here works with plain ``unittest`` or any
runner; with pytest the plugin (:mod:`typedserve.testing.plugin`, registered automatically
when typedserve is installed) also provides fixtures. Example::

    from typedserve.testing import LeakCheck, connect, serve_in_thread

    def test_echo() -> None:
        with LeakCheck(), serve_in_thread(make_server()) as server:
            with connect(server) as client:
                client.sendall(b"ping\\n")
                assert client.recv(100) == b"ping\\n"
"""

from typedserve.testing.clients import connect
from typedserve.testing.hostile import (
    ClosedByServer,
    ConnectAddress,
    Trickler,
    connect_many,
    fd_budget,
    resetting_client,
    silent_clients,
    trickling_clients,
)
from typedserve.testing.leaks import LeakCheck, LeakError, ResourceSnapshot, assert_no_leaks
from typedserve.testing.running import serve_in_thread

__all__ = [
    "ClosedByServer",
    "ConnectAddress",
    "LeakCheck",
    "LeakError",
    "ResourceSnapshot",
    "Trickler",
    "assert_no_leaks",
    "connect",
    "connect_many",
    "fd_budget",
    "resetting_client",
    "serve_in_thread",
    "silent_clients",
    "trickling_clients",
]
