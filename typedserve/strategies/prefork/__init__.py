"""``Prefork``: a supervisor process and N worker processes serving the same address.

Processes and threads: ``Server.serve_forever()`` calls :meth:`Prefork.run`, which makes the
calling process the **supervisor**: it forks ``workers`` processes and then only watches them
(pidfds and one status pipe each, in a selector of its own); it never accepts. Each **worker**
runs the server's normal loop (``host.run_loop()``) dispatching to a ``ThreadPool`` of
``threads_per_worker`` threads with no queue, then the server's normal drain, and leaves with
``os._exit``. Workers share the listening socket the server bound (inherited through the
fork), or, with ``config.reuse_port``, one ``SO_REUSEPORT`` socket per worker position, which
the kernel balances connections between. The supervisor owns those sockets for as long as it
serves (see :mod:`.port_group`): a dead worker's queue waits for its replacement, and a rolling
restart's new worker takes over its predecessor's socket, so no connection is reset.

Supervision: a worker that dies unexpectedly is logged (WARNING) and replaced; its requests in
flight are lost and counted as errors. At most ``max_restarts`` replacements start within
``restart_window`` seconds; beyond that they are delayed, so a crash loop does not spin.
``SIGHUP`` (or :meth:`Prefork.restart_workers`) starts a rolling restart: each worker is
replaced by a new one, and told to drain once its successor is ready. When ``run`` owns the
main thread it handles SIGTERM and SIGINT as "stop gracefully" and SIGHUP as above (restoring
the previous handlers when it returns); workers ignore SIGINT/SIGHUP and treat SIGTERM as a
graceful stop with ``config.shutdown.grace``. A worker whose supervisor dies (its control pipe
reaches EOF) drains and exits too.

Stopping: on a stop request ``run`` tells every worker to stop accepting and drain (with the
requested grace, else ``config.shutdown.grace``) and returns; :meth:`Prefork.drain` waits for
their :class:`~typedserve.drain.DrainReport` (sent over the status pipe) and sums them;
:meth:`Prefork.close` kills and reaps whatever is left. Counters: each worker writes its own
row of the server's shared counters, so ``server.stats()`` in the supervisor sums them.

Modules: :mod:`.strategy` (the :class:`Prefork` strategy itself), :mod:`.supervisor` (forking,
watching and stopping workers), :mod:`.worker` (the body of a worker process) and
:mod:`.messages` (what the two say to each other, sans-IO).
"""

from typedserve.strategies.prefork.strategy import Prefork

__all__ = ["Prefork"]
