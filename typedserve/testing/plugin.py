"""The pytest plugin of :mod:`typedserve.testing` (registered through the ``pytest11`` entry point).

Fixtures:

- ``short_tmp_dir``: a fresh directory with a short path (under ``/tmp``), removed afterwards.
  Unix socket paths are limited to 107 bytes and pytest's ``tmp_path`` can be longer.
- ``unix_socket_path``: a path for a Unix socket inside ``short_tmp_dir`` (no file yet).
- ``typedserve_leak_check``: a started :class:`~typedserve.testing.LeakCheck` watching
  ``short_tmp_dir`` for socket files; the test fails at teardown if fds, threads, child
  processes or socket files created during the test are still there. Request it before the
  fixtures it should watch (fixtures are torn down in reverse order).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from typedserve.testing.leaks import LeakCheck

__all__ = ["short_tmp_dir", "typedserve_leak_check", "unix_socket_path"]


@pytest.fixture
def short_tmp_dir() -> Iterator[Path]:
    """A fresh directory with a short path, for Unix socket files; removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def unix_socket_path(short_tmp_dir: Path) -> str:
    """A path for a Unix socket in ``short_tmp_dir`` (well under the 107-byte limit)."""
    return str(short_tmp_dir / "server.sock")


@pytest.fixture
def typedserve_leak_check(short_tmp_dir: Path) -> Iterator[LeakCheck]:
    """A started :class:`LeakCheck`, checked when the test's other fixtures are torn down."""
    check = LeakCheck(socket_dirs=[short_tmp_dir]).start()
    yield check
    check.check()
