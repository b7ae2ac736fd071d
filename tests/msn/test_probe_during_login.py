"""Probes that come while the subscriber's MSN login is under way (a client's initial
presence brings one per roster item) are answered when the login is done, with the
presence it found, not "offline" for every contact and corrected a moment later."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from gateway.addressing import BareJid
from gateway.config import MsnConfig, MsnServerConfig, Secret
from gateway.core.events import NetworkEvent
from gateway.storage import Account, Store, Subscriber
from transports.msn.client import LoginError, SessionConfig, SessionEvent
from transports.msn.errors import LoginFailure
from transports.msn.ns_events import Contact, ListSynced, PresenceChanged
from transports.msn.status import ListBit, Status
from transports.msn.transport import MsnTransport

SAM = Subscriber(7, BareJid.parse("sam@example.test"), 1.0, {})
ACCOUNT = Account(7, "msn", "sam@escargot.test", True, 1.0)
BOB = "bob@escargot.test"


class GatedSession:
    """Stands for MsnSession: the login finishes (or fails) when the test opens the gate,
    reporting Bob on the list and online, as SYN and ILN would."""

    def __init__(self, config: SessionConfig, on_event: Callable[[SessionEvent], Any], fail: bool) -> None:
        self.on_event, self.fail = on_event, fail
        self.gate = asyncio.Event()

    async def login(self) -> None:
        await self.gate.wait()
        if self.fail:
            raise LoginError(LoginFailure.BAD_CREDENTIALS, "refused")
        bob = Contact(BOB, "Bob", "guid-1", ListBit.FL | ListBit.AL | ListBit.RL)
        await self.on_event(ListSynced((bob,), (), None, None, None))
        await self.on_event(PresenceChanged(BOB, Status.AWY, "Bob", 0, initial=True))

    async def close(self) -> None:
        return None


async def logging_in(fail: bool = False) -> tuple[MsnTransport, GatedSession]:
    config = MsnConfig("msn.example.test", Secret("s"), MsnServerConfig("127.0.0.1", 1, "http://x/", ""))
    sessions: list[GatedSession] = []

    def factory(cfg: SessionConfig, on_event: Callable[[SessionEvent], Any]) -> Any:
        sessions.append(GatedSession(cfg, on_event, fail))
        return sessions[-1]

    async def sink(_event: NetworkEvent) -> None:
        return None

    transport = MsnTransport(config, cast(Store, None), session_factory=factory)
    await transport.start(sink)
    await transport.start_session(SAM, ACCOUNT, "pw")
    return transport, sessions[0]


async def test_a_probe_during_the_login_gets_the_presence_the_login_found() -> None:
    transport, session = await logging_in()
    try:
        probe = asyncio.ensure_future(transport.contact_subscription(SAM, BOB, "probe"))
        await asyncio.sleep(0.05)
        assert not probe.done(), "answered before the login said who is online"
        session.gate.set()
        [answer] = await asyncio.wait_for(probe, 5.0)
        assert answer.type == "available" and answer.presence is not None
        assert answer.presence.show.value == "away"
        [again] = await transport.contact_subscription(SAM, BOB, "probe")  # once online: at once
        assert again.type == "available"
    finally:
        await transport.stop()


async def test_a_probe_during_a_login_that_fails_is_answered_offline() -> None:
    transport, session = await logging_in(fail=True)
    try:
        probe = asyncio.ensure_future(transport.contact_subscription(SAM, BOB, "probe"))
        await asyncio.sleep(0.05)
        session.gate.set()
        [answer] = await asyncio.wait_for(probe, 5.0)
        assert answer.type == "unavailable"
    finally:
        await transport.stop()
