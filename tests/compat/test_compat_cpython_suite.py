"""CPython's own ``test.test_socketserver`` passes in full on compat installed as ``socketserver``.

The suite of the running interpreter (3.11, 3.12 or 3.13: ``make test`` runs this file on each)
runs in a fresh interpreter that calls ``typedserve.compat.install()`` before anything imports
``socketserver``, so the suite's ``import socketserver`` is compat. Nothing is skipped where
the platform has ``fork`` and Unix sockets, and the same run on the stdlib module is the
reference: same tests, all passing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import textwrap

import pytest

from .support import run_python

pytestmark = pytest.mark.timeout(180)

RUN_SUITE = textwrap.dedent(
    """
    import json, sys, unittest
    if sys.argv[1] == "compat":
        import typedserve.compat as compat
        assert compat.install() == ()
    from test import test_socketserver as suite_module
    assert (suite_module.socketserver.__name__ == "typedserve.compat") == (sys.argv[1] == "compat")
    suite = unittest.defaultTestLoader.loadTestsFromModule(suite_module)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    print(json.dumps({
        "run": result.testsRun,
        "failed": [test.id() for test, _ in result.failures + result.errors],
        "skipped": [test.id() for test, _ in result.skipped],
        "report": [text for _, text in result.failures + result.errors],
    }))
    """
)


def _run(impl: str) -> dict[str, object]:
    out = run_python(RUN_SUITE, impl, timeout=170)
    outcome: dict[str, object] = json.loads(out.splitlines()[-1])
    return outcome


@pytest.mark.skipif(
    importlib.util.find_spec("test.test_socketserver") is None,
    reason="this Python was installed without its test suite",
)
def test_cpython_test_socketserver_passes_on_compat() -> None:
    stdlib = _run("stdlib")
    compat = _run("compat")
    assert compat["failed"] == [], "\n".join(map(str, compat["report"]))  # type: ignore[call-overload]
    assert compat["run"] == stdlib["run"]
    assert compat["skipped"] == stdlib["skipped"]
    if hasattr(os, "fork") and hasattr(socket, "AF_UNIX"):
        assert compat["skipped"] == []
