"""Hostile peers: clients that try to break a server's promises, for tests and benchmarks.

Real sockets over loopback (TCP over IPv4 or IPv6, or Unix stream sockets), each behaving the
way slow, stuck or rude clients do:

- :func:`silent_clients` connect and send nothing: they hold a connection (and, in a naive
  server, a worker) for free;
- :class:`Trickler` / :func:`trickling_clients` send one byte per interval per connection, so
  a request never completes (slowloris), and record when the server closes them;
- :func:`resetting_client` sends a little and resets the connection (TCP RST);
- :func:`connect_many` and :func:`fd_budget` open many connections without running the test
  process out of file descriptors halfway.

Addresses are what ``socket.connect`` takes, or what a server reports as its address: a
``(host, port)`` tuple (a wildcard host such as ``"0.0.0.0"`` or ``"::"`` means loopback), an
IPv6 ``(host, port, flow, scope)`` tuple, or a Unix socket path (``str``, ``bytes`` for an
abstract name, or a path object). The family is inferred from the address unless given.

Resource handling: every socket is closed by whoever opened it: the context managers on exit,
:meth:`Trickler.stop` for a trickler, the caller for :func:`connect_many`. Every loop is bounded
and nothing sleeps: a trickler paces itself with :meth:`threading.Event.wait`, so stopping it is
immediate. Example::

    with serve_in_thread(make_server()) as server, trickling_clients(
        server.address, 10, interval=0.05
    ) as trickler:
        assert trickler.wait_closed(10, timeout=5)  # the server cut all ten
"""

from typedserve.testing.hostile.connections import (
    ConnectAddress,
    connect_many,
    fd_budget,
    resetting_client,
    silent_clients,
)
from typedserve.testing.hostile.trickler import ClosedByServer, Trickler, trickling_clients

__all__ = [
    "ClosedByServer",
    "ConnectAddress",
    "Trickler",
    "connect_many",
    "fd_budget",
    "resetting_client",
    "silent_clients",
    "trickling_clients",
]
