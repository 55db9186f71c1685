"""What one import costs a fresh interpreter: ``python benchmarks/import_cost.py STATEMENT``.

Runs STATEMENT (e.g. ``"import typedserve; typedserve.Server"``) once and prints one line,
``MS PEAK_RSS_BEFORE_KIB PEAK_RSS_AFTER_KIB MODULES_BEFORE MODULES_AFTER``: the
``time.perf_counter()`` time of the statement alone, the process's peak RSS before and after it,
and ``len(sys.modules)`` before and after. Interpreter start-up and tear-down are left out of
the time, so rows differ by what the statement imports and not by the noise of spawning a
process (``run.py`` also times spawn-to-exit from the parent, and notes it).

The peak RSS is ``VmHWM`` from ``/proc/self/status``, not ``getrusage(RUSAGE_SELF).ru_maxrss``:
on Linux ``ru_maxrss`` survives ``exec`` and starts at the high-water mark of the address space
the process was forked or vforked from, so a child of ``run.py`` would report at least
``run.py``'s own RSS (a child of a 200 MB parent reports 211 MB where ``VmHWM`` says 10.8 MB).
``ru_maxrss`` is the fallback where there is no ``/proc``.

It imports nothing before the measurement that the statement might import first: only
``time`` (a built-in module); reading ``/proc`` uses the built-in ``open``, and the output is
plain text, so ``json`` is not imported either.
"""

import sys
import time


def peak_rss_kib() -> int:
    """The peak resident set size of this process so far, in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource  # no /proc: ru_maxrss (KiB on Linux, bytes on macOS) is all there is

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    code = compile(sys.argv[1], "<statement>", "exec")
    modules_before = len(sys.modules)
    rss_before = peak_rss_kib()
    start = time.perf_counter()
    exec(code, {"__name__": "__statement__"})
    elapsed = time.perf_counter() - start
    rss_after = peak_rss_kib()
    modules_after = len(sys.modules)
    print(f"{elapsed * 1000:.3f} {rss_before} {rss_after} {modules_before} {modules_after}")


if __name__ == "__main__":
    main()
