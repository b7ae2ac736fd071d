"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.bridge_fakes import FullableStore, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FullableStore]:
    """The real store over a fresh database, whose outbox writes can be made to fail like a
    full disk (modules that need another store define their own ``store``)."""
    opened = await open_store(tmp_path)
    yield opened
    await opened.close()
