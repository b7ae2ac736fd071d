"""The world each fault case runs in (see :mod:`tests.faults.harness`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import DRAIN_LIMIT_S, STREAM_S, World


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    if shutil.which("prosody") is None:
        pytest.fail("prosody is not installed: run `make test`, which installs it")
    w = World(tmp_path)
    try:
        await w.start()
        yield w
    finally:
        await w.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each case's time limit grows with PASSERELLE_FAULT_MESSAGES (set-up, stream, drain)."""
    limit = int(60 + STREAM_S + DRAIN_LIMIT_S)
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(max(120, limit)))
