"""Fixtures for MSN tests: a seeded fake server and sessions logged in to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from transports.msn.client import MsnSession, SessionConfig, SessionEvent
from transports.msn.fake_server import FakeMsnServer

USERS: list[dict[str, Any]] = [
    {
        "handle": "alice@example.com",
        "password": "alice pw",
        "friendly_name": "Alice",
        "contacts": [
            {"handle": "bob@example.com", "lists": ["FL", "AL"], "groups": ["Friends"]},
            {"handle": "carol@example.com", "lists": ["FL", "AL"]},
            {"handle": "erin@example.com", "lists": ["FL", "AL", "PL"]},
        ],
    },
    {
        "handle": "bob@example.com",
        "password": "bob pw",
        "friendly_name": "Bob B",
        "phones": {"PHM": "+33612345678"},
        "contacts": [{"handle": "alice@example.com", "lists": ["FL", "AL"]}],
    },
    {
        "handle": "carol@example.com",
        "password": "carol pw",
        "friendly_name": "Carol",
        "contacts": [{"handle": "alice@example.com", "lists": ["FL", "AL"]}],
    },
    {
        "handle": "dave@example.com",
        "password": "dave pw",
        "friendly_name": "Dave",
        "contacts": [{"handle": "alice@example.com", "lists": ["FL"]}],
    },
    {
        "handle": "erin@example.com",
        "password": "erin pw",
        "friendly_name": "Erin",
        "contacts": [{"handle": "alice@example.com", "lists": ["FL"]}],
    },
]


class Recorder:
    """Collects a session's events and waits for one matching a predicate."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: SessionEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[SessionEvent], bool], timeout: float = 5.0) -> SessionEvent:
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def server() -> AsyncIterator[FakeMsnServer]:
    srv = await FakeMsnServer.start(users=USERS)
    yield srv
    await srv.stop()


def config_for(
    server: FakeMsnServer, handle: str, password: str | None = None, **overrides: Any
) -> SessionConfig:
    user = server.directory.get(handle)
    assert user is not None
    options: dict[str, Any] = {
        "ns_host": "127.0.0.1",
        "ns_port": server.ns_port,
        "nexus_url": server.nexus_url,
        "timeout": 3.0,
        "login_timeout": 5.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    options.update(overrides)
    return SessionConfig(handle, user.password if password is None else password, **options)


@pytest.fixture
async def connect(server: FakeMsnServer) -> AsyncIterator[Callable[..., Any]]:
    sessions: list[MsnSession] = []

    async def _connect(handle: str, **overrides: Any) -> tuple[MsnSession, Recorder]:
        recorder = Recorder()
        session = MsnSession(config_for(server, handle, **overrides), recorder)
        sessions.append(session)
        await session.login()
        return session, recorder

    yield _connect
    for session in sessions:
        await session.close()
