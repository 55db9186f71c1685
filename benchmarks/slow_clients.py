"""A normal client among slow ones: ``python benchmarks/slow_clients.py PORT [options]``.

The client side of the ``slow-clients`` row (``run.py`` starts it on the generator's CPU,
against a ``servers.py lines NAME`` server on 127.0.0.1):

1. opens ``--silent`` connections that send nothing and ``--trickling`` connections that send
   one byte per ``--interval`` seconds and never a newline (:mod:`typedserve.testing.hostile`),
   and waits until the trickler has done two rounds: every connection is open and trickling;
2. prints ``{"up": N}`` and waits (at most 60 s) for a line on stdin, so that the controller
   can first check that the server holds the N connections;
3. makes ``--requests`` requests one after the other, each on a new connection: connect, send
   one line, read the same line back, close, all within ``--timeout`` seconds (past it the
   request is unanswered); the phase stops after ``--budget`` seconds, and the requests not
   made by then count as unanswered too;
4. prints one JSON line: the latency in ms of each answered request, why the others failed,
   how many slow connections the server had closed by the end, and the CPU time this process
   used since it started; then closes every connection and exits.

Every wait is bounded; all traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
LINE = b"a normal client's request\n"
REPO = Path(__file__).resolve().parent.parent
GO_TIMEOUT = 60.0  # how long to wait for the controller's go


def one_request(port: int, timeout: float) -> float | str:
    """Latency in ms of one connect-send-read-close request, or why it failed."""
    start = time.perf_counter()
    deadline = start + timeout
    reply = b""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(LINE)
            while len(reply) < len(LINE):  # every pass reads at least one byte or leaves
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return "timeout"
                sock.settimeout(remaining)
                chunk = sock.recv(len(LINE) - len(reply))
                if not chunk:
                    return "eof"
                reply += chunk
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except OSError as exc:
        return type(exc).__name__
    if reply != LINE:
        return "wrong reply"
    return (time.perf_counter() - start) * 1000.0


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed (or reset) a silent connection, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_for_go() -> bool:
    """Whether the controller said go (a line on stdin) within ``GO_TIMEOUT`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(sys.stdin.buffer, selectors.EVENT_READ)
        if not selector.select(GO_TIMEOUT):
            return False
    return bool(sys.stdin.buffer.readline())


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def normal_requests(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run the normal client's requests one after the other, within the phase budget."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    start = time.monotonic()
    made = 0
    for _ in range(args.requests):
        if time.monotonic() - start >= args.budget:
            break
        outcome = one_request(port, args.timeout)
        made += 1
        if isinstance(outcome, float):
            latencies.append(round(outcome, 4))
        else:
            failures[outcome] += 1
    return {
        "requests": args.requests,
        "latencies_ms": latencies,
        "failures": dict(failures),
        "not_attempted": args.requests - made,
        "wall_s": time.monotonic() - start,
    }


def run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(REPO))  # the checkout this file lives in, if not installed
    from typedserve.testing.hostile import silent_clients, trickling_clients

    address = (HOST, args.port)
    with (
        silent_clients(address, args.silent) as silent,
        trickling_clients(address, args.trickling, interval=args.interval) as trickler,
    ):
        if not trickler.wait_rounds(2, timeout=10 * args.interval + 5):
            print(f"the trickler did not complete two rounds: {trickler.closed}", file=sys.stderr)
            return 1
        emit({"up": args.silent + args.trickling, "closed": trickler.closed_count})
        if not wait_for_go():
            print("no go from the controller", file=sys.stderr)
            return 1
        record = normal_requests(args.port, args)
        record["silent_closed"] = sum(closed_by_server(sock) for sock in silent)
        record["trickling_closed"] = trickler.closed_count
        record["cpu_s"] = time.process_time()  # since the start, every thread (the trickler's)
        emit(record)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--silent", type=int, default=300, help="connections that send nothing")
    parser.add_argument("--trickling", type=int, default=300, help="connections that trickle")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--requests", type=int, default=200, help="normal requests")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per normal request")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds for all of them")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
