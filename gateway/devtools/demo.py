"""``make demo``: a complete local world on loopback, a scripted story, then a playground.

Starts a throwaway Prosody (with XEP-0356), the fake SMSC, the fake MSN server, and the
gateway with a generated config; plays a story in which every line is printed by the
party that received it, from what actually arrived; then stays up, printing an XMPP
account for any client and a prompt to play a phone, until Ctrl-C. ``--story-only`` plays
the story and exits (the test suite runs that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
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

        t.section("One buddy, two routes: Carol's MSN contact linked to her phone")
        assert world.gateway is not None and world.gateway.store is not None
        store = world.gateway.store
        sub = await store.subscriber_by_account("sms", ALICE_PHONE)
        assert sub is not None
        await store.link_phone(sub.id, "msn", CAROL_MSN, CAROL_PHONE)  # as `passerelle contact link` does
        alice.send_presence()
        alice.send_presence(pto=msn_jid)
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


async def playground(world: World) -> None:
    """Stay up: print how to log in, and let the terminal play Bob's phone."""
    from transports.sms.encoding import decode_text

    smsc = world.smsc
    print("\n== The world stays up: try it yourself ==")
    print(f"XMPP server: 127.0.0.1 port {world.prosody.c2s_port}, no TLS, plain auth")
    print(f"Account: alice@{DOMAIN}  password: demo   (also bob@{DOMAIN} / demo)")
    print(f"MSN: bob@escargot.test is online in Alice's roster via msn.{DOMAIN}")
    print(f"Text a phone from XMPP: write to +33698765432@sms.{DOMAIN}")
    print(f"Play Bob's phone here: type a line to text Alice ({ALICE_PHONE}); Ctrl-C stops everything.\n")
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
                print(f"[phone +{s.destination_addr}] SMS from {s.source_addr}: {text}")
            seen = len(smsc.submits)

    printer = asyncio.ensure_future(show_sms())
    try:
        while line := (await reader.readline()).decode().strip():
            await smsc.inject_mo(BOB_PHONE[1:], ALICE_PHONE[1:], line)
    finally:
        printer.cancel()


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
