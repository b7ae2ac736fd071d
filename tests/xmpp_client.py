"""A scripted XMPP user: a real slixmpp client on plaintext loopback, with queues to read."""

from __future__ import annotations

import asyncio
from typing import Any

from slixmpp.stanza import Iq, Message, Presence
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from gateway.devtools.client import LoopbackClient


class ScriptedUser(LoopbackClient):
    def __init__(self, jid: str, password: str, port: int) -> None:
        super().__init__(jid, password, port)
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.presences: asyncio.Queue[Presence] = asyncio.Queue()
        self.roster_pushes: asyncio.Queue[Iq] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0077")
        self.register_plugin("xep_0004")
        self.add_event_handler("session_start", self._start)
        # every message, with or without a body (receipts, chat states, errors)
        self.register_handler(
            Callback("all-messages", MatchXPath("{jabber:client}message"), self._any_message)
        )
        self.add_event_handler("presence", self._presence)
        self.add_event_handler("roster_update", self._roster)
        self.auto_authorize = None
        self.auto_subscribe = False

    async def _start(self, _: Any) -> None:
        self.send_presence()
        await self.get_roster()
        self.ready.set()

    def _any_message(self, msg: Message) -> None:
        if msg.xml.find("{urn:xmpp:privilege:2}privilege") is not None:
            return
        self.messages.put_nowait(msg)

    def _presence(self, pres: Presence) -> None:
        self.presences.put_nowait(pres)

    def _roster(self, iq: Iq) -> None:
        self.roster_pushes.put_nowait(iq)

    async def online(self, timeout: float = 10) -> None:
        self.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def next_message(self, timeout: float = 10, **match: str) -> Message:
        return await _next(self.messages, timeout, match)

    async def next_presence(self, timeout: float = 10, **match: str) -> Presence:
        return await _next(self.presences, timeout, match)

    async def close(self) -> None:
        self.disconnect()
        try:
            await asyncio.wait_for(self.disconnected, 3)
        except (TimeoutError, asyncio.CancelledError):
            self.abort()


async def _next(queue: asyncio.Queue[Any], timeout: float, match: dict[str, str]) -> Any:
    """The next stanza whose fields equal ``match`` (``from_`` stands for ``from``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no stanza matching {match} within {timeout} s")
        stanza = await asyncio.wait_for(queue.get(), remaining)
        if all(_field(stanza, k) == v for k, v in match.items()):
            return stanza


def _field(stanza: Any, key: str) -> str:
    if key == "from_":
        return str(stanza["from"])
    if key == "from_bare":
        return str(stanza["from"].bare)
    return str(stanza[key])
