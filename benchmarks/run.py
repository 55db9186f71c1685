"""typedserve benchmark suite: ``python benchmarks/run.py [--quick] [--only PATTERN]``.

Builds the C load generator and echo server into ``benchmarks/bin/``, starts every server under
test as a subprocess pinned to CPU 0 (the generator runs on CPU 1), runs each scenario a few
times (a loadgen scenario's servers in turns, see :func:`measure_loadgen_round_robin`) and
prints one table; the same table, with the machine description, goes to
``benchmarks/results/latest.md``. See ``benchmarks/README.md`` for how to read it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = HERE / "bin"
RESULTS = HERE / "results"
LOGS = RESULTS / "logs"
LOADGEN = BIN / "loadgen"
LOADGEN_NO_TLS = BIN / "loadgen.no-tls"  # present when loadgen was built without OpenSSL
ECHO_SERVER = BIN / "echo_server"

# typedserve strategies in the order they are shown; any other strategy class found in
# typedserve.strategies is appended after these.
KNOWN_STRATEGIES = (
    "Inline",
    "ThreadPerRequest",
    "ThreadPool",
    "ForkPerRequest",
    "Prefork",
    "AsyncIO",
)
# Strategies that serve one connection at a time, or a fixed number of them: multi-connection
# echo and idle-connection scenarios do not apply (connections beyond the limit never get
# served while the others stay open).
SERIAL_STRATEGIES = frozenset({"Inline"})
BOUNDED_STRATEGIES = frozenset({"ThreadPool", "Prefork", "ForkPerRequest"})

IDLE_CONNS = 5000
# The slow-clients row: silent and trickling connections held open while a normal client makes
# sequential requests, each with its own timeout, within a budget for all of them.
SLOW_SILENT = 300
SLOW_TRICKLING = 300
SLOW_REQUESTS = 200
SLOW_TIMEOUT = 2.0
SLOW_BUDGET = 20.0
SERVER_CPU = "0"
GEN_CPU = "1"

# The TLS group: the servers' TLS rows (servers.py tls NAME), their peers, and the half-open
# connections (connected, no ClientHello sent) the generator holds during the idle variant.
TLS_STRATEGIES = frozenset({"ThreadPool", "Prefork", "AsyncIO"})
TLS_BASELINE = "stdlib-ThreadingTCPServer:handler-handshake"  # the fair peer
TLS_ACCEPT = "stdlib-ThreadingTCPServer:accept-handshake"  # handshakes on the accept loop
TLS_HALF_OPEN = 100

# The haproxy group: the ``echo 1KiB x50`` load through a real HAProxy (``mode tcp``, one
# thread) started for each row, pinned to the generator's CPU; a ``+proxy-v2`` row's HAProxy
# sends a PROXY v2 header (``send-proxy-v2``) to a server that requires one
# (``servers.py proxied NAME``). Its rows: these typedserve strategies, each plain and
# ``+proxy-v2``, and, plain, the stdlib and asyncio references (``haproxy`` in their kinds).
ECHO_1K_X50 = "echo 1KiB x50"
ECHO_1K_X50_LOAD = ("echo", "--conns", "50", "--size", "1024")
HAPROXY_SBIN = "/usr/sbin/haproxy"  # Debian's, not on a non-root user's PATH
HAPROXY_STRATEGIES = ("ThreadPool", "AsyncIO:asyncio")
PROXY_V2 = "+proxy-v2"
HAPROXY_MAXCONN = 1000  # far above the generator's connections (50, then 50 more per repeat)
HAPROXY_TIMEOUT = "300s"  # client and server: longer than any run (--duration is at most 60 s)
HAPROXY_WAIT = 10.0  # seconds for HAProxy's READY=1

# The startup group: fresh interpreters (the running one, ``sys.executable``), pinned to the
# server's CPU, interleaved row by row so that drift in the machine's load hits every row alike.
IMPORT_BASELINE = "import socketserver"
IMPORT_ROWS = (
    IMPORT_BASELINE,
    "import typedserve.compat",
    "import typedserve",
    "import typedserve; typedserve.Server",  # the first touch of a lazy export
    "import asyncio",
)
READY_BASELINE = "stdlib-ThreadingTCPServer script"
READY_TARGET = "examples.echo_server:LineEcho"
READY_ROWS = (READY_BASELINE, f"typedserve serve {READY_TARGET}")
READY_BANNER = re.compile(r"serving TCP on 127\.0\.0\.1:(\d+)")

# The metrics group: the tcp echo of these strategies with typedserve.metrics off, on (the
# collector registered, /metrics served and scraped after each run; histogram off), and on
# with the request-duration histogram, side by side in one scenario (servers.py metrics).
METRICS_STRATEGIES = frozenset({"ThreadPool", "AsyncIO"})
METRICS_VARIANTS = ("+metrics", "+metrics+histogram")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- setup


def build_c() -> bool:
    """Compile the C programs with ``cc -O2`` (only when a source is newer than its binary);
    ``loadgen`` with OpenSSL (``-lssl -lcrypto``), or without TLS if that does not build
    (no OpenSSL headers: the TLS rows are skipped). Whether loadgen has TLS."""
    BIN.mkdir(parents=True, exist_ok=True)
    for source, binary in ((HERE / "loadgen.c", LOADGEN), (HERE / "echo_server.c", ECHO_SERVER)):
        if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
            continue
        log(f"building {binary.relative_to(REPO)}")
        argv = ["cc", "-O2", "-Wall", "-o", str(binary), str(source)]
        if binary != LOADGEN:
            subprocess.run(argv, check=True)
            continue
        LOADGEN_NO_TLS.unlink(missing_ok=True)
        done = subprocess.run([*argv, "-lssl", "-lcrypto"], capture_output=True, text=True)
        if done.returncode != 0:
            log(f"  loadgen does not build with OpenSSL, building it without TLS:\n{done.stderr}")
            subprocess.run([*argv, "-DLOADGEN_NO_TLS"], check=True)
            LOADGEN_NO_TLS.touch()
    return not LOADGEN_NO_TLS.exists()


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate for ``localhost`` and ``127.0.0.1`` (valid two
    days) and its key in ``directory``, made with the ``openssl`` command: ``(cert, key)``.
    Every TLS server gets the same pair; the generator trusts the certificate itself."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"]
    argv += ["ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost"]
    argv += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2"]
    argv += ["-keyout", str(key), "-out", str(cert)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl req failed: {done.stderr.strip()[-300:]}")
    return str(cert), str(key)


def ensure_wrk() -> str | None:
    """Return the path of ``wrk``, installing it with apt-get when we are root."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("wrk is missing: apt-get install -y wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    for attempt in (install, ["apt-get", "update", "-q"], install):
        try:
            subprocess.run(
                attempt, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180
            )
        except subprocess.TimeoutExpired:
            break
        if shutil.which("wrk"):
            break
    return shutil.which("wrk")


def ensure_uvloop() -> bool:
    """Whether uvloop is importable, installing it with pip into this interpreter if needed."""
    if importlib.util.find_spec("uvloop") is not None:
        return True
    log("uvloop is missing: pip install uvloop")
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "uvloop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=180,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    importlib.invalidate_caches()
    probe = subprocess.run([sys.executable, "-c", "import uvloop"], capture_output=True)
    return probe.returncode == 0


def ensure_matplotlib() -> bool:
    """Whether matplotlib (for the charts) is importable, installing it with pip into this
    interpreter if needed, as for uvloop: a bench-only dependency."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    log("matplotlib is missing (charts): pip install matplotlib")
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "matplotlib"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    importlib.invalidate_caches()
    probe = subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True)
    return probe.returncode == 0


def raise_nofile() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; children (servers, generator) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def typedserve_strategies() -> tuple[dict[str, int | None], str]:
    """Strategy class names in ``typedserve.strategies`` now with their default capacity (how
    many requests they run at once, ``None``: unbounded), and a note when unavailable."""
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "servers.py"), "list-strategies"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return {}, "typedserve import timed out"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {}, f"typedserve not importable: {last}"
    found: dict[str, int | None] = {}
    for line in done.stdout.splitlines():
        name, _, capacity = line.strip().partition(" ")
        if name:
            found[name] = int(capacity) if capacity.isdigit() else None
    ordered = [name for name in KNOWN_STRATEGIES if name in found]
    ordered += sorted(name for name in found if name not in KNOWN_STRATEGIES)
    return {name: found[name] for name in ordered}, ""


def compat_available() -> bool:
    probe = f"import sys; sys.path.append({str(REPO)!r}); import typedserve.compat as c; c.install"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    return done.returncode == 0


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ServerSpec:
    """One server under test."""

    name: str
    kinds: frozenset[str]  # "tcp" and/or "udp"
    family: str  # "c", "stdlib", "asyncio", "typedserve"
    concurrent: bool = True  # serves many connections at once
    idle_ok: bool = True  # can hold thousands of idle connections and answer each
    capacity: int | None = None  # connections served at once, when bounded

    @property
    def proxy_v2(self) -> bool:
        """Whether the server requires a PROXY v2 header (a ``+proxy-v2`` row of the haproxy
        group: its HAProxy sends one)."""
        return self.name.endswith(PROXY_V2)

    def argv(self, kind: str, tls: tuple[str, str] | None = None) -> list[str]:
        if self.family == "c":
            return [str(ECHO_SERVER), kind, "--max-seconds", "900"]
        name = self.name
        if kind == "haproxy":  # the tcp echo; behind ProxyProtocolTransport for +proxy-v2
            kind = "proxied" if self.proxy_v2 else "tcp"
            name = name.removesuffix(PROXY_V2)
        argv = [sys.executable, str(HERE / "servers.py"), kind, name]
        if kind == "tls" and tls is not None:
            argv += ["--certfile", tls[0], "--keyfile", tls[1]]
        return argv


@dataclass(frozen=True)
class Scenario:
    """One load shape. ``metric`` says what the numbers are; ``higher_better`` their sense."""

    name: str
    kind: str  # "tcp", "udp", "tls", "idle", "slow", "shutdown", "http", "import", ...
    loadgen: tuple[str, ...] = ()
    baseline: str = "stdlib-ThreadingTCPServer"
    metric: str = "req/s"
    higher_better: bool = True
    needs_concurrency: bool = False
    conns: int = 1  # connections the scenario keeps open at once


@dataclass
class Result:
    scenario: Scenario
    server: str
    values: list[float] = field(default_factory=list)
    p50_us: list[float] = field(default_factory=list)
    p99_us: list[float] = field(default_factory=list)
    errors: int = 0
    loss: int = 0
    gen_cpu: list[float] = field(default_factory=list)
    srv_cpu: list[float] = field(default_factory=list)
    other_cpu: list[float] = field(default_factory=list)  # everything else on the machine
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("echo 64B x1", "tcp", ("echo", "--conns", "1", "--size", "64")),
    Scenario(
        ECHO_1K_X50,
        "tcp",
        ECHO_1K_X50_LOAD,
        needs_concurrency=True,
        conns=50,
    ),
    Scenario(
        "echo 64KiB x10",
        "tcp",
        ("echo", "--conns", "10", "--size", "65536"),
        needs_concurrency=True,
        conns=10,
    ),
    Scenario(
        "files 64B x1",
        "files",
        ("echo", "--conns", "1", "--size", "64"),
        baseline="stdlib-TCPServer",
    ),
    Scenario(
        "files 1KiB x50",
        "files",
        ("echo", "--conns", "50", "--size", "1024"),
        needs_concurrency=True,
        conns=50,
    ),
    Scenario(
        "lines 1KiB x50",
        "file-lines",
        ("echo", "--conns", "50", "--size", "1024", "--lines", "1"),
        needs_concurrency=True,
        conns=50,
    ),
    Scenario("connect x20", "tcp", ("connect", "--workers", "20")),
    Scenario(
        "udp 64B x20",
        "udp",
        ("udp", "--outstanding", "20", "--size", "64", "--timeout-ms", "200"),
        baseline="stdlib-UDPServer",
    ),
    Scenario(
        f"idle {IDLE_CONNS}",
        "idle",
        ("idle", "--conns", str(IDLE_CONNS), "--timeout", "30"),
        metric="KiB/conn",
        higher_better=False,
        needs_concurrency=True,
        conns=IDLE_CONNS,
    ),
    Scenario(
        f"slow-clients {SLOW_SILENT + SLOW_TRICKLING}",
        "slow",
        (
            *("--silent", str(SLOW_SILENT), "--trickling", str(SLOW_TRICKLING)),
            *("--requests", str(SLOW_REQUESTS), "--timeout", f"{SLOW_TIMEOUT:g}"),
            *("--budget", f"{SLOW_BUDGET:g}"),
        ),
        metric="p99 ms",
        higher_better=False,
        needs_concurrency=True,
        conns=SLOW_SILENT + SLOW_TRICKLING,
    ),
    Scenario(
        "shutdown()", "shutdown", baseline="stdlib-TCPServer", metric="ms", higher_better=False
    ),
    Scenario("http.server", "http", baseline="stdlib http.server"),
    Scenario(
        "tls handshake 64B x1",
        "tls",
        ("connect", "--workers", "1"),
        baseline=TLS_BASELINE,
        metric="conn/s",
    ),
    Scenario(
        f"tls handshake + {TLS_HALF_OPEN} idle",
        "tls",
        ("connect", "--workers", "1", "--half-open", str(TLS_HALF_OPEN)),
        baseline=TLS_BASELINE,
        metric="conn/s",
    ),
    Scenario(
        "tls echo 1KiB x50",
        "tls",
        ("echo", "--conns", "50", "--size", "1024"),
        baseline=TLS_BASELINE,
        needs_concurrency=True,
        conns=50,
    ),
    Scenario(
        f"{ECHO_1K_X50} through HAProxy",
        "haproxy",
        ECHO_1K_X50_LOAD,  # the echo 1KiB x50 row's load, to HAProxy's frontend
        needs_concurrency=True,
        conns=50,
    ),
    Scenario(
        f"metrics {ECHO_1K_X50}",
        "metrics",
        ECHO_1K_X50_LOAD,  # the echo 1KiB x50 row's load, with typedserve.metrics off and on
        baseline="typedserve-ThreadPool",
        needs_concurrency=True,
        conns=50,
    ),
    Scenario(
        "metrics connect x20",  # a request per connection: the histogram records each
        "metrics",
        ("connect", "--workers", "20"),
        baseline="typedserve-ThreadPool",
        metric="conn/s",
    ),
    Scenario(
        "startup import", "import", baseline=IMPORT_BASELINE, metric="ms", higher_better=False
    ),
    Scenario(
        "startup import RSS",
        "import-rss",
        baseline=IMPORT_BASELINE,
        metric="MB",
        higher_better=False,
    ),
    Scenario(
        "startup serve-ready", "ready", baseline=READY_BASELINE, metric="ms", higher_better=False
    ),
    Scenario(
        "startup serve-ready RSS",
        "ready-rss",
        baseline=READY_BASELINE,
        metric="MB",
        higher_better=False,
    ),
)
STARTUP_KINDS = {"import": "import", "import-rss": "import", "ready": "ready", "ready-rss": "ready"}
"""Startup scenario kind -> its group: a group's rows are measured once, in the same fresh
interpreters, for the time scenario and the RSS scenario."""


# ----------------------------------------------------------------------------- processes


def pinned(cpu: str, argv: Sequence[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if pin else list(argv)


def read_line(stream: IO[bytes], timeout: float) -> str | None:
    """One line from a pipe, or ``None`` on EOF or after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return None
    line = stream.readline()
    return line.decode().strip() if line else None


def stop_process(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """Close stdin (servers exit on EOF) and wait ``grace`` seconds, then TERM and KILL the
    process group; always reap."""
    with contextlib.suppress(OSError):
        if proc.stdin:
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the server and anything it forked
        try:
            proc.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.returncode is None:
        proc.kill()
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers (forked children) of a dead leader
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


@contextlib.contextmanager
def started(
    argv: Sequence[str], log_name: str, pin: bool, extra: list[str] | None = None
) -> Iterator[tuple[int, int]]:
    """Start a server process; yield ``(pid, port)`` once it printed its port. What follows the
    port on its line (the ``/metrics`` URL of a metrics row) is appended to ``extra``."""
    LOGS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", log_name)
    with (LOGS / f"{safe}.log").open("ab") as err:
        proc = subprocess.Popen(
            pinned(SERVER_CPU, argv, pin),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=HERE,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            line = read_line(proc.stdout, 30.0)
            port, _, rest = (line or "").partition(" ")
            if not port.isdigit():
                raise RuntimeError(f"{log_name}: no port on stdout (see {err.name})")
            if extra is not None and rest:
                extra.append(rest)
            yield proc.pid, int(port)
        finally:
            stop_process(proc)


def descendants(pid: int) -> list[int]:
    """``pid`` and its live descendants (bounded walk of /proc/PID/task/*/children)."""
    found, queue = [pid], [pid]
    while queue and len(found) < 10_000:
        parent = queue.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(OSError):
                    kids = [int(k) for k in (task / "children").read_text().split()]
                    found += kids
                    queue += kids
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime (with reaped children) of ``pid`` and its live descendants, from /proc."""
    ticks = 0
    for proc in descendants(pid):
        try:
            stat = Path(f"/proc/{proc}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def machine_busy_seconds() -> float:
    """CPU seconds of the whole machine so far (all CPUs) spent on tasks or taken by the
    hypervisor (user, nice, system, steal), from /proc/stat. Not interrupt and softirq time:
    that is mostly the network stack carrying the run's own traffic (with the forking servers'
    40 processes, 30 % of a core here), which no task is charged for and which is no one
    else's work."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system = fields[:3]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


QUIET_WINDOW = 0.05  # seconds; /proc/stat counts in ticks (10 ms here), so a few of them


def wait_machine_quiet(timeout: float = 2.0) -> None:
    """Return once the machine spent at most one tick busy over a window (what the previous
    server of a round-robin scenario does as its connections close, a forked child's exit),
    or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    before = machine_busy_seconds()
    while time.monotonic() < deadline:
        time.sleep(QUIET_WINDOW)
        now = machine_busy_seconds()
        if now - before <= tick:
            return
        before = now


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_loadgen(args: Sequence[str], port: int, duration: float, pin: bool) -> dict[str, Any]:
    argv = [str(LOADGEN), *args, "--port", str(port), "--duration", f"{duration:g}"]
    done = subprocess.run(
        pinned(GEN_CPU, argv, pin), capture_output=True, text=True, timeout=duration + 60
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Settings:
    duration: float
    repeats: int
    warmup: float
    shutdown_samples: int
    wrk_seconds: int
    startup_samples: int
    pin: bool
    tls: tuple[str, str] | None = None  # (certificate, key) for the TLS rows


def loadgen_args(scenario: Scenario, cfg: Settings) -> tuple[str, ...]:
    """The generator's arguments for ``scenario`` (a TLS row's trust anchor added)."""
    args = scenario.loadgen
    if scenario.kind == "tls":
        if cfg.tls is None:
            raise RuntimeError("no TLS certificate")
        args = (*args, "--tls", cfg.tls[0])  # the generator trusts the self-signed certificate
    return args


@dataclass
class Contestant:
    """One server of a round-robin scenario: started, and what its runs gathered so far."""

    result: Result
    pid: int
    port: int
    urls: list[str]
    runs: Runs = field(default_factory=lambda: Runs())
    scraped: list[dict[str, float]] = field(default_factory=list)


def measure_loadgen_round_robin(
    scenario: Scenario,
    servers: Sequence[ServerSpec],
    cfg: Settings,
    on_start: Callable[[str], None],
) -> list[Result]:
    """Every server of ``scenario`` started at once (each idle while another is measured),
    warmed up, then measured in turns: repeat 1 of each, then repeat 2 of each, and so on.

    A ratio compares servers measured minutes apart when each is run its repeats in a row:
    whatever the VM's neighbours or clock do meanwhile lands on some rows only (a latency-bound
    row once read 0.77x in one snapshot and 1.11x in a run an hour later). In turns, a drift
    lands on every row of the repeat alike, and the median of each row sees all of them."""
    try:
        args = loadgen_args(scenario, cfg)
    except RuntimeError as exc:
        return [Result(scenario, server.name, note=f"FAILED: {exc}") for server in servers]
    results: list[Result] = []
    playing: list[Contestant] = []
    with contextlib.ExitStack() as stack:
        for server in servers:
            on_start(server.name)
            result = Result(scenario, server.name)
            results.append(result)
            if server.capacity is not None and server.capacity < scenario.conns:
                result.note = f"serves {server.capacity} of the {scenario.conns} conns at once"
            urls: list[str] = []  # a metrics row's /metrics, scraped after each run (not timed)
            try:
                pid, port = stack.enter_context(
                    started(
                        server.argv(scenario.kind, cfg.tls),
                        f"{server.name}-{scenario.kind}",
                        cfg.pin,
                        urls,
                    )
                )
                if cfg.warmup > 0:
                    run_loadgen(args, port, cfg.warmup, cfg.pin)
            except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                log(f"    failed: {exc}")
                result.note = f"FAILED: {str(exc)[:80]}"
                continue
            playing.append(Contestant(result, pid, port, urls))
        for _ in range(cfg.repeats):
            for contestant in list(playing):
                wait_machine_quiet()  # the previous run's server has settled
                try:
                    loadgen_run(
                        contestant.result,
                        contestant.runs,
                        args,
                        contestant.port,
                        contestant.pid,
                        cfg,
                    )
                    if contestant.urls:
                        contestant.scraped.append(scrape_metrics(contestant.urls[0]))
                except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                    log(f"    {contestant.result.server} failed: {exc}")
                    contestant.result.note = f"FAILED: {str(exc)[:80]}"
                    contestant.result.values.clear()
                    playing.remove(contestant)
    for contestant in playing:
        result, runs = contestant.result, contestant.runs
        notes = [result.note] if result.note else []
        if contestant.scraped:
            notes.append(metrics_note(contestant.scraped))
        if scenario.kind == "tls":
            notes += tls_run_notes(runs.outputs)
        if scenario.loadgen[:1] == ("connect",):
            notes.append(f"TIME_WAIT before {'/'.join(map(str, runs.time_wait))}")
        result.note = "; ".join(notes)
    return results


@dataclass
class Runs:
    """What :func:`loadgen_repeats` saw besides what it put in the result, one item per run."""

    outputs: list[dict[str, Any]] = field(default_factory=list)  # the generator's JSON
    time_wait: list[int] = field(default_factory=list)  # TIME_WAIT sockets before the run
    helper_cpu: list[float] = field(default_factory=list)  # the helper's CPU, % of one core


def loadgen_repeats(
    result: Result,
    args: Sequence[str],
    port: int,
    pid: int,
    cfg: Settings,
    helper: int | None = None,
) -> Runs:
    """The warm-up, then ``cfg.repeats`` generator runs against ``port`` (see
    :func:`loadgen_run`), one after the other."""
    runs = Runs()
    if cfg.warmup > 0:
        run_loadgen(args, port, cfg.warmup, cfg.pin)
    for _ in range(cfg.repeats):
        loadgen_run(result, runs, args, port, pid, cfg, helper)
    return runs


def loadgen_run(
    result: Result,
    runs: Runs,
    args: Sequence[str],
    port: int,
    pid: int,
    cfg: Settings,
    helper: int | None = None,
) -> None:
    """One generator run against ``port``, served by process ``pid`` (and its descendants):
    its rate, latencies, errors and CPU go to ``result``, the rest to ``runs``. ``helper``: a
    process between the two on the generator's CPU (HAProxy), whose CPU (with its
    descendants') counts as the generator's and is also given apart in ``helper_cpu``."""
    runs.time_wait.append(time_wait_sockets())
    help0 = cpu_seconds(helper) if helper is not None else 0.0
    gen0, srv0, all0 = children_cpu(), cpu_seconds(pid), machine_busy_seconds()
    t0 = time.monotonic()
    out = run_loadgen(args, port, cfg.duration, cfg.pin)
    runs.outputs.append(out)
    wall = time.monotonic() - t0
    helped = cpu_seconds(helper) - help0 if helper is not None else 0.0
    gen = children_cpu() - gen0 + helped
    record_cpu(result, wall, gen, cpu_seconds(pid) - srv0, all0)
    runs.helper_cpu.append(100.0 * helped / wall)
    result.values.append(float(out["rps"]))
    result.p50_us.append(float(out["p50_us"]))
    result.p99_us.append(float(out["p99_us"]))
    result.errors += int(out["errors"])
    result.loss += int(out["loss"])


# ----------------------------------------------------------------------------- haproxy


def haproxy_binary() -> str | None:
    """HAProxy's path (on ``PATH``, or Debian's ``/usr/sbin/haproxy``), ``None`` if missing."""
    return shutil.which("haproxy") or (HAPROXY_SBIN if os.access(HAPROXY_SBIN, os.X_OK) else None)


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (HAProxy's frontend binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def haproxy_config(frontend: int, backend: int, proxy_v2: bool) -> str:
    """The benchmark's HAProxy config: ``mode tcp``, one thread, one frontend on 127.0.0.1
    port ``frontend``, one backend with one server, the echo server on port ``backend``
    (``send-proxy-v2`` when ``proxy_v2``); no health checks (no connections of its own to the
    server), no logs."""
    server = f"    server echo 127.0.0.1:{backend}" + (" send-proxy-v2" if proxy_v2 else "")
    lines = (
        "global",
        "    nbthread 1",
        f"    maxconn {HAPROXY_MAXCONN}",
        "defaults",
        "    mode tcp",
        f"    maxconn {HAPROXY_MAXCONN}",
        "    timeout connect 5s",
        f"    timeout client {HAPROXY_TIMEOUT}",
        f"    timeout server {HAPROXY_TIMEOUT}",
        "frontend bench",
        f"    bind 127.0.0.1:{frontend}",
        "    default_backend echo",
        "backend echo",
        server,
    )
    return "\n".join(lines) + "\n"


def wait_ready(proc: subprocess.Popen[bytes], notify: socket.socket, log_name: str) -> None:
    """Wait (at most ``HAPROXY_WAIT`` s) for HAProxy's ``READY=1`` on ``notify`` (``-Ws``: the
    systemd notify protocol); an error as soon as it exits instead (a pidfd, no polling)."""
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd: an early exit costs the whole wait
        pidfd = None
    deadline = time.monotonic() + HAPROXY_WAIT
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(notify, selectors.EVENT_READ)
            if pidfd is not None:
                selector.register(pidfd, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    if key.fileobj is not notify:
                        status = proc.wait(timeout=5)
                        raise RuntimeError(f"haproxy exited ({status}) before READY=1 ({log_name})")
                    if b"READY=1" in notify.recv(4096):
                        return
    finally:
        if pidfd is not None:
            os.close(pidfd)
    raise RuntimeError(f"haproxy sent no READY=1 within {HAPROXY_WAIT:g} s ({log_name})")


@contextlib.contextmanager
def running_haproxy(
    binary: str, backend: int, proxy_v2: bool, log_name: str, pin: bool
) -> Iterator[tuple[int, int]]:
    """Run HAProxy (``-Ws``, pinned to the generator's CPU) with :func:`haproxy_config`, written
    in a temporary directory with its notify socket; yield ``(pid, frontend port)`` once it
    said ``READY=1``; at the end, whatever happened, TERM then KILL its process group (master
    and worker) and reap it."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', log_name)}.log"
    with (
        tempfile.TemporaryDirectory(prefix="typedserve-bench-haproxy-") as tmp,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
        log_path.open("ab") as err,
    ):
        frontend = free_port()
        config = Path(tmp) / "haproxy.cfg"
        config.write_text(haproxy_config(frontend, backend, proxy_v2))
        notify_path = Path(tmp) / "notify.sock"
        notify.bind(str(notify_path))
        proc = subprocess.Popen(
            pinned(GEN_CPU, [binary, "-Ws", "-f", str(config)], pin),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
            start_new_session=True,
            preexec_fn=die_with_parent,  # never outlives run.py (it does not watch stdin)
        )
        try:
            wait_ready(proc, notify, str(log_path.relative_to(REPO)))
            yield proc.pid, frontend
        finally:
            stop_process(proc, grace=0.0)


def measure_haproxy(scenario: Scenario, server: ServerSpec, haproxy: str, cfg: Settings) -> Result:
    """The scenario's load through HAProxy: the server, then HAProxy in front of it (both
    started for this row and stopped after it), the generator on HAProxy's frontend."""
    result = Result(scenario, server.name)
    notes = []
    if server.capacity is not None and server.capacity < scenario.conns:
        notes.append(f"serves {server.capacity} of the {scenario.conns} conns at once")
    with contextlib.ExitStack() as stack:  # stops HAProxy, then the server, whatever happens
        pid, port = stack.enter_context(
            started(server.argv("haproxy"), f"{server.name}-haproxy", cfg.pin)
        )
        proxy_pid, frontend = stack.enter_context(
            running_haproxy(haproxy, port, server.proxy_v2, f"haproxy-{server.name}", cfg.pin)
        )
        runs = loadgen_repeats(result, scenario.loadgen, frontend, pid, cfg, helper=proxy_pid)
    notes.append(f"HAProxy {statistics.median(runs.helper_cpu):.0f}% CPU (in gen)")
    result.note = "; ".join(notes)
    return result


def scrape_metrics(url: str) -> dict[str, float]:
    """``GET url`` (a Prometheus text exposition): each ``typedserve_*`` sample's value summed
    over its labels, by sample name (a bucket counts under ``NAME_bucket{le}``)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        match = re.fullmatch(r"(typedserve_\w+)(?:\{([^}]*)\})? (\S+)", line)
        if match is None:
            continue
        name, labels, value = match.groups()
        le = re.search(r'le="([^"]*)"', labels or "")
        values[f"{name}{{{le[1]}}}" if le else name] += float(value)
    return dict(values)


def metrics_note(scraped: Sequence[dict[str, float]]) -> str:
    """What the scrapes after each run of a metrics row said: the server's accepted count, and
    the histogram's count and mean when it has one."""
    last = scraped[-1]
    note = f"scraped {len(scraped)}x: accepted {last.get('typedserve_accepted_total', 0):.0f}"
    count = last.get("typedserve_request_duration_seconds_count")
    if count is not None:
        total = last.get("typedserve_request_duration_seconds_sum", 0.0)
        mean = f", mean {total / count * 1e6:.0f} us" if count else ""
        note += f", histogram count {count:.0f}{mean}"
    return note


def tls_run_notes(runs: Sequence[dict[str, Any]]) -> list[str]:
    """What the generator says about the TLS runs: handshakes done before the clock started
    (echo), half-open connections still held at the end, anything not a full TLS 1.3 one."""
    notes = []
    if runs and "tls_ready" in runs[0]:
        ready = "/".join(str(run["tls_ready"]) for run in runs)
        notes.append(f"handshaken before the clock {ready}")
    if runs and "half_open" in runs[0]:
        left = "/".join(f"{run['half_open_left']}" for run in runs)
        notes.append(f"half-open held at the end {left} of {runs[0]['half_open']}")
    versions = {str(run.get("tls", "")).split(" ")[0] for run in runs} - {""}
    if versions - {"TLSv1.3"}:
        notes.append("negotiated " + ", ".join(sorted(versions)))
    resumed = sum(int(run.get("resumed", 0)) for run in runs)
    if resumed:
        notes.append(f"{resumed} resumed handshakes (should be 0)")
    return notes


def time_wait_sockets() -> int:
    """TCP sockets in TIME_WAIT on this machine now (``/proc/net/sockstat``; -1 if unknown)."""
    try:
        with open("/proc/net/sockstat") as stat:
            for line in stat:
                if line.startswith("TCP:"):
                    fields = line.split()
                    return int(fields[fields.index("tw") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def record_cpu(result: Result, wall: float, gen: float, srv: float, all0: float) -> None:
    """Generator, server and everything-else CPU over one run, in % of one core."""
    other = machine_busy_seconds() - all0 - gen - srv
    result.gen_cpu.append(100.0 * gen / wall)
    result.srv_cpu.append(100.0 * srv / wall)
    result.other_cpu.append(max(0.0, 100.0 * other / wall))


def measure_idle(scenario: Scenario, server: ServerSpec, cfg: Settings) -> Result:
    """Server RSS growth per idle connection (fresh server each repeat), then answer each."""
    result = Result(scenario, server.name)
    answered: list[int] = []
    for _ in range(cfg.repeats):
        with started(server.argv("tcp"), f"{server.name}-idle", cfg.pin) as (pid, port):
            time.sleep(0.3)
            before, fds_before = rss_kib(pid), open_fds(pid)
            argv = [str(LOADGEN), *scenario.loadgen, "--port", str(port)]
            gen = subprocess.Popen(
                pinned(GEN_CPU, argv, cfg.pin),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                assert gen.stdout is not None and gen.stdin is not None
                event = read_line(gen.stdout, 60.0)
                if event is None:
                    raise RuntimeError("idle loadgen never reported its connections")
                up = int(json.loads(event)["up"])
                wait_accepted(pid, fds_before + up)
                settle_rss(pid)
                after = rss_kib(pid)
                gen.stdin.write(b"go\n")
                gen.stdin.flush()
                final = read_line(gen.stdout, 60.0)
                if final is None:
                    raise RuntimeError("idle loadgen gave no result")
                out = json.loads(final)
            finally:
                if gen.poll() is None:
                    gen.kill()
                gen.communicate(timeout=10)
            result.values.append((after - before) / max(up, 1))
            answered.append(int(out["requests"]))
            result.errors += int(out["errors"])
            result.p50_us.append(float(out["p50_us"]))
            result.p99_us.append(float(out["p99_us"]))
    result.note = "answered " + "/".join(str(n) for n in answered) + f" of {IDLE_CONNS}"
    return result


def wait_accepted(pid: int, fds: int) -> None:
    """Wait (at most 30 s) until the server holds ``fds`` open descriptors."""
    for _ in range(300):
        if open_fds(pid) >= fds:
            return
        time.sleep(0.1)


def settle_rss(pid: int) -> None:
    """Wait (at most 10 s) until the server's RSS stops growing."""
    last = rss_kib(pid)
    for _ in range(50):
        time.sleep(0.2)
        now = rss_kib(pid)
        if abs(now - last) <= max(64, last // 200):
            return
        last = now


def measure_slow_clients(scenario: Scenario, server: ServerSpec, cfg: Settings) -> Result:
    """A normal client's p99 latency (answered requests) while slow clients hold connections
    to a line echo server; a fresh server each repeat."""
    result = Result(scenario, server.name)
    answered: list[str] = []
    still_open: list[str] = []
    held: list[int] = []
    failures: collections.Counter[str] = collections.Counter()
    for _ in range(cfg.repeats):
        with started(server.argv("lines"), f"{server.name}-lines", cfg.pin) as (pid, port):
            out = run_slow_clients(scenario, result, pid, port, cfg.pin)
        latencies = sorted(float(v) for v in out["latencies_ms"])
        requests = int(out["requests"])
        answered.append(f"{100.0 * len(latencies) / requests:.0f}")
        result.errors += requests - len(latencies)
        failures.update({str(k): int(v) for k, v in out["failures"].items()})
        failures["not attempted (budget)"] += int(out["not_attempted"])
        closed = int(out["silent_closed"]) + int(out["trickling_closed"])
        still_open.append(str(scenario.conns - closed))
        held.append(int(out["held"]))
        if latencies:
            result.values.append(percentile(latencies, 99))
            result.p50_us.append(1000.0 * percentile(latencies, 50))
            result.p99_us.append(1000.0 * percentile(latencies, 99))
    notes = [f"answered {'/'.join(answered)} %"]
    if result.p50_us:
        notes.append(f"p50 {statistics.median(result.p50_us) / 1000:.2f} ms")
    notes.append(f"slow conns open at the end {'/'.join(still_open)} of {scenario.conns}")
    if min(held) < scenario.conns:
        notes.append(f"server held only {'/'.join(map(str, held))} before the requests")
    if failures.total():
        notes.append(", ".join(f"{why} {n}" for why, n in failures.most_common() if n))
    result.note = "; ".join(notes)
    return result


def run_slow_clients(
    scenario: Scenario, result: Result, pid: int, port: int, pin: bool
) -> dict[str, Any]:
    """One repeat against a started server: ``slow_clients.py``'s result, plus ``held``: how
    many more fds the server (and its worker processes) had open once the clients were up.

    CPU is recorded over the whole repeat (the client's start, its slow connections, the
    requests): the request phase alone lasts well under a second, a few clock ticks."""
    time.sleep(0.3)  # as for idle: let the server (Prefork's workers) finish starting
    fds_before = tree_fds(pid)
    argv = [sys.executable, str(HERE / "slow_clients.py"), str(port), *scenario.loadgen]
    srv0, all0, t0 = cpu_seconds(pid), machine_busy_seconds(), time.monotonic()
    client = subprocess.Popen(
        pinned(GEN_CPU, argv, pin),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=HERE,
    )
    try:
        assert client.stdout is not None and client.stdin is not None
        if read_line(client.stdout, 60.0) is None:
            raise RuntimeError("slow_clients never reported its connections")
        held = wait_held(pid, fds_before + scenario.conns, timeout=3.0) - fds_before
        client.stdin.write(b"go\n")
        client.stdin.flush()
        final = read_line(client.stdout, SLOW_BUDGET + SLOW_TIMEOUT + 30)
        wall, srv = time.monotonic() - t0, cpu_seconds(pid) - srv0
        if final is None:
            raise RuntimeError("slow_clients gave no result")
        out: dict[str, Any] = json.loads(final)
        record_cpu(result, wall, float(out["cpu_s"]), srv, all0)
        out["held"] = held
        return out
    finally:
        try:
            _, err = client.communicate(timeout=10)  # closes stdin: the client exits
        except subprocess.TimeoutExpired:
            client.kill()
            _, err = client.communicate(timeout=10)
        if client.returncode:
            log(f"    slow_clients: {err.decode(errors='replace').strip()[-300:]}")


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of sorted, non-empty ``ordered``."""
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def tree_fds(pid: int) -> int:
    """Open fds of ``pid`` and its descendants (Prefork's workers hold the connections)."""
    return sum(open_fds(proc) for proc in descendants(pid))


def wait_held(pid: int, fds: int, timeout: float) -> int:
    """Wait (at most ``timeout`` s) until the server's process tree holds ``fds`` fds; the
    count reached."""
    for _ in range(max(1, int(timeout / 0.1))):
        now = tree_fds(pid)
        if now >= fds:
            return now
        time.sleep(0.1)
    return tree_fds(pid)


def measure_shutdown(scenario: Scenario, name: str, cfg: Settings) -> Result:
    result = Result(scenario, name)
    argv = [sys.executable, str(HERE / "shutdown_latency.py"), name]
    argv += ["--samples", str(cfg.shutdown_samples)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=HERE)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"shutdown_latency failed: {done.stderr.strip()[-500:]}")
    out = json.loads(lines[-1])
    samples = [float(v) for v in out["samples_ms"]]
    # The median, min and max are over the samples themselves.
    result.values = samples
    result.note = f"{len(samples)} samples"
    close_ms: list[float] = out.get("close_ms", [])
    if close_ms:
        result.note += f"; then close() {close_ms[0]:.1f} ms"
    close_errors: list[str] = out.get("close_errors", [])
    if close_errors:
        result.errors = len(close_errors)
        result.note += f"; close() raised {close_errors[0][:60]}"
    return result


def measure_http(scenario: Scenario, mode: str, wrk: str, cfg: Settings) -> Result:
    name = "stdlib http.server" if mode == "stdlib" else "typedserve.compat http.server"
    result = Result(scenario, name)
    argv = [sys.executable, str(HERE / "http_server.py"), mode]
    with started(argv, f"http-{mode}", cfg.pin) as (pid, port):
        url = f"http://127.0.0.1:{port}/small.txt"
        for _ in range(cfg.repeats):
            cmd = [wrk, "-t1", "-c10", f"-d{cfg.wrk_seconds}s", url]
            gen0, srv0, all0 = children_cpu(), cpu_seconds(pid), machine_busy_seconds()
            t0 = time.monotonic()
            done = subprocess.run(
                pinned(GEN_CPU, cmd, cfg.pin),
                capture_output=True,
                text=True,
                timeout=cfg.wrk_seconds + 60,
            )
            wall = time.monotonic() - t0
            match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
            if done.returncode != 0 or not match:
                raise RuntimeError(f"wrk failed: {done.stdout[-300:]} {done.stderr[-300:]}")
            result.values.append(float(match.group(1)))
            record_cpu(result, wall, children_cpu() - gen0, cpu_seconds(pid) - srv0, all0)
            for pattern in (
                r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
            ):
                errs = re.search(pattern, done.stdout)
                if errs:
                    result.errors += sum(int(g) for g in errs.groups())
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
            if non2xx:
                result.errors += int(non2xx.group(1))
            latency = re.search(r"Latency\s+(\S+)", done.stdout)
            if latency:
                result.note = f"wrk mean latency {latency.group(1)}"
    return result


# ----------------------------------------------------------------------------- startup


@dataclass
class StartupRow:
    """The samples of one startup row, one fresh interpreter each (warm-up excluded), and the
    CPU totals over its spawns: run.py itself, the child, and the rest of the machine."""

    name: str
    ms: list[float] = field(default_factory=list)  # the figure: import time or spawn-to-ready
    rss_mb: list[float] = field(default_factory=list)  # the child's peak RSS
    base_mb: list[float] = field(default_factory=list)  # import: peak RSS before the import
    modules: list[int] = field(default_factory=list)  # import: modules the statement added
    wall_ms: list[float] = field(default_factory=list)  # import: spawn-to-exit (parent)
    stop_ms: list[float] = field(default_factory=list)  # ready: SIGTERM to exit
    errors: int = 0
    failure: str = ""
    wall_s: float = 0.0
    self_cpu_s: float = 0.0
    child_cpu_s: float = 0.0
    other_cpu_s: float = 0.0


def die_with_parent() -> None:
    """``preexec_fn``: the child is killed if run.py dies (``PR_SET_PDEATHSIG``), so a server
    that does not watch its stdin (``typedserve serve``) never outlives the run."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def accounted(row: StartupRow) -> Iterator[None]:
    """Add the wall time and CPU split of one spawn (to its reaping) to ``row``'s totals."""
    wall0, self0, kids0, all0 = time.monotonic(), self_cpu(), children_cpu(), machine_busy_seconds()
    try:
        yield
    finally:
        own, kids = self_cpu() - self0, children_cpu() - kids0
        row.wall_s += time.monotonic() - wall0
        row.self_cpu_s += own
        row.child_cpu_s += kids
        # Signed: /proc/stat counts clock ticks, coarse for one spawn; clamped over the row.
        row.other_cpu_s += machine_busy_seconds() - all0 - own - kids


def spawn_import(row: StartupRow, cfg: Settings, keep: bool) -> None:
    """One fresh interpreter runs ``import_cost.py STATEMENT``; its figures go to ``row``."""
    argv = pinned(SERVER_CPU, [sys.executable, str(HERE / "import_cost.py"), row.name], cfg.pin)
    with accounted(row):
        start = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=REPO, preexec_fn=die_with_parent
        )
        wall = time.perf_counter() - start
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 5:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise RuntimeError(last)
    if not keep:
        return
    ms, rss_before, rss_after, modules_before, modules_after = fields
    row.ms.append(float(ms))
    row.base_mb.append(int(rss_before) / 1024)
    row.rss_mb.append(int(rss_after) / 1024)
    row.modules.append(int(modules_after) - int(modules_before))
    row.wall_ms.append(wall * 1000)


def ready_argv(name: str) -> list[str]:
    """The command of a serve-ready row: the stdlib script, or the ``typedserve`` console
    script next to this interpreter (``-m typedserve`` if it has none)."""
    if name == READY_BASELINE:
        return [sys.executable, str(HERE / "stdlib_serve.py")]
    script = Path(sys.executable).parent / "typedserve"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "typedserve"]
    return [*cli, "serve", READY_TARGET, "--host", "127.0.0.1", "--port", "0"]


def read_until(
    fd: int, pattern: re.Pattern[str], timeout: float
) -> tuple[re.Match[str] | None, str]:
    """Read ``fd`` (a pipe) until its text matches ``pattern``, EOF or ``timeout`` seconds."""
    text = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and selector.select(left):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk
            match = pattern.search(text.decode(errors="replace"))
            if match:
                return match, text.decode(errors="replace")
    return None, text.decode(errors="replace")


def echo_line(port: int) -> bool:
    """Whether the server at ``port`` echoes one line (within 5 s)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"ping\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                got += chunk
            return got == b"ping\n"
    except OSError:
        return False


def vm_hwm_mib(pid: int) -> float:
    """The peak RSS (``VmHWM``) of ``pid`` so far, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def spawn_ready(row: StartupRow, cfg: Settings, keep: bool) -> None:
    """Start a serve-ready row's server; time spawn to its ``serving TCP on ...`` line, read its
    peak RSS, check it echoes a line, then SIGTERM it and time its exit; always reap it."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"startup-{re.sub(r'[^A-Za-z0-9_.-]+', '_', row.name)}.log"
    with accounted(row):
        start = time.perf_counter()
        proc = subprocess.Popen(
            pinned(SERVER_CPU, ready_argv(row.name), cfg.pin),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=REPO,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            assert proc.stderr is not None
            fd = proc.stderr.fileno()
            match, text = read_until(fd, READY_BANNER, 30.0)
            ready = time.perf_counter() - start
            if match is None:
                with log_path.open("a") as out:
                    out.write(text)
                raise RuntimeError(f"no 'serving TCP on' line (see {log_path.relative_to(REPO)})")
            hwm = vm_hwm_mib(proc.pid)
            echoed = echo_line(int(match.group(1)))
            stopping = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            try:
                status: int | None = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                status = None
            stopped = time.perf_counter() - stopping
            _, rest = read_until(fd, re.compile(r"(?!)"), 1.0 if status is not None else 0.0)
        finally:
            stop_process(proc)
    if keep:
        row.ms.append(ready * 1000)
        row.rss_mb.append(hwm)
        row.stop_ms.append(stopped * 1000)
    if not echoed or status not in (0, -signal.SIGTERM):
        row.errors += 1
        with log_path.open("a") as out:
            out.write(f"--- echo ok: {echoed}; exit status after SIGTERM: {status}\n{text}{rest}")


def measure_startup(group: str, names: Sequence[str], cfg: Settings) -> dict[str, StartupRow]:
    """Measure the rows ``names`` of ``group`` (``import`` or ``ready``): one warm-up spawn each
    (writes bytecode caches, warms the page cache; discarded), then ``cfg.startup_samples``
    rounds, each spawning every row once in turn. A row that fails stops being spawned."""
    rows = {name: StartupRow(name) for name in names}
    spawn = spawn_import if group == "import" else spawn_ready
    for sample in range(cfg.startup_samples + 1):
        for row in rows.values():
            if row.failure:
                continue
            try:
                spawn(row, cfg, keep=sample > 0)
            except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                log(f"    {row.name}: failed: {exc}")
                row.failure = str(exc)
    return rows


def startup_result(scenario: Scenario, row: StartupRow) -> Result:
    """The table row of ``row`` for ``scenario``: its time or its peak RSS."""
    result = Result(scenario, row.name)
    if row.failure:
        result.note = f"FAILED: {row.failure[:80]}"
        return result
    rss = scenario.kind.endswith("-rss")
    result.values = list(row.rss_mb if rss else row.ms)
    result.errors = row.errors
    if row.wall_s > 0:
        result.gen_cpu.append(100.0 * row.self_cpu_s / row.wall_s)
        result.srv_cpu.append(100.0 * row.child_cpu_s / row.wall_s)
        result.other_cpu.append(max(0.0, 100.0 * row.other_cpu_s / row.wall_s))
    n = len(result.values)
    if scenario.kind == "import":
        result.note = (
            f"{n} interpreters; +{statistics.median(row.modules):.0f} modules;"
            f" spawn-to-exit {statistics.median(row.wall_ms):.0f} ms (parent)"
        )
    elif scenario.kind == "import-rss":
        growth = statistics.median(a - b for a, b in zip(row.rss_mb, row.base_mb, strict=True))
        result.note = (
            f"{n} interpreters; peak RSS after the import,"
            f" +{growth:.1f} MB over {statistics.median(row.base_mb):.1f} MB before it"
        )
    elif scenario.kind == "ready":
        result.note = f"{n} starts; SIGTERM to exit {statistics.median(row.stop_ms):.0f} ms" + (
            f"; {row.errors} without echo or clean exit" if row.errors else ""
        )
    else:
        result.note = f"{n} starts; peak RSS (VmHWM) when ready"
    return result


# ----------------------------------------------------------------------------- output


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value != 0 else "0"


def fmt_ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "-"
    ratio = value / base
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


HEADER = (
    "scenario",
    "server",
    "median",
    "unit",
    "min-max",
    "vs stdlib",
    "vs C",
    "p50/p99 us",
    "err/loss",
    "gen/srv/other CPU%",
    "note",
)


def bottleneck(r: Result) -> str:
    """Flag runs where the generator, not the server, used up its core, and runs where other
    processes took a noticeable share of the machine."""
    flags = []
    if r.gen_cpu and r.srv_cpu:
        gen, srv = statistics.median(r.gen_cpu), statistics.median(r.srv_cpu)
        if gen >= 90 and srv < 85:
            flags.append("generator-bound")
    if r.other_cpu and max(r.other_cpu) >= 25:
        flags.append(f"CONTENDED (other work up to {max(r.other_cpu):.0f}% CPU)")
    return "; ".join(flags)


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    by_key = {(r.scenario.name, r.server): r for r in results}
    rows: list[tuple[str, ...]] = []
    for r in results:
        med = r.median
        base = by_key.get((r.scenario.name, r.scenario.baseline))
        c_srv = by_key.get((r.scenario.name, "c-epoll"))
        lat = (
            f"{statistics.median(r.p50_us):.0f}/{statistics.median(r.p99_us):.0f}"
            if r.p50_us and min(r.p50_us) >= 0
            else "-"
        )
        cpu = (
            f"{statistics.median(r.gen_cpu):.0f}/{statistics.median(r.srv_cpu):.0f}"
            f"/{statistics.median(r.other_cpu):.0f}"
            if r.gen_cpu and r.other_cpu
            else "-"
        )
        rows.append(
            (
                r.scenario.name,
                r.server,
                fmt_value(med),
                r.scenario.metric if r.values else "",
                f"{fmt_value(min(r.values))}-{fmt_value(max(r.values))}" if r.values else "-",
                fmt_ratio(med, base.median if base else None),
                fmt_ratio(med, c_srv.median if c_srv else None),
                lat,
                f"{r.errors}/{r.loss}" if r.values else "-",
                cpu,
                "; ".join(
                    n
                    for n in (
                        r.note,
                        same_loop_ratios(r, by_key),
                        tls_ratios(r, by_key),
                        haproxy_ratios(r, by_key),
                        metrics_ratios(r, by_key),
                        bottleneck(r),
                    )
                    if n
                ),
            )
        )
    return rows


def same_loop_ratios(r: Result, by_key: dict[tuple[str, str], Result]) -> str:
    """For ``typedserve-AsyncIO:<loop>``: its ratio to the raw ``Protocol`` and to asyncio
    streams on the same loop (its fair peers: streams are what users write)."""
    _, _, loop = r.server.partition("typedserve-AsyncIO:")
    if not loop or r.median is None:
        return ""
    parts = []
    for peer in (f"{loop}-protocol", f"{loop}-streams"):
        other = by_key.get((r.scenario.name, peer))
        if other is not None and other.median:
            parts.append(f"{fmt_ratio(r.median, other.median)} {peer}")
    return ", ".join(parts)


def metrics_ratios(r: Result, by_key: dict[tuple[str, str], Result]) -> str:
    """For a row of the metrics scenario with metrics on: its ratio to the same strategy with
    metrics off, in the same run (the cost of the metrics)."""
    base, plus, _ = r.server.partition("+")
    if r.scenario.kind != "metrics" or not plus or r.median is None:
        return ""
    other = by_key.get((r.scenario.name, base))
    if other is None or not other.median:
        return ""
    return f"{fmt_ratio(r.median, other.median)} metrics off ({base})"


def tls_ratios(r: Result, by_key: dict[tuple[str, str], Result]) -> str:
    """For a typedserve row of a TLS scenario (not ``AsyncIO``): its ratio to the stdlib server
    that handshakes on its accept loop (the ``vs stdlib`` column is the handler-handshake one)."""
    if r.scenario.kind != "tls" or not r.server.startswith("typedserve-") or r.median is None:
        return ""
    if r.server.startswith("typedserve-AsyncIO"):
        return ""
    other = by_key.get((r.scenario.name, TLS_ACCEPT))
    if other is None or other.median is None:
        return ""
    if other.median == 0:
        return f"{TLS_ACCEPT} served none"
    return f"{fmt_ratio(r.median, other.median)} {TLS_ACCEPT}"


def haproxy_ratios(r: Result, by_key: dict[tuple[str, str], Result]) -> str:
    """For a row of the haproxy group: a ``+proxy-v2`` row's ratio to the same server without
    the header through the same HAProxy, in this run (with its extremes over the repeats:
    slowest over fastest, fastest over slowest); and the ratio of each row to the same
    server's direct ``echo 1KiB x50`` row (no HAProxy), when that ran too."""
    if r.scenario.kind != "haproxy" or r.median is None or not r.values:
        return ""
    parts = []
    plain_name = r.server.removesuffix(PROXY_V2)
    plain = by_key.get((r.scenario.name, plain_name))
    if plain_name != r.server and plain is not None and plain.median:
        low, high = min(r.values) / max(plain.values), max(r.values) / min(plain.values)
        parts.append(
            f"{fmt_ratio(r.median, plain.median)} {plain_name} (no header;"
            f" repeats {low:.2f}-{high:.2f}x)"
        )
    direct = by_key.get((ECHO_1K_X50, plain_name))
    if direct is not None and direct.median:
        parts.append(f"{fmt_ratio(r.median, direct.median)} direct ({ECHO_1K_X50})")
    return ", ".join(parts)


def render_text(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    numeric = {2, 4, 5, 6, 7, 8, 9}

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    out = [line(HEADER), line(["-" * w for w in widths])]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    return "\n".join(out)


def render_markdown(rows: Sequence[tuple[str, ...]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(out)


def load_average() -> str:
    """The 1/5/15-minute load averages, e.g. ``"0.12 0.30 0.25"``."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_busy_percent(interval: float = 1.0) -> float:
    """How busy all CPUs were over ``interval`` seconds (0-100), from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return idle, sum(fields)

    try:
        idle0, total0 = sample()
        time.sleep(interval)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total1 - total0
    return 100.0 * (1 - (idle1 - idle0) / total) if total > 0 else 0.0


def machine_description() -> list[str]:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"- machine: `{uname}`",
        f"- CPU: {model}, nproc {os.cpu_count()}",
        f"- python: {platform.python_implementation()} {platform.python_version()}"
        f" (`{sys.executable}`)",
    ]


CEILING = "c-epoll"


def slug(name: str) -> str:
    """A scenario name as a file name part: ``echo 64B x1`` -> ``echo-64B-x1``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") or "scenario"


def write_charts(results: Sequence[Result], prefix: str) -> list[Path]:
    """One SVG per scenario that ran (``RESULTS/<prefix><scenario>.svg``), drawn by
    ``charts.py`` in a subprocess; on any failure, a note and no charts (never an error)."""
    charts: list[dict[str, Any]] = []
    for scenario in SCENARIOS:
        rows = [r for r in results if r.scenario.name == scenario.name and r.values]
        if not rows:
            continue
        charts.append(
            {
                "file": f"{prefix}{slug(scenario.name)}.svg",
                "scenario": scenario.name,
                "metric": scenario.metric,
                "higher_better": scenario.higher_better,
                "baseline": scenario.baseline,
                "ceiling": CEILING,
                "rows": [
                    {
                        "name": r.server,
                        "median": r.median,
                        "min": min(r.values),
                        "max": max(r.values),
                    }
                    for r in rows
                ],
            }
        )
    if not charts:
        return []
    spec = json.dumps({"out_dir": str(RESULTS), "charts": charts})
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "charts.py")],
            input=spec,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        print(f"charts skipped: {exc}")
        return []
    if done.returncode != 0:
        print(f"charts skipped: charts.py failed: {(done.stderr.strip() or '?').splitlines()[-1]}")
        return []
    return [Path(line) for line in done.stdout.splitlines() if line.strip()]


def git_commit() -> str:
    """``commit <short hash>`` of the checkout, ``+ local changes`` when it has some."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout.strip()
    except OSError:
        return "commit unknown"
    return f"commit {head or 'unknown'}" + (" + local changes" if dirty else "")


def chart_links(charts: Sequence[Path]) -> list[str]:
    """Markdown images of ``charts`` (paths relative to the results folder)."""
    if not charts:
        return []
    out = [
        "## Charts",
        "",
        "Ratio to each scenario's stdlib baseline, log axis (see `benchmarks/README.md`).",
        "",
    ]
    out += [f"![{chart.stem}]({chart.name})" for chart in charts]
    return [*out, ""]


# ----------------------------------------------------------------------------- main


def strategy_specs(strategies: dict[str, int | None], uvloop_ok: bool) -> dict[str, int | None]:
    """Strategy specs, with ``AsyncIO`` split into its stdlib-loop and uvloop variants."""
    specs: dict[str, int | None] = {}
    for name, capacity in strategies.items():
        if name == "AsyncIO":
            specs["AsyncIO:asyncio"] = capacity
            if uvloop_ok:
                specs["AsyncIO:uvloop"] = capacity
        else:
            specs[name] = capacity
    return specs


LOADGEN_KINDS = frozenset({"tcp", "udp", "files", "file-lines", "tls", "metrics"})
"""Scenario kinds measured by the C load generator against one server process."""
FILE_KINDS = frozenset({"files", "file-lines"})
FILE_STRATEGIES = frozenset({"Inline", "ThreadPerRequest", "ThreadPool"})
"""The strategies with rows for handlers written with ``rfile``/``wfile`` (as the stdlib's
``StreamRequestHandler``): the ones users move to from ``TCPServer``/``ThreadingTCPServer``."""


def build_servers(uvloop_ok: bool, strategies: dict[str, int | None]) -> list[ServerSpec]:
    tcp, udp, both = frozenset({"tcp"}), frozenset({"udp"}), frozenset({"tcp", "udp"})
    tcp_lines = frozenset({"tcp", "lines"})  # "lines": a line echo server (slow-clients row)
    files = FILE_KINDS  # echo through rfile/wfile, as users write handlers
    tls = frozenset({"tls"})  # the tcp echo over TLS
    haproxy = frozenset({"haproxy"})  # the tcp echo through HAProxy
    servers = [
        ServerSpec("c-epoll", both, "c"),
        ServerSpec("stdlib-TCPServer", tcp | files, "stdlib", concurrent=False, idle_ok=False),
        ServerSpec("stdlib-ThreadingTCPServer", tcp_lines | files | haproxy, "stdlib"),
        ServerSpec(TLS_ACCEPT, tls, "stdlib"),
        ServerSpec(TLS_BASELINE, tls, "stdlib"),
        ServerSpec("stdlib-ForkingTCPServer", tcp, "stdlib", idle_ok=False, capacity=40),
        ServerSpec("stdlib-UDPServer", udp, "stdlib"),
        ServerSpec("stdlib-ThreadingUDPServer", udp, "stdlib"),
        ServerSpec("asyncio-streams", tcp_lines | tls | haproxy, "asyncio"),
        ServerSpec("asyncio-protocol", both, "asyncio"),
    ]
    if uvloop_ok:
        servers.append(ServerSpec("uvloop-streams", tcp_lines | tls, "asyncio"))
        servers.append(ServerSpec("uvloop-protocol", both, "asyncio"))
    metrics = frozenset({"metrics"})  # the tcp echo, metrics off (and on: the variants)
    for name, capacity in strategies.items():
        strategy = name.partition(":")[0]
        servers.append(
            ServerSpec(
                f"typedserve-{name}",
                both
                | {"lines"}
                | (files if name in FILE_STRATEGIES else frozenset())
                | (tls if strategy in TLS_STRATEGIES else frozenset())
                | (haproxy if name in HAPROXY_STRATEGIES else frozenset())
                | (metrics if strategy in METRICS_STRATEGIES else frozenset()),
                "typedserve",
                capacity=capacity,
                concurrent=strategy not in SERIAL_STRATEGIES,
                idle_ok=strategy not in SERIAL_STRATEGIES | BOUNDED_STRATEGIES,
            )
        )
        if name in HAPROXY_STRATEGIES:  # the same server behind ProxyProtocolTransport
            servers.append(
                ServerSpec(f"typedserve-{name}{PROXY_V2}", haproxy, "typedserve", capacity=capacity)
            )
        if strategy in METRICS_STRATEGIES:
            servers += [
                ServerSpec(f"typedserve-{name}{variant}", metrics, "typedserve", capacity=capacity)
                for variant in METRICS_VARIANTS
            ]
    return servers


def selected(only: Sequence[str], scenario: str, server: str) -> bool:
    if not only:
        return True
    return any(
        re.search(p, scenario, re.I)
        or re.search(p, server, re.I)
        or re.search(p, f"{scenario}/{server}", re.I)
        for p in only
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 s runs, one repeat (smoke test)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="regex on scenario or server names (repeatable, comma-separated)",
    )
    parser.add_argument("--duration", type=float, help="seconds per run (default 1.0, quick 0.5)")
    parser.add_argument("--repeats", type=int, help="runs per scenario (default 3, quick 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--no-charts", action="store_true", help="do not write (or install matplotlib for) charts"
    )
    parser.add_argument(
        "--snapshot",
        metavar="NAME",
        help="also write results/snapshot-NAME.md and snapshot-NAME-<scenario>.svg (committed)",
    )
    args = parser.parse_args(argv)
    snapshot: str | None = args.snapshot
    if snapshot is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", snapshot):
        parser.error("--snapshot NAME: letters, digits, '.', '_' and '-' only")
    only = [p for item in args.only for p in item.split(",") if p]
    quick: bool = args.quick
    cfg = Settings(
        duration=min(max(args.duration or (0.5 if quick else 1.0), 0.1), 60.0),
        repeats=min(max(args.repeats or (1 if quick else 3), 1), 20),
        warmup=0.0 if quick else 0.1,
        shutdown_samples=5 if quick else 20,
        wrk_seconds=1 if quick else 2,
        startup_samples=5 if quick else 20,
        pin=not args.no_pin and bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2,
    )
    load_before = load_average()
    busy = cpu_busy_percent()
    if busy >= 20:
        log(f"warning: the CPUs were {busy:.0f}% busy before starting: other work competes")
    started_at = time.monotonic()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])

    loadgen_tls = build_c()
    raise_nofile()
    uvloop_ok = ensure_uvloop()
    charts_ok = not args.no_charts and ensure_matplotlib()
    strategies, ts_note = typedserve_strategies()
    http_jobs = ("stdlib http.server", "typedserve.compat http.server")
    # Installing wrk (apt-get) only pays off when an http.server row will run.
    wants_wrk = any(selected(only, "http.server", name) for name in http_jobs)
    wrk = ensure_wrk() if wants_wrk else shutil.which("wrk")
    compat_ok = compat_available()
    haproxy = haproxy_binary()
    specs = strategy_specs(strategies, uvloop_ok)
    servers = build_servers(uvloop_ok, specs)
    # One self-signed certificate for every TLS server of the run, when a TLS row is selected.
    tls_dir: tempfile.TemporaryDirectory[str] | None = None
    tls_problem = "" if loadgen_tls else "loadgen was built without OpenSSL (see the build log)"
    tls_wanted = any(
        selected(only, scenario.name, server.name)
        for scenario in SCENARIOS
        if scenario.kind == "tls"
        for server in servers
        if "tls" in server.kinds
    )
    if tls_wanted and not tls_problem:
        tls_dir = tempfile.TemporaryDirectory(prefix="typedserve-bench-tls-")
        try:
            cfg = dataclasses.replace(cfg, tls=make_certificate(Path(tls_dir.name)))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            tls_problem = f"no certificate: {exc}"
    skipped: list[str] = []
    if not uvloop_ok:
        skipped.append("uvloop-protocol: uvloop could not be installed")
    if ts_note:
        skipped.append(f"typedserve: {ts_note}")
    else:
        missing = [name for name in KNOWN_STRATEGIES if name not in strategies]
        if missing:
            skipped.append("typedserve strategies not present yet: " + ", ".join(missing))
    log(f"servers: {', '.join(s.name for s in servers)}")

    results: list[Result] = []
    startup: dict[str, StartupRow] = {}
    for scenario in SCENARIOS:
        jobs: list[tuple[str, Any]] = []

        def skip(server: str, why: str, scenario: Scenario = scenario) -> None:
            if selected(only, scenario.name, server):
                skipped.append(f"{scenario.name} / {server}: {why}")

        if scenario.kind in LOADGEN_KINDS or scenario.kind == "idle":
            kind = "tcp" if scenario.kind == "idle" else scenario.kind
            for server in servers:
                if kind not in server.kinds:
                    continue
                if kind == "tls" and tls_problem:
                    skip(server.name, tls_problem)
                elif scenario.needs_concurrency and not server.concurrent:
                    skip(server.name, "serves one connection at a time")
                elif scenario.kind == "idle" and not server.idle_ok:
                    skip(server.name, "bounded workers or a process per connection")
                else:
                    jobs.append((server.name, server))
        elif scenario.kind == "haproxy":
            for server in servers:
                if "haproxy" not in server.kinds:
                    continue
                if haproxy is None:
                    skip(server.name, f"haproxy is not installed (not on PATH, no {HAPROXY_SBIN})")
                else:
                    jobs.append((server.name, server))
        elif scenario.kind == "slow":
            for server in servers:
                if "lines" not in server.kinds:
                    continue
                if not server.concurrent:
                    skip(server.name, "serves one connection at a time")
                else:
                    jobs.append((server.name, server))
        elif scenario.kind == "shutdown":
            names = ["stdlib-TCPServer", "stdlib-ThreadingTCPServer"]
            names += [f"typedserve-{s}" for s in specs]
            jobs = [(name, name) for name in names]
        elif scenario.kind == "http":
            if wrk is None:
                skip("*", "wrk is not available")
                continue
            jobs = [("stdlib http.server", "stdlib")]
            if compat_ok:
                jobs.append(("typedserve.compat http.server", "compat"))
            else:
                skip("typedserve.compat http.server", "typedserve.compat not importable")
        elif scenario.kind in STARTUP_KINDS:
            group = STARTUP_KINDS[scenario.kind]
            group_rows: tuple[str, ...] = IMPORT_ROWS if group == "import" else READY_ROWS
            jobs = [(name, group) for name in group_rows]
            # A group's rows are measured once, for its time and its RSS scenario alike.
            wanted = [
                name
                for name in group_rows
                if name not in startup
                and any(
                    selected(only, other.name, name)
                    for other in SCENARIOS
                    if STARTUP_KINDS.get(other.kind) == group
                )
            ]
            if wanted:
                log(
                    f"[{time.monotonic() - started_at:6.1f}s] startup {group}:"
                    f" {cfg.startup_samples} rounds of {', '.join(wanted)}"
                )
                startup.update(measure_startup(group, wanted, cfg))
        if scenario.kind in LOADGEN_KINDS:
            contestants = [job for name, job in jobs if selected(only, scenario.name, name)]

            def on_start(name: str, scenario: Scenario = scenario) -> None:
                log(f"[{time.monotonic() - started_at:6.1f}s] {scenario.name} / {name}")

            if contestants:
                results += measure_loadgen_round_robin(scenario, contestants, cfg, on_start)
            continue
        for name, job in jobs:
            if not selected(only, scenario.name, name):
                continue
            if scenario.kind in STARTUP_KINDS:
                results.append(startup_result(scenario, startup[name]))
                continue
            log(f"[{time.monotonic() - started_at:6.1f}s] {scenario.name} / {name}")
            try:
                if scenario.kind == "idle":
                    result = measure_idle(scenario, job, cfg)
                elif scenario.kind == "slow":
                    result = measure_slow_clients(scenario, job, cfg)
                elif scenario.kind == "haproxy":
                    assert haproxy is not None
                    result = measure_haproxy(scenario, job, haproxy, cfg)
                elif scenario.kind == "shutdown":
                    result = measure_shutdown(scenario, job, cfg)
                else:
                    assert wrk is not None
                    result = measure_http(scenario, job, wrk, cfg)
            except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                log(f"    failed: {exc}")
                result = Result(scenario, name, note=f"FAILED: {str(exc)[:80]}")
            results.append(result)

    wall = time.monotonic() - started_at
    rows = table_rows(results)
    text = render_text(rows)
    print(text)
    if skipped:
        print("\nskipped:\n" + "\n".join(f"  - {s}" for s in skipped))
    load_after = load_average()
    print(f"\ntotal wall time: {wall:.0f} s; load average before {load_before}, after {load_after}")
    if busy >= 20:
        print(f"warning: the CPUs were {busy:.0f}% busy before the run; numbers are noisy")

    RESULTS.mkdir(parents=True, exist_ok=True)
    # Charts are generated like latest.md: the previous run's go, those of this run replace them.
    for old in RESULTS.glob("chart-*.svg"):
        old.unlink()
    charts: list[Path] = []
    if charts_ok:
        charts = write_charts(results, "chart-")
        log(f"wrote {len(charts)} chart(s): {RESULTS.relative_to(REPO)}/chart-*.svg")
    elif not args.no_charts:
        print("charts skipped: matplotlib could not be installed")

    def report(title: str, links: Sequence[Path]) -> str:
        md = [
            f"# typedserve benchmarks: {title}",
            "",
            f"- date: {stamp}",
            *machine_description(),
            f"- command: `{command}`",
            f"- settings: {cfg.duration:g} s per run, {cfg.repeats} repeat(s),"
            f" warm-up {cfg.warmup:g} s,"
            f" {cfg.shutdown_samples} shutdown samples, wrk -d{cfg.wrk_seconds}s,"
            f" {cfg.startup_samples} interpreters per startup row,"
            f" pinned (server CPU {SERVER_CPU}, generator and HAProxy CPU {GEN_CPU}): {cfg.pin}",
            f"- total wall time: {wall:.0f} s",
            f"- CPU busy in the second before the run: {busy:.0f}% (other work; above ~20% the"
            f" numbers are noisy); load average (1/5/15 min) before {load_before},"
            f" after {load_after}",
            "",
            "How to read this table: see `benchmarks/README.md`.",
            "",
            render_markdown(rows),
            "",
        ]
        if skipped:
            md += ["Skipped:", "", *(f"- {s}" for s in skipped), ""]
        md += chart_links(links)
        return "\n".join(md)

    if tls_dir is not None:
        tls_dir.cleanup()
    (RESULTS / "latest.md").write_text(report("latest run", charts))
    log(f"wrote {(RESULTS / 'latest.md').relative_to(REPO)}")
    if snapshot is not None:
        copies = []
        for chart in charts:
            copy = RESULTS / f"snapshot-{snapshot}-{chart.name.removeprefix('chart-')}"
            shutil.copyfile(chart, copy)
            copies.append(copy)
        path = RESULTS / f"snapshot-{snapshot}.md"
        path.write_text(report(f"snapshot {snapshot} ({git_commit()})", copies))
        log(f"wrote {path.relative_to(REPO)} and {len(copies)} chart(s) (commit them)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every server and generator was stopped on the way out
        sys.exit(130)
