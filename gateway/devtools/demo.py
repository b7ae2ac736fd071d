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
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.config import Config, parse
from gateway.devtools.prosody import ComponentSpec, Prosody
from gateway.storage import create_key_file

DOMAIN = "demo.test"
ALICE_PHONE = "+33612345678"
BOB_PHONE = "+33698765432"
CAROL_PHONE = "+33611223344"
ALICE_MSN, BOB_MSN, CAROL_MSN = "alice@escargot.test", "bob@escargot.test", "carol@escargot.test"


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

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.out = out
        self.lines: list[str] = []

    def say(self, who: str, text: str) -> None:
        line = f"{who:>22} | {text}"
        self.lines.append(line)
        self.out(line)

    def section(self, title: str) -> None:
        self.out(f"\n== {title} ==")


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
        bridge = await self.gateway.start()
        self._stops.append(self.gateway.stop)
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
    from transports.sms.encoding import decode_text
    from transports.sms.fake_smsc import FakeSmsc

    t = world.t
    smsc: FakeSmsc = world.smsc
    sms = f"sms.{DOMAIN}"
    alice = DemoUser(f"alice@{DOMAIN}/laptop", "demo", world.prosody.c2s_port)
    await alice.online()
    try:
        t.section("Alice links her mobile number to her XMPP account")
        try:
            await alice.register(sms, phone="0612345678")
        except IqError as exc:
            t.say("alice (XMPP)", f"gateway says: {exc.iq['error']['text']}")
        code_sms = (await smsc.wait_for_submits(1, timeout=15))[-1]
        text = decode_text(code_sms.short_message, code_sms.pdu.data_coding).text
        t.say(f"alice's phone {ALICE_PHONE}", f"SMS from {code_sms.source_addr}: {text}")
        code = text.split("code is ")[1][:6]
        await alice.register(sms, phone="0612345678", code=code)
        t.say("alice (XMPP)", "registration accepted")
        await alice.accept_gateway(sms)

        t.section("Alice texts Bob's phone from her XMPP client")
        before = len(smsc.submits)
        alice.send_message(mto=JID(f"{BOB_PHONE}@{sms}"), mbody="Hi Bob! Dinner at 8? 🍝", mtype="chat")
        submit = (await smsc.wait_for_submits(before + 1, timeout=15))[-1]
        body = decode_text(submit.short_message, submit.pdu.data_coding).text
        t.say(f"bob's phone {BOB_PHONE}", f"SMS from +{submit.source_addr}: {body}")

        t.section("Bob answers by SMS; it reaches Alice's XMPP client")
        await smsc.inject_mo(BOB_PHONE[1:], ALICE_PHONE[1:], "Sure, see you there!")
        msg = await alice.next_message(from_bare=f"{BOB_PHONE}@{sms}")
        t.say("alice (XMPP)", f"message from {msg['from'].bare}: {msg['body']}")
        await msn_story(world, alice)
    finally:
        await alice.close()


async def msn_story(world: World, alice: Any) -> None:
    """XMPP ↔ MSN, then MSN → SMS while Alice is away, the SMS reply, /who, a merged buddy."""
    from slixmpp import JID

    from gateway.addressing import escape_node
    from transports.msn.client import MsnSession, SessionConfig, SessionEvent
    from transports.msn.ns_events import PersonalMessageChanged
    from transports.msn.sb import MessageReceived
    from transports.sms.encoding import decode_text

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

    def phone_texts(since: int, number: str) -> list[Any]:
        return [s for s in smsc.submits[since:] if s.destination_addr == number.lstrip("+") and s.status == 0]

    async def phone_gets(since: int, number: str) -> str:
        await smsc.wait_until(lambda: bool(phone_texts(since, number)), 15)
        s = phone_texts(since, number)[0]
        return f"SMS from {s.source_addr}: {decode_text(s.short_message, s.pdu.data_coding).text}"

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
        before = len(smsc.submits)
        await bob.send_message(ALICE_MSN, "Are you coming tonight?")
        t.say(f"alice's phone {ALICE_PHONE}", await phone_gets(before, ALICE_PHONE))

        t.section("Alice answers from her phone; the reply reaches Bob on MSN")
        await smsc.inject_mo(ALICE_PHONE[1:], "2020", "Yes! Leaving now.")
        got = await bob_gets(MessageReceived)
        t.say("bob (MSN)", f"message from {got.sender}: {got.text}")
        before = len(smsc.submits)
        await smsc.inject_mo(ALICE_PHONE[1:], "2020", "/who")
        t.say(f"alice's phone {ALICE_PHONE}", await phone_gets(before, ALICE_PHONE))

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
        before = len(smsc.submits)
        alice.send_message(mto=JID(carol_jid), mbody="Carol, are you there?", mtype="chat")
        t.say(
            f"carol's phone {CAROL_PHONE}", await phone_gets(before, CAROL_PHONE) + "  (Carol is not on MSN)"
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


async def playground(world: World) -> None:
    """Stay up: print how to log in, and let the terminal play the phones and MSN users."""
    from transports.sms.encoding import decode_text

    smsc = world.smsc
    players = MsnPlayers(world)
    await players.start()
    print("\n== The world stays up: try it yourself ==")
    print(f"XMPP server: 127.0.0.1 port {world.prosody.c2s_port}, no TLS, plain auth")
    print(f"Account: alice@{DOMAIN}  password: demo   (also bob@{DOMAIN} / demo)")
    print(f"MSN: {BOB_MSN} and {CAROL_MSN} are online, in Alice's roster via msn.{DOMAIN}")
    print(f"Text a phone from XMPP: write to {BOB_PHONE}@sms.{DOMAIN}")
    print("While no XMPP client of Alice's is online, MSN messages reach her phone by SMS.")
    print(PLAY_HELP + "\n", flush=True)
    seen = len(smsc.submits)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def show_sms() -> None:
        nonlocal seen
        while True:
            await asyncio.sleep(0.2)
            for s in smsc.submits[seen:]:
                text = decode_text(s.short_message, s.pdu.data_coding).text
                print(f"[phone +{s.destination_addr}] SMS from {s.source_addr}: {text}", flush=True)
            seen = len(smsc.submits)

    printer = asyncio.ensure_future(show_sms())
    try:
        while raw := await reader.readline():
            await play(world, players, raw.decode(errors="replace"))
    finally:
        printer.cancel()
        await players.close()


async def main_async(story_only: bool) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("slixmpp").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="passerelle-demo-") as tmp:
        world = World(Path(tmp), Transcript())
        try:
            await world.start()
            await story(world)
            if not story_only:
                await playground(world)
        finally:
            await world.stop()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--story-only", action="store_true", help="play the story, then exit")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main_async(args.story_only)))


if __name__ == "__main__":
    main()
