"""Fixtures for tests that run typedserve commands and examples as real processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.commands.processes import Running, start_process


@pytest.fixture
def launch() -> Iterator[Callable[..., Running]]:
    """Start ``python ARGS...`` and wait until it prints a line matching ``port_pattern``."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, port_pattern: str = r":(\d+)") -> Running:
        return start_process(started, *args, port_pattern=port_pattern)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)
