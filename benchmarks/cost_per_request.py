"""What one request costs a server, counted rather than timed: ``python cost_per_request.py``.

Throughput on a shared 2-core VM moves by more than 3 % between runs of identical code, so a
small regression on the hot path cannot be seen in ``run.py``'s table. This script counts what
does not move: for each server and scenario it starts ``servers.py`` under a profile hook that
counts every Python-level and C-level call made in the server process (all threads; forked
children and prefork workers are not followed) while the C load generator drives it, and
divides by the requests served. ``--syscalls`` also runs each server under ``strace -f -c``
(children included) and reports system calls per request. Counts include a little start-up and
idle-loop work, so compare two commits with the same command, not a figure against zero.

Usage: ``python benchmarks/cost_per_request.py [--only PATTERN] [--syscalls] [--top N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "bin" / "loadgen"
SERVERS = HERE / "servers.py"

SCENARIOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "echo 64B x1": ("tcp", ("echo", "--conns", "1", "--size", "64")),
    "connect x20": ("tcp", ("connect", "--workers", "20")),
    "udp 64B x20": ("udp", ("udp", "--outstanding", "20", "--size", "64", "--timeout-ms", "200")),
}
STRATEGIES = ("Inline", "ThreadPerRequest", "ThreadPool", "AsyncIO:asyncio")

# Runs servers.py with a profile hook on every thread; SIGUSR1 starts counting, SIGUSR2 writes
# the counts (as JSON) to the file named by COST_OUT.
_WRAPPER = textwrap.dedent(
    """
    import collections, json, os, runpy, signal, sys, threading
    counts = collections.Counter()
    state = {"on": False}
    def hook(frame, event, arg):
        if state["on"] and event in ("call", "c_call"):
            name = frame.f_code.co_name if event == "call" else getattr(arg, "__qualname__", "?")
            where = os.path.basename(frame.f_code.co_filename) if event == "call" else "C"
            counts[where + ":" + name] += 1
    def start(signum, frame):
        counts.clear()
        state["on"] = True
    def stop(signum, frame):
        state["on"] = False
        with open(os.environ["COST_OUT"], "w") as out:
            json.dump(counts, out)
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.setprofile(hook)
    threading.setprofile(hook)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)


def loadgen(args: tuple[str, ...], port: int, seconds: float) -> int:
    """Run the generator; the requests it completed."""
    argv = [str(LOADGEN), *args, "--port", str(port), "--duration", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    requests: int = json.loads(done.stdout.strip().splitlines()[-1])["requests"]
    return requests


def wait_for(path: Path, timeout: float) -> bool:
    """Whether ``path`` has content within ``timeout`` seconds (bounded polling of a file the
    server writes from its signal handler: there is no other channel to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return True
        time.sleep(0.05)
    return False


def calls_per_request(
    kind: str, server: str, args: tuple[str, ...]
) -> tuple[float, dict[str, float]]:
    """Python and C calls in the server process per request, and the busiest functions."""
    with tempfile.TemporaryDirectory() as tmp:
        wrapper, out = Path(tmp) / "wrap.py", Path(tmp) / "counts.json"
        wrapper.write_text(_WRAPPER)
        env = dict(os.environ, COST_OUT=str(out))
        argv = [sys.executable, str(wrapper), str(SERVERS), kind, server]
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            port = int(proc.stdout.readline())
            loadgen(args, port, 0.3)  # warm up: imports, first connections
            proc.send_signal(signal.SIGUSR1)
            served = loadgen(args, port, 1.5)
            proc.send_signal(signal.SIGUSR2)
            if not wait_for(out, 10.0):
                raise RuntimeError(f"{server} wrote no counts")
            proc.stdin.close()
            proc.wait(timeout=30)
        counts: dict[str, int] = json.loads(out.read_text())
    total = sum(counts.values()) / max(served, 1)
    top = {name: n / max(served, 1) for name, n in counts.items()}
    return total, top


def syscalls_per_request(kind: str, server: str, args: tuple[str, ...]) -> dict[str, float]:
    """System calls per request, by name, over the whole run (children included)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "strace.txt"
        argv = ["strace", "-f", "-c", "-o", str(out), sys.executable, str(SERVERS), kind, server]
        with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
            assert p.stdout is not None and p.stdin is not None
            port = int(p.stdout.readline())
            served = loadgen(args, port, 1.5)
            p.stdin.close()
            p.wait(timeout=30)
        calls: dict[str, float] = {}
        for line in out.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                try:
                    calls[fields[-1]] = int(fields[3]) / max(served, 1)
                except ValueError:
                    continue
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="regex on 'scenario / server'")
    parser.add_argument("--syscalls", action="store_true", help="also count system calls")
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    args = parser.parse_args()
    if not LOADGEN.exists():
        sys.exit("build the generator first: python benchmarks/run.py --quick --only none")
    if args.syscalls and shutil.which("strace") is None:
        sys.exit("--syscalls needs strace")
    for scenario, (kind, gen_args) in SCENARIOS.items():
        for strategy in STRATEGIES:
            server = f"typedserve-{strategy}"
            if args.only and not re.search(args.only, f"{scenario} / {server}", re.I):
                continue
            total, top = calls_per_request(kind, server, gen_args)
            line = f"{scenario:12} {server:28} {total:8.2f} calls/request"
            if args.syscalls:
                sys_calls = syscalls_per_request(kind, server, gen_args)
                line += f" {sum(sys_calls.values()):7.2f} syscalls/request"
            print(line, flush=True)
            for name, n in sorted(top.items(), key=lambda item: -item[1])[: args.top]:
                print(f"    {n:7.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
