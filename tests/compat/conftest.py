"""The ``ss`` fixture: each conformance test runs once per socketserver implementation."""

from __future__ import annotations

import socketserver
import types

import pytest

import typedserve.compat

IMPLEMENTATIONS: dict[str, types.ModuleType] = {
    "stdlib": socketserver,
    "compat": typedserve.compat,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def ss(request: pytest.FixtureRequest) -> types.ModuleType:
    """The socketserver module under test (the stdlib's, then typedserve.compat)."""
    name: str = request.param
    return IMPLEMENTATIONS[name]
