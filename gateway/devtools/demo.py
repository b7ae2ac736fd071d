"""``make demo``: a complete local world on loopback, a scripted story, then a playground.

Starts a throwaway Prosody (with XEP-0356), the fake SMSC, the fake MSN server, and the
gateway with a generated config; plays a story in which every line is printed by the
party that received it, from what actually arrived; then stays up, printing an XMPP
account for any client and a prompt to play the phones and the MSN users (``help`` lists
the commands), until Ctrl-C or the end of the input. ``--story-only`` plays the story and
exits (the test suite runs that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.bridge import AWAY_GRACE_S
from gateway.config import Config, parse
from gateway.devtools.prosody import ComponentSpec, Prosody
from gateway.storage import create_key_file
from transports.sms.mt import TON_INTERNATIONAL
from transports.sms.reassembly import Message, Reassembler, assemble, part_from_deliver

DOMAIN = "demo.test"
ALICE_PHONE = "+33612345678"
BOB_PHONE = "+33698765432"
CAROL_PHONE = "+33611223344"
ALICE_MSN, BOB_MSN, CAROL_MSN = "alice@escargot.test", "bob@escargot.test", "carol@escargot.test"
SETTLE_S = 2.0  # a scripted line's replies are in once the world was this long quiet...
REPLY_WAIT_MAX_S = AWAY_GRACE_S + 12.0  # ...or this long passed (MSN → an away Alice waits the grace)
PART_TIMEOUT_S = 30.0  # a phone shows a long SMS whose parts never all came after this long


def msn_users() -> list[dict[str, Any]]:
    back = [{"handle": ALICE_MSN, "lists": ["FL", "AL"]}]
    return [
        {
            "handle": ALICE_MSN,
            "password": "alice-msn",
            "friendly_name": "Alice",
            "contacts": [
                {"handle": BOB_MSN, "lists": ["FL", "AL"], "groups": ["Friends"]},
                {"handle": CAROL_MSN, "lists": ["FL", "AL"], "groups": ["Friends"]},
            ],
        },
        {"handle": BOB_MSN, "password": "bob-msn", "friendly_name": "Bob", "contacts": back},
        {"handle": CAROL_MSN, "password": "carol-msn", "friendly_name": "Carol", "contacts": back},
    ]


class Transcript:
    """Lines as each party saw them."""

    def __init__(self, out: Callable[[str], None] | None = None) -> None:
        self.out = out or _say  # flushed: a reader of a pipe sees each line as it is said
        self.lines: list[str] = []

    def say(self, who: str, text: str) -> None:
        line = f"{who:>22} | {text}"
        self.lines.append(line)
        self.out(line)

    def section(self, title: str) -> None:
        self.out(f"\n== {title} ==")

    def note(self, text: str) -> None:
        """What is happening while nobody receives anything (a pause would look like a hang)."""
        self.out(f"{'':>22}   ({text})")


def shown_number(addr: str, ton: int) -> str:
    """A number as a phone shows it: ``+`` and E.164 for an international one (SMPP sends
    it without the ``+``), a short code such as the service number as is."""
    return f"+{addr}" if ton == TON_INTERNATIONAL and not addr.startswith("+") else addr


@dataclass(frozen=True)
class Sms:
    """One text as the receiving phone shows it, numbers as :func:`shown_number` writes them."""

    source: str
    destination: str
    text: str


class Phones:
    """What the phones received from the fake SMSC: every accepted submit_sm, with the
    parts of a long SMS put back together by the gateway's own reassembly code (a handset
    does the same: the concatenation header is never shown as text)."""

    def __init__(self, smsc: Any) -> None:
        self.smsc = smsc
        self.seen = len(smsc.submits)
        self.received: list[Sms] = []
        self._long = Reassembler(PART_TIMEOUT_S)
        self._numbers: dict[tuple[str, str], tuple[str, str]] = {}  # SMPP addresses → shown

    def poll(self) -> list[Sms]:
        """The texts completed since the last call (also kept in :attr:`received`)."""
        now = time.monotonic()
        done: list[Message] = []
        for submit in self.smsc.submits[self.seen :]:
            if submit.status != 0:
                continue  # refused by the SMSC: no phone got it
            pdu = submit.pdu
            self._numbers[(pdu.source_addr, pdu.destination_addr)] = (
                shown_number(pdu.source_addr, pdu.source_addr_ton),
                shown_number(pdu.destination_addr, pdu.dest_addr_ton),
            )
            part = part_from_deliver(pdu, now)
            # a one-part SMS goes straight through: the reassembler would take the same
            # text sent again (a second /who answer) for a redelivered part
            message = assemble([part]) if part.total == 1 else self._long.add(part)
            if message is not None:
                done.append(message)
        self.seen = len(self.smsc.submits)
        done += self._long.expire(now)
        new = [self._shown(m) for m in done]
        self.received += new
        return new

    @property
    def pending(self) -> bool:
        """Parts of a long SMS are waiting for the rest."""
        return bool(self._long.pending_parts())

    def _shown(self, message: Message) -> Sms:
        source, destination = self._numbers.get(
            (message.source, message.destination), (message.source, message.destination)
        )
        return Sms(source, destination, message.text)

    async def next_to(self, number: str, since: int, timeout: float = 15) -> Sms:
        """The first text to ``number`` among those received after the first ``since``."""
        async with asyncio.timeout(timeout):
            while True:
                self.poll()
                for sms in self.received[since:]:
                    if sms.destination == number:
                        return sms
                await asyncio.sleep(0.1)

    def mark(self) -> int:
        """A ``since`` for :meth:`next_to`: what came before now does not count."""
        self.poll()
        return len(self.received)


class World:
    """Everything the demo starts, stopped in reverse order."""

    def __init__(self, directory: Path, transcript: Transcript) -> None:
        self.dir = directory
        self.t = transcript
        self.secret = secrets.token_urlsafe(16)
        self.prosody = Prosody(
            directory / "prosody",
            DOMAIN,
            [ComponentSpec(f"sms.{DOMAIN}", self.secret), ComponentSpec(f"msn.{DOMAIN}", self.secret)],
            extra_modules=("carbons",),  # as in Prosody's default configuration
        )
        self._stops: list[Callable[[], Awaitable[None]]] = []
        self.smsc: Any = None
        self.msn: Any = None
        self.gateway: Gateway | None = None
        self.config: Config | None = None

    async def start(self) -> None:
        from transports.sms.fake_smsc import FakeSmsc

        self.prosody.start()
        self._stops.append(self._stop_prosody)
        for user in ("alice", "bob"):
            self.prosody.register(user, "demo")
        self.smsc = FakeSmsc(system_id="passerel", password=secrets.token_hex(4))
        await self.smsc.start()
        self._stops.append(self.smsc.stop)
        from transports.msn.fake_server import FakeMsnServer

        self.msn = await FakeMsnServer.start(users=msn_users())
        self._stops.append(self.msn.stop)
        self.config = parse(
            {
                "xmpp": {
                    "port": self.prosody.component_port,
                    "user_domains": [DOMAIN],
                    "admins": [f"admin@{DOMAIN}"],
                },
                "storage": {
                    "path": str(self.dir / "passerelle.db"),
                    "key_file": str(self.dir / "secret.key"),
                },
                "sms": {
                    "jid": f"sms.{DOMAIN}",
                    "secret": self.secret,
                    "service_number": "2020",
                    "smsc": {"port": self.smsc.port, "system_id": "passerel", "password": self.smsc.password},
                },
                "msn": {
                    "jid": f"msn.{DOMAIN}",
                    "secret": self.secret,
                    "server": {"port": self.msn.ns_port, "nexus_url": self.msn.nexus_url},
                },
            },
            env={},
        )
        create_key_file(self.config.storage.key_file)
        self.gateway = Gateway(self.config)
        self._stops.append(self.gateway.stop)  # first: a stop during its start stops what it started
        bridge = await self.gateway.start()
        await asyncio.wait_for(bridge.components["sms"].online.wait(), 15)
        await asyncio.wait_for(bridge.components["msn"].online.wait(), 15)

    async def _stop_prosody(self) -> None:
        self.prosody.stop()

    async def stop(self) -> None:
        for stop in reversed(self._stops):
            with contextlib.suppress(Exception):
                await stop()


async def story(world: World) -> None:
    """XMPP ↔ SMS: alice links her number, texts Bob's phone, Bob's phone answers."""
    from slixmpp import JID
    from slixmpp.exceptions import IqError

    from gateway.devtools.client import DemoUser
    from transports.sms.fake_smsc import FakeSmsc

    t = world.t
    smsc: FakeSmsc = world.smsc
    phones = Phones(smsc)
    sms = f"sms.{DOMAIN}"
    alice = DemoUser(f"alice@{DOMAIN}/laptop", "demo", world.prosody.c2s_port)
    await alice.online()
    try:
        t.section("Alice links her mobile number to her XMPP account")
        since = phones.mark()
        try:
            await alice.register(sms, phone="0612345678")
        except IqError as exc:
            t.say("alice (XMPP)", f"gateway says: {exc.iq['error']['text']}")
        code_sms = await phones.next_to(ALICE_PHONE, since)
        t.say(f"alice's phone {ALICE_PHONE}", f"SMS from {code_sms.source}: {code_sms.text}")
        code = code_sms.text.split("code is ")[1][:6]
        await alice.register(sms, phone="0612345678", code=code)
        t.say("alice (XMPP)", "registration accepted")
        await alice.accept_gateway(sms)

        t.section("Alice texts Bob's phone from her XMPP client")
        since = phones.mark()
        alice.send_message(mto=JID(f"{BOB_PHONE}@{sms}"), mbody="Hi Bob! Dinner at 8? 🍝", mtype="chat")
        got = await phones.next_to(BOB_PHONE, since)
        t.say(f"bob's phone {BOB_PHONE}", f"SMS from {got.source}: {got.text}")

        t.section("Bob answers by SMS; it reaches Alice's XMPP client")
        await smsc.inject_mo(BOB_PHONE[1:], ALICE_PHONE[1:], "Sure, see you there!")
        msg = await alice.next_message(from_bare=f"{BOB_PHONE}@{sms}")
        t.say("alice (XMPP)", f"message from {msg['from'].bare}: {msg['body']}")
        await msn_story(world, alice, phones)
    finally:
        await alice.close()


async def msn_story(world: World, alice: Any, phones: Phones) -> None:
    """XMPP ↔ MSN, then MSN → SMS while Alice is away, the SMS reply, /who, a merged buddy."""
    from slixmpp import JID

    from gateway.addressing import escape_node
    from transports.msn.client import MsnSession, SessionConfig, SessionEvent
    from transports.msn.ns_events import PersonalMessageChanged
    from transports.msn.sb import MessageReceived

    t, smsc, msn_jid = world.t, world.smsc, f"msn.{DOMAIN}"
    bob_events: asyncio.Queue[SessionEvent] = asyncio.Queue()
    bob = MsnSession(
        SessionConfig(
            BOB_MSN, "bob-msn", ns_host="127.0.0.1", ns_port=world.msn.ns_port, nexus_url=world.msn.nexus_url
        ),
        bob_events.put_nowait,
    )
    await bob.login()

    async def bob_gets(kind: type, check: Callable[[Any], bool] = lambda e: True) -> Any:
        async with asyncio.timeout(15):
            while True:
                event = await bob_events.get()
                if isinstance(event, kind) and check(event):
                    return event

    async def phone_gets(since: int, number: str, timeout: float = 15) -> str:
        got = await phones.next_to(number, since, timeout)
        return f"SMS from {got.source}: {got.text}"

    try:
        t.section("Alice adds her MSN account; her MSN buddies join her roster")
        await alice.register(msn_jid, handle=ALICE_MSN, password="alice-msn")
        t.say("alice (XMPP)", "MSN registration accepted (checked by signing in)")
        await alice.accept_gateway(msn_jid)
        bob_jid = f"{escape_node(BOB_MSN)}@{msn_jid}"
        carol_jid = f"{escape_node(CAROL_MSN)}@{msn_jid}"
        async with asyncio.timeout(15):
            while bob_jid not in alice.client_roster or carol_jid not in alice.client_roster:
                await asyncio.sleep(0.1)
        names = sorted(alice.client_roster[j]["name"] for j in (bob_jid, carol_jid))
        t.say("alice (XMPP)", f"roster now lists {', '.join(names)} (from MSN)")

        t.section("XMPP ↔ MSN")
        alice.send_message(mto=JID(bob_jid), mbody="Hello from XMPP!", mtype="chat")
        got = await bob_gets(MessageReceived)
        t.say("bob (MSN)", f"message from {got.sender}: {got.text}")
        await bob.send_message(ALICE_MSN, "Hi Alice, MSN here.")
        msg = await alice.next_message(from_bare=bob_jid)
        t.say("alice (XMPP)", f"message from {msg['from'].bare}: {msg['body']}")

        t.section("Alice leaves her PC: MSN messages reach her phone by SMS")
        alice.send_presence(ptype="unavailable")
        alice.send_presence(pto=msn_jid, ptype="unavailable")
        psm = await bob_gets(PersonalMessageChanged, lambda e: e.handle == ALICE_MSN and bool(e.text))
        t.say("bob (MSN)", f"Alice is online, personal message: {psm.text!r}")
        since = phones.mark()
        await bob.send_message(ALICE_MSN, "Are you coming tonight?")
        t.note(
            f"Bob writes to Alice on MSN. The gateway texts her phone only once she has been away"
            f" {AWAY_GRACE_S:.0f} s, so that a client reconnecting is not taken for her leaving:"
            f" a pause of up to {AWAY_GRACE_S:.0f} s"
        )
        t.say(f"alice's phone {ALICE_PHONE}", await phone_gets(since, ALICE_PHONE, 15 + AWAY_GRACE_S))

        t.section("Alice answers from her phone; the reply reaches Bob on MSN")
        await smsc.inject_mo(ALICE_PHONE[1:], "2020", "Yes! Leaving now.")
        got = await bob_gets(MessageReceived)
        t.say("bob (MSN)", f"message from {got.sender}: {got.text}")
        since = phones.mark()
        t.say(f"alice's phone {ALICE_PHONE}", "sends SMS to 2020: /who  (who is online?)")
        await smsc.inject_mo(ALICE_PHONE[1:], "2020", "/who")
        t.say(f"alice's phone {ALICE_PHONE}", await phone_gets(since, ALICE_PHONE))

        t.section("Alice is back at her PC: what her phone got and sent is in her XMPP client")
        alice.send_presence()
        alice.send_presence(pto=msn_jid)
        kept, carbon = await kept_while_away(alice, bob_jid)
        t.say("alice (XMPP)", f"kept while away: message from {bob_jid}: {kept}")
        t.say("alice (XMPP)", f"carbon: she sent {carbon[1]!r} to {carbon[0]} (by SMS)")

        t.section("One buddy, two routes: Carol's MSN contact linked to her phone")
        assert world.gateway is not None and world.gateway.store is not None
        store = world.gateway.store
        sub = await store.subscriber_by_account("sms", ALICE_PHONE)
        assert sub is not None
        await store.link_phone(sub.id, "msn", CAROL_MSN, CAROL_PHONE)  # as `passerelle contact link` does
        await asyncio.sleep(1.0)
        since = phones.mark()
        alice.send_message(mto=JID(carol_jid), mbody="Carol, are you there?", mtype="chat")
        t.say(
            f"carol's phone {CAROL_PHONE}", await phone_gets(since, CAROL_PHONE) + "  (Carol is not on MSN)"
        )
        await smsc.inject_mo(CAROL_PHONE[1:], ALICE_PHONE[1:], "On my way!")
        msg = await alice.next_message(from_bare=carol_jid)
        t.say(
            "alice (XMPP)",
            f"message from {msg['from'].bare}: {msg['body']}  (an SMS, shown as Carol's MSN contact)",
        )
    finally:
        await bob.close()


PLAY_HELP = f"""Type a command (Ctrl-C or Ctrl-D stops everything):
  <text>              Bob's phone ({BOB_PHONE}) texts Alice's number
  sms <text>          Alice's phone texts the service number 2020: a reply, @bob hi, /who, STOP, START
  msn <buddy> <text>  an MSN user (bob or carol) writes to Alice on MSN
  help                this list"""


@dataclass(frozen=True)
class PhoneLine:
    """A phone texts a number: ``source`` and ``destination`` in E.164."""

    source: str
    destination: str
    text: str


@dataclass(frozen=True)
class MsnLine:
    """An MSN user writes to Alice."""

    handle: str
    text: str


@dataclass(frozen=True)
class Say:
    """Nothing to send: an answer for the operator."""

    text: str


def parse_line(line: str, service_number: str = "2020") -> PhoneLine | MsnLine | Say | None:
    """What a playground line asks for; None for a blank line."""
    words = line.strip().split(maxsplit=2)
    if not words:
        return None
    command = words[0].lower()
    if command == "help":
        return Say(PLAY_HELP)
    if command == "sms":
        rest = line.strip()[3:].strip()
        return PhoneLine(ALICE_PHONE, service_number, rest) if rest else Say("Usage: sms <text>")
    if command == "msn":
        if len(words) < 3:
            return Say("Usage: msn <buddy> <text>, e.g. msn bob are you there?")
        handle = _msn_handle(words[1])
        if handle is None:
            return Say(f"No MSN user {words[1]!r} here: try bob or carol.")
        return MsnLine(handle, words[2])
    return PhoneLine(BOB_PHONE, ALICE_PHONE, line.strip())


def _msn_handle(name: str) -> str | None:
    """``bob``, ``Bob`` or ``bob@escargot.test``: one of the MSN users who can play (not Alice)."""
    wanted = name.lower()
    for user in msn_users()[1:]:
        handle = str(user["handle"])
        if wanted in (handle, handle.split("@")[0]):
            return handle
    return None


class MsnPlayers:
    """Bob and Carol signed in on the fake MSN server, played from the terminal: what they
    send goes to Alice; what they receive is printed."""

    def __init__(self, world: World, out: Callable[[str], None] | None = None) -> None:
        self.world = world
        self.out = out or _say
        self.sessions: dict[str, Any] = {}

    async def start(self) -> None:
        from transports.msn.client import MsnSession, SessionConfig

        for user in msn_users()[1:]:
            handle, password = str(user["handle"]), str(user["password"])
            config = SessionConfig(
                handle,
                password,
                ns_host="127.0.0.1",
                ns_port=self.world.msn.ns_port,
                nexus_url=self.world.msn.nexus_url,
            )
            session = MsnSession(config, functools.partial(self._event, handle))
            await session.login()
            self.sessions[handle] = session

    def _event(self, handle: str, event: Any) -> None:
        from transports.msn.sb import MessageReceived

        if isinstance(event, MessageReceived):
            self.out(f"[msn {handle}] message from {event.sender}: {event.text}")

    async def send(self, handle: str, text: str) -> None:
        result = await self.sessions[handle].send_message(ALICE_MSN, text)
        if not result.ok:
            self.out(f"[msn {handle}] not delivered: {result.reason or result.status.value}")

    async def close(self) -> None:
        for session in self.sessions.values():
            with contextlib.suppress(Exception):
                await session.close()


def _say(text: str) -> None:
    print(text, flush=True)


async def play(world: World, players: MsnPlayers, line: str, out: Callable[[str], None] = _say) -> None:
    """Carry out one playground line."""
    match parse_line(line, world.config.sms.service_number if world.config and world.config.sms else "2020"):
        case PhoneLine(source=source, destination=destination, text=text):
            await world.smsc.inject_mo(source.lstrip("+"), destination.lstrip("+"), text)
        case MsnLine(handle=handle, text=text):
            await players.send(handle, text)
        case Say(text=text):
            out(text)
        case None:
            pass


async def kept_while_away(alice: Any, sender: str) -> tuple[str, tuple[str, str]]:
    """What the server kept for Alice while she was away, in whatever order it comes: the
    body of a message from ``sender``, and (to, body) of a sent carbon of her SMS reply."""
    body, carbon = None, None
    async with asyncio.timeout(15):
        while body is None or carbon is None:
            msg = await alice.messages.get()
            carbon = carbon or alice.sent_carbon(msg)
            if body is None and msg["from"].bare == sender and msg["body"]:
                body = str(msg["body"])
    return body, carbon


class Console:
    """The playground's output, and when its last line was printed: a scripted line is
    answered once the world has been quiet a while (see :func:`settle`)."""

    def __init__(self, write: Callable[[str], None] = _say) -> None:
        self.write = write
        self.last_at = time.monotonic()

    def __call__(self, text: str) -> None:
        self.write(text)
        self.last_at = time.monotonic()


def read_lines(fd: int, deliver: Callable[[str | None], None]) -> None:
    """Read ``fd`` to its end in the calling thread, giving ``deliver`` each line, then None.

    Plain blocking reads work on a terminal, a pipe, a regular file and ``/dev/null``
    alike; asyncio's pipe transport refuses the last two. A read error (stdin closed) is
    the end of the input.
    """
    pending = b""
    try:
        while chunk := os.read(fd, 4096):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                deliver(line.decode(errors="replace"))
    except OSError:
        pass
    finally:
        if pending:
            deliver(pending.decode(errors="replace"))
        deliver(None)


def stdin_lines(fd: int = 0) -> asyncio.Queue[str | None]:
    """The lines of ``fd`` as they come, then None, read by a daemon thread (a read
    blocked on a terminal must not keep the demo from exiting)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def deliver(line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the demo is exiting
            loop.call_soon_threadsafe(queue.put_nowait, line)

    threading.Thread(target=read_lines, args=(fd, deliver), name="demo-stdin", daemon=True).start()
    return queue


def print_new_sms(phones: Phones, out: Callable[[str], None]) -> None:
    for sms in phones.poll():
        out(f"[phone {sms.destination}] SMS from {sms.source}: {sms.text}")


async def settle(
    world: World, phones: Phones, console: Console, quiet: float = SETTLE_S, limit: float = REPLY_WAIT_MAX_S
) -> None:
    """Wait for the replies a line triggered: until the gateway's outbox has been empty, no
    long SMS has waited for parts and nothing was printed for ``quiet`` s; at most
    ``limit`` s, so that a reply that never comes does not hold the demo up."""
    assert world.gateway is not None and world.gateway.store is not None
    store = world.gateway.store
    start = idle_since = time.monotonic()
    while True:
        print_new_sms(phones, console)
        now = time.monotonic()
        if phones.pending or await store.outbox_items(limit=1):
            idle_since = now
        if now - max(idle_since, console.last_at) >= quiet:
            return
        if now - start >= limit:
            console(f"(no end to the replies after {limit:.0f} s: going on)")
            return
        await asyncio.sleep(0.1)


async def playground(world: World, fd: int = 0) -> None:
    """Stay up: print how to log in, and let ``fd`` (stdin) play the phones and MSN users
    until its end. A script (stdin not a terminal) is echoed line by line, and each line's
    replies are waited for before the next line, and before exiting."""
    console = Console()
    phones = Phones(world.smsc)
    players = MsnPlayers(world, console)
    await players.start()
    console("\n== The world stays up: try it yourself ==")
    console(f"XMPP server: 127.0.0.1 port {world.prosody.c2s_port}, no TLS, plain auth")
    console(f"Account: alice@{DOMAIN}  password: demo   (also bob@{DOMAIN} / demo)")
    console(f"MSN: {BOB_MSN} and {CAROL_MSN} are online, in Alice's roster via msn.{DOMAIN}")
    console(f"Text a phone from XMPP: write to {BOB_PHONE}@sms.{DOMAIN}")
    console(
        f"While no XMPP client of Alice's is online, MSN messages reach her phone by SMS "
        f"(once she has been away {AWAY_GRACE_S:.0f} s)."
    )
    console(PLAY_HELP + "\n")
    scripted = not os.isatty(fd)
    lines = stdin_lines(fd)

    async def show_sms() -> None:
        while True:
            await asyncio.sleep(0.2)
            print_new_sms(phones, console)

    printer = asyncio.ensure_future(show_sms())
    try:
        while (line := await lines.get()) is not None:
            if not line.strip():
                continue
            if scripted:
                console(f"> {line}")
            await play(world, players, line, console)
            if scripted:
                await settle(world, phones, console)
        if not scripted:
            await settle(world, phones, console)
        console("End of input: stopping.")
    finally:
        printer.cancel()
        await players.close()


async def run(world: World, story_only: bool) -> None:
    """Start the world, play the story, then the playground."""
    await world.start()
    pid = world.prosody.process.pid if world.prosody.process else "?"
    _say(f"(world in {world.dir}, Prosody pid {pid}: both go when the demo stops)")
    await story(world)
    if not story_only:
        await playground(world)


async def until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set; then cancel it, again should some
    cleanup swallow the cancellation, until it has ended. Its errors are raised unless it
    was stopped."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1)
    if not (stop.is_set() and task.cancelled()):
        task.result()


def _stop_requested(signum: int, stop: asyncio.Event) -> None:
    if not stop.is_set():
        _say(f"\n{signal.Signals(signum).name}: stopping the gateway, the fakes and Prosody...")
        stop.set()


async def main_async(story_only: bool) -> int:
    """The demo; 0 when it ended as asked: the story done (``story_only``), the end of the
    input, or SIGINT (Ctrl-C) / SIGTERM. Everything it started is stopped and its temp
    directory removed in every case."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("slixmpp").setLevel(logging.ERROR)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, _stop_requested, signum, stop)
    try:
        with tempfile.TemporaryDirectory(prefix="passerelle-demo-") as tmp:
            world = World(Path(tmp), Transcript())
            try:
                await until_stopped(run(world, story_only), stop)
            finally:
                await world.stop()
        _say(f"Stopped; {tmp} removed.")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--story-only", action="store_true", help="play the story, then exit")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main_async(args.story_only)))


if __name__ == "__main__":
    main()
