"""The fault-injection world: a real Prosody, the gateway as its own process, the fake SMSC
and the fake MSN server in the test's process, and the parties at each end of the six
message directions, with the accounting every case ends with.

Who is who:

- **alice** (``alice@example.test``, number ``+33612345678``, MSN ``alice@escargot.test``) is
  online on XMPP through a raw c2s client that reconnects by itself; bob is her MSN buddy;
- **sam** is an SMS-only subscriber (number ``+33611111111`` and MSN ``sam@escargot.test``,
  no XMPP): his MSN buddies carol and dave reach his phone by SMS from the service number,
  and he answers them by texting ``@carol …`` to it;
- the **phones** are the fake SMSC's view (``submit_sm`` it accepted, ``deliver_sm`` it sends).

The six directions and where each message is checked:

========  ===========================================  ===================================
``x2s``   alice's client → ``+336980xxxxx@sms…``        submit_sm at the SMSC (+ receipt)
``s2x``   deliver_sm from ``336970xxxxx`` → alice      alice's client
``x2m``   alice's client → ``bob\\40escargot.test@msn…``  bob's MSN session
``m2x``   bob's MSN session → alice                    alice's client
``m2s``   carol/dave's MSN sessions → sam              submit_sm to sam's number
``s2m``   deliver_sm from sam's phone to 2020          carol/dave's MSN sessions
========  ===========================================  ===================================

Every message carries a unique token (``x2s-00042-1a2b3c``) in its body. Each sender keeps
trying the way its network's real senders do, and counts its attempts:

- the XMPP client resends, with the *same* id, whatever the server did not confirm before the
  stream broke (confirmation: an IQ ping to the server answered after the message was
  written — XMPP without stream management offers nothing better), and takes an error
  message with the id as the final answer;
- the SMSC redelivers a deliver_sm until it is answered ``ESME_ROK`` (what real SMSCs do);
- an MSN user sends again until the switchboard ``ACK``\\s the message.

The accounting of a direction (:class:`Flow`): *lost* = sent, never received and never
answered with an error; *lies* = received although the sender was told it failed;
*duplicates* split into those a sender's own resend explains (inherent to a protocol with
no acknowledgement the sender can trust) and the gateway's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.rawclient import RawClient, XmppError, attributes
from gateway.addressing import BareJid
from gateway.devtools.prosody import ComponentSpec, Prosody
from gateway.storage import Cipher, Store, create_key_file
from tests.conftest import DOMAIN, SECRET
from transports.msn import client as msn
from transports.msn.fake_server import FakeMsnServer
from transports.msn.sb import MessageReceived
from transports.sms.encoding import decode_text
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.pdu import DeliverSm, SubmitSm
from transports.sms.receipts import is_receipt

# --------------------------------------------------------------------------- sizes

MESSAGES = int(os.environ.get("PASSERELLE_FAULT_MESSAGES", "1000"))  # per direction per case
MIN_STREAM_S = 10.0  # a smaller run streams slower, so that every fault happens mid-stream
RATE = float(os.environ.get("PASSERELLE_FAULT_RATE", min(50.0, MESSAGES / MIN_STREAM_S)))  # per direction
STREAM_S = MESSAGES / RATE
IN_FLIGHT_S = 1.0  # at a kill -9: how long before it a message counts as in flight (see lost_in_flight)
RECOVERY_LIMIT_S = 15.0  # "back to normal by itself within seconds of the fault ending"
DRAIN_LIMIT_S = 15.0 + MESSAGES / 40  # after the stream: everything delivered or answered by then
SMPP_WINDOW = 10  # the gateway's [sms.smsc] window: at most this many submit_sm in flight
MO_WINDOW = 32  # the SMSC's: at most this many deliver_sm waiting for their answer
MSN_CHATS = 3  # switchboards the gateway sends on in these cases (bob, carol, dave)

SMS = f"sms.{DOMAIN}"
MSN = f"msn.{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
ALICE_NUMBER, SAM_NUMBER = "+33612345678", "+33611111111"
ALICE_MSN, SAM_MSN = "alice@escargot.test", "sam@escargot.test"
BUDDIES = {"bob": "bob@escargot.test", "carol": "carol@escargot.test", "dave": "dave@escargot.test"}
SMSC_PASSWORD = "smscpw"
DIRECTIONS = ("x2s", "s2x", "x2m", "m2x", "m2s", "s2m")
TOKEN = re.compile(r"\b(x2s|s2x|x2m|m2x|m2s|s2m)-\d{5}-[0-9a-f]{6}\b")
NOT_DELIVERED = "(automatic reply) Your message could not be delivered"  # to an MSN sender
FAST = {"timeout": 3.0, "login_timeout": 5.0, "backoff_initial": 0.2, "backoff_max": 0.5}
PASSERELLE = (
    [str(Path(sys.executable).parent / "passerelle")]
    if (Path(sys.executable).parent / "passerelle").exists()
    else [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
)


def msn_users() -> list[dict[str, Any]]:
    def back(handle: str) -> list[dict[str, Any]]:
        return [{"handle": handle, "lists": ["FL", "AL"]}]

    return [
        {"handle": ALICE_MSN, "password": "alice pw", "friendly_name": "Alice",
         "contacts": back(BUDDIES["bob"])},
        {"handle": SAM_MSN, "password": "sam pw", "friendly_name": "Sam",
         "contacts": back(BUDDIES["carol"]) + back(BUDDIES["dave"])},
        {"handle": BUDDIES["bob"], "password": "bob pw", "friendly_name": "Bob", "contacts": back(ALICE_MSN)},
        {"handle": BUDDIES["carol"], "password": "carol pw", "friendly_name": "Carol",
         "contacts": back(SAM_MSN)},
        {"handle": BUDDIES["dave"], "password": "dave pw", "friendly_name": "Dave",
         "contacts": back(SAM_MSN)},
    ]  # fmt: skip


def now() -> float:
    return time.monotonic()


def m2s_buddy(token: str) -> str:
    """Who sent an m2s message: carol the odd ones, dave the even ones (see World.stream)."""
    return "carol" if int(token.split("-")[1]) % 2 else "dave"


# --------------------------------------------------------------------------- accounting


@dataclass
class Flow:
    """One direction's books."""

    name: str
    attempts: Counter[str] = field(default_factory=Counter)  # token -> times handed to the network
    accepted: set[str] = field(default_factory=set)  # the sender's network said "taken"
    errors: Counter[str] = field(default_factory=Counter)  # token -> error answers the sender got
    received: Counter[str] = field(default_factory=Counter)
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    rerouted: int = 0  # reached the subscriber by another route (convergence)
    first_sent: dict[str, float] = field(default_factory=dict)  # token -> its first attempt

    def attempt(self, token: str) -> None:
        self.attempts[token] += 1
        self.first_sent.setdefault(token, now())

    def arrived(self, token: str) -> None:
        self.received[token] += 1
        self.arrivals.append((now(), token))

    @property
    def sent(self) -> set[str]:
        return set(self.attempts)

    @property
    def lost(self) -> set[str]:
        return {t for t in self.attempts if not self.received[t] and not self.errors[t]}

    @property
    def lies(self) -> set[str]:
        """Received although every attempt was answered with an error (an error to one
        attempt and a delivery of the sender's resend is the truth about each)."""
        return {t for t in self.errors if self.received[t] and self.errors[t] >= self.attempts[t]}

    @property
    def duplicates(self) -> int:
        return sum(c - 1 for c in self.received.values() if c > 1)

    @property
    def resend_duplicates(self) -> int:
        """Duplicates a sender's own resend explains."""
        return sum(min(c - 1, self.attempts[t] - 1) for t, c in self.received.items() if c > 1)

    @property
    def gateway_duplicates(self) -> int:
        return self.duplicates - self.resend_duplicates

    def gateway_duplicated(self) -> list[str]:
        """The tokens received more often than their sender's resends explain."""
        return sorted(t for t, c in self.received.items() if c > self.attempts[t])

    @property
    def resends(self) -> int:
        return sum(c - 1 for c in self.attempts.values())

    def settled(self, excused: set[str]) -> bool:
        return all(self.received[t] or self.errors[t] or t in excused for t in self.attempts)

    def first_arrival_after(self, t: float) -> float | None:
        return next((at for at, _ in self.arrivals if at >= t), None)


# --------------------------------------------------------------------------- Prosody


class FaultProsody(Prosody):
    """The test Prosody plus ``mod_offline``, as in Prosody's default configuration: a
    message to a user between two connections is kept, not bounced."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        self.config_path.write_text(text.replace('"message" }', '"message"; "offline" }', 1))


# --------------------------------------------------------------------------- the fake SMSC


class RecordingSmsc(FakeSmsc):
    """Records, for each accepted submit_sm, the tokens in its text."""

    def __init__(self, world: World, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.world = world
        self.receipt_retries = 0
        self.reject_to: dict[str, list[int]] = {}  # destination -> statuses for its next submits

    async def deliver(self, pdu: DeliverSm, timeout: float = 5.0) -> int:
        """Receipts included: like a real SMSC, a receipt the ESME did not take is sent
        again (the base fake sends each receipt once and forgets it on a dropped link)."""
        if not is_receipt(pdu.esm_class):
            return await super().deliver(pdu, timeout)
        deadline = now() + 120.0
        while True:
            try:
                status = await super().deliver(pdu, timeout)
            except (RuntimeError, ConnectionError, TimeoutError):
                status = -1
            if status == 0 or now() > deadline:
                return status
            self.receipt_retries += 1
            await asyncio.sleep(0.3)

    def _on_submit(self, conn: Any, pdu: SubmitSm) -> None:
        planned = self.reject_to.get(pdu.destination_addr)
        if planned:  # a refusal meant for this destination only
            self._reject.insert(0, planned.pop(0))
        before = len(self.submits)
        super()._on_submit(conn, pdu)
        if len(self.submits) == before or self.submits[-1].status != 0:
            return
        text = decode_text(pdu.short_message, pdu.data_coding).text
        self.world.on_sms(pdu.destination_addr, text)


# --------------------------------------------------------------------------- the gateway process


class GatewayProcess:
    """``passerelle -c CFG -v run`` as an operator runs it (so ``kill -9`` is real)."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config, self.log_path = config, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            log.write(f"==== start {self.starts + 1} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*PASSERELLE, "-c", str(self.config), "-v", "run"], env=env, stdout=log, stderr=log,
                cwd=str(self.config.parent), start_new_session=True,
            )  # fmt: skip
        self.starts += 1

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self, timeout: float = 25.0) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]


# --------------------------------------------------------------------------- XMPP side


class XmppParty:
    """alice's client: a raw c2s stream that reconnects and resends what was not confirmed."""

    def __init__(self, world: World, port: int, jid: str, password: str) -> None:
        self.world, self.port, self.jid, self.password = world, port, jid, password
        self.client: RawClient | None = None
        self.unconfirmed: dict[str, tuple[str, str, str, bool]] = {}  # id -> (flow, to, body, receipt)
        self.receipts: set[str] = set()
        self.error_conditions: Counter[str] = Counter()
        self.error_texts: dict[str, str] = {}
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._confirm_loop())

    async def _connect(self) -> None:
        client = await RawClient.connect(
            self.port, f"{self.jid}/fault", self.password, on_message=self._on_msg
        )
        client.on_raw = self._on_raw
        await client.send_iq("<query xmlns='jabber:iq:roster'/>")
        for comp in (SMS, MSN):  # like a registered user: subscribed both ways to each component
            client.send_raw(f"<presence to='{comp}' type='subscribed'/>")
            client.send_raw(f"<presence to='{comp}' type='subscribe'/>")
        client.send_raw("<presence/>")
        for comp in (SMS, MSN):
            client.send_raw(f"<presence to='{comp}'/>")
        await client.drain()
        self.client = client

    def _on_msg(self, frm: str, _id: str, body: str, _t: float) -> None:
        self.world.on_xmpp(frm, body)

    def _on_raw(self, name: str, raw: bytes, _t: float) -> None:
        if name == "presence" and (b"type='subscribe'" in raw or b'type="subscribe"' in raw):
            frm = attributes(raw[: raw.find(b">")]).get("from", "")
            if self.client is not None and frm:
                self.client.send_raw(f"<presence to='{frm}' type='subscribed'/>")
            return
        if name != "message":
            return
        head = attributes(raw[: raw.find(b">")])
        if head.get("type") == "error":
            msg_id = head.get("id", "")
            cond = re.search(
                rb"<((?!text\b)[a-z-]+) [^>]*xmlns=['\"]urn:ietf:params:xml:ns:xmpp-stanzas['\"]", raw
            )
            text = re.search(rb"<text[^>]*>(.*?)</text>", raw, re.DOTALL)
            condition = cond.group(1).decode() if cond else "?"
            self.error_conditions[condition] += 1
            self.error_texts[msg_id] = f"{condition}: {text.group(1).decode() if text else ''}"
            self.world.on_xmpp_error(msg_id, condition)
            return
        got = re.search(rb"<received\b([^>]*)/?>", raw)  # Prosody orders attributes as it likes
        if got:
            attrs = attributes(got.group(1))
            if attrs.get("xmlns") == "urn:xmpp:receipts" and attrs.get("id"):
                self.receipts.add(attrs["id"])

    def send(self, flow: str, to: str, token: str, receipt: bool) -> None:
        self.unconfirmed[token] = (flow, to, token, receipt)
        self.world.flows[flow].attempt(token)
        if self.client is not None and not self.client.closed:
            self._write(to, token, receipt)

    def _write(self, to: str, token: str, receipt: bool) -> None:
        assert self.client is not None
        request = "<request xmlns='urn:xmpp:receipts'/>" if receipt else ""
        self.client.send_raw(
            f"<message to='{to}' id='{token}' type='chat'><body>{token}</body>{request}</message>"
        )

    async def _confirm_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.2)
            client = self.client
            if client is not None and not client.closed:
                pending = list(self.unconfirmed)
                if not pending:
                    continue
                try:
                    await client.send_iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN, timeout=3.0)
                except (XmppError, TimeoutError, ConnectionError):
                    pass
                else:
                    for token in pending:
                        self.unconfirmed.pop(token, None)
                    continue
            await self._reconnect()

    async def _reconnect(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close(timeout=0.5)
            self.client = None
        while not self._stopping:
            try:
                await self._connect()
                break
            except (OSError, XmppError, TimeoutError):
                await asyncio.sleep(0.2)
        self.reconnects += 1
        for flow, to, token, receipt in list(self.unconfirmed.values()):
            self.world.flows[flow].attempt(token)
            self._write(to, token, receipt)

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            await self.client.close(timeout=1.0)


# --------------------------------------------------------------------------- MSN side


class MsnParty:
    """A scripted MSN user (a second MsnSession on the fake server) that resends until ACKed."""

    def __init__(self, world: World, server: FakeMsnServer, handle: str) -> None:
        user = server.directory.get(handle)
        assert user is not None
        cfg = msn.SessionConfig(handle, user.password, ns_host="127.0.0.1", ns_port=server.ns_port,
                                nexus_url=server.nexus_url, **FAST)  # fmt: skip
        self.world, self.handle = world, handle
        self.session = msn.MsnSession(cfg, self._on_event)
        self.locks: dict[str, asyncio.Lock] = {}
        self.failures: Counter[str] = Counter()

    def _on_event(self, event: msn.SessionEvent) -> None:
        if isinstance(event, MessageReceived):
            self.world.on_msn(self.handle, event.sender, event.text)

    async def send(self, flow: str, to: str, text: str, token: str) -> None:
        async with self.locks.setdefault(to, asyncio.Lock()):  # one chat: in order
            while True:
                self.world.flows[flow].attempt(token)
                result = await self.session.send_message(to, text)
                if result.ok:
                    self.world.flows[flow].accepted.add(token)
                    return
                self.failures[result.status.value] += 1
                await asyncio.sleep(0.3)


# --------------------------------------------------------------------------- the world


@dataclass
class Fault:
    name: str
    start: float = 0.0
    end: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


FaultAction = Callable[["World", Fault], Awaitable[None]]


class World:
    def __init__(self, tmp: Path, db_dir: Path | None = None) -> None:
        self.tmp = tmp
        self.db_dir = db_dir or tmp
        self.tag = secrets.token_hex(3)
        self.flows = {d: Flow(d) for d in DIRECTIONS}
        self.prosody = FaultProsody(
            tmp / "prosody", DOMAIN, [ComponentSpec(SMS, SECRET), ComponentSpec(MSN, SECRET)]
        )
        self.smsc = RecordingSmsc(self, system_id="gw", password=SMSC_PASSWORD)
        self.msn: FakeMsnServer | None = None
        self.gateway: GatewayProcess | None = None
        self.alice: XmppParty | None = None
        self.buddies: dict[str, MsnParty] = {}
        self.stray: list[str] = []  # received texts with no token (automatic answers, notices)
        self.mo_errors: Counter[str] = Counter()
        self.s2m_notices = 0  # "Not delivered to …" texts to sam's phone (they do not name the message)
        self.killed_at: float | None = None  # when the gateway was killed (kill -9), if it was
        self.m2s_notices: Counter[str] = Counter()  # buddy -> automatic "not delivered" answers to them

    # -- receivers ------------------------------------------------------------------------

    def on_sms(self, destination: str, text: str) -> None:
        m = TOKEN.search(text)
        if m is None:
            self.stray.append(f"SMS to {destination}: {text}")
            if destination == SAM_NUMBER.lstrip("+") and text.startswith("Not delivered to "):
                self.s2m_notices += 1  # the gateway told sam's phone an s2m message failed
            return
        direction = m.group(1)
        if direction == "m2x" and destination == ALICE_NUMBER.lstrip("+"):
            self.flows["m2x"].rerouted += 1  # convergence sent it to alice's phone
        self.flows[direction].arrived(m.group(0))

    def on_xmpp(self, frm: str, body: str) -> None:
        m = TOKEN.search(body)
        if m is None:
            self.stray.append(f"XMPP from {frm}: {body}")
            return
        self.flows[m.group(1)].arrived(m.group(0))

    def on_xmpp_error(self, msg_id: str, condition: str) -> None:
        m = TOKEN.fullmatch(msg_id)
        if m is not None:
            self.flows[m.group(1)].errors[msg_id] += 1

    def on_msn(self, receiver: str, sender: str, text: str) -> None:
        m = TOKEN.search(text)
        if m is None:
            self.stray.append(f"MSN to {receiver} from {sender}: {text}")
            if sender == SAM_MSN and text.startswith(NOT_DELIVERED):
                self.m2s_notices[receiver] += 1  # sam's gateway told a buddy a message failed
            return
        self.flows[m.group(1)].arrived(m.group(0))

    def m2s_told(self, lost: set[str]) -> bool:
        """Each lost m2s message answered by an automatic "not delivered" to its sender (the
        answers do not name the message: counted per buddy)."""
        by_buddy = Counter(m2s_buddy(token) for token in lost)
        return all(n <= self.m2s_notices[BUDDIES[b]] for b, n in by_buddy.items())

    # -- set-up ---------------------------------------------------------------------------

    def config_text(self) -> str:
        assert self.msn is not None
        return f"""
[xmpp]
port = {self.prosody.component_port}
user_domains = ["{DOMAIN}"]
[storage]
path = "{self.db_dir / "gw.db"}"
key_file = "{self.tmp / "secret.key"}"
[admin]
socket = "{self.tmp / "gw.sock"}"
[logging]
level = "info"
[sms]
jid = "{SMS}"
secret = "{SECRET}"
service_number = "2020"
[sms.smsc]
port = {self.smsc.port}
system_id = "gw"
password = "{SMSC_PASSWORD}"
window = {SMPP_WINDOW}
max_rate = 2000
enquire_link_s = 5
[sms.limits]
per_user_per_hour = 10000000
per_user_per_day = 100000000
global_per_day = 1000000000
[msn]
jid = "{MSN}"
secret = "{SECRET}"
[msn.server]
port = {self.msn.ns_port}
nexus_url = "{self.msn.nexus_url}"
[convergence]
reply_window_s = 3600
max_forwards_per_minute = 1000
"""

    async def start(self) -> None:
        self.prosody.start()
        self.prosody.register("alice", "pw")
        await self.smsc.start()
        self.msn = await FakeMsnServer.start(users=msn_users())
        cfg = self.tmp / "passerelle.toml"
        cfg.write_text(self.config_text())
        create_key_file(self.tmp / "secret.key")
        store = await Store.open(self.db_dir / "gw.db", Cipher.from_file(self.tmp / "secret.key"))
        try:
            t = time.time()
            alice = await store.add_subscriber(BareJid.parse(ALICE), t)
            await store.set_account(alice.id, "sms", ALICE_NUMBER, None, t)
            await store.set_account(alice.id, "msn", ALICE_MSN, "alice pw", t)
            sam = await store.add_subscriber(None, t)
            await store.set_account(sam.id, "sms", SAM_NUMBER, None, t)
            await store.set_account(sam.id, "msn", SAM_MSN, "sam pw", t)
        finally:
            await store.close()
        self.gateway = GatewayProcess(cfg, self.tmp / "gateway.log")
        self.gateway.start()
        await self.wait_ready(binds=1)
        for name, handle in BUDDIES.items():
            party = MsnParty(self, self.msn, handle)
            await party.session.login()
            self.buddies[name] = party
        self.alice = XmppParty(self, self.prosody.c2s_port, ALICE, "pw")
        await self.alice.start()
        await self.warm_up()

    async def wait_ready(self, binds: int, timeout: float = 30.0) -> None:
        """Until the gateway is bound to the SMSC, both components are connected and both
        subscribers are signed in to MSN."""
        assert self.gateway is not None and self.msn is not None
        start = self.gateway.log_text().rfind("==== start")
        msn_server = self.msn

        def ready() -> bool:
            text = self.gateway.log_text()[start:] if self.gateway else ""
            return (
                sum(b.status == 0 for b in self.smsc.binds) >= binds
                and self.smsc.bound_count >= 1
                and f"component {SMS} connected" in text
                and f"component {MSN} connected" in text
                and msn_server.ns_of(ALICE_MSN) is not None
                and msn_server.ns_of(SAM_MSN) is not None
            )

        try:
            await self.smsc.wait_until(ready, timeout)
        except TimeoutError:
            raise AssertionError(f"the gateway did not become ready:\n{self.gateway.log_tail()}") from None

    async def warm_up(self) -> None:
        """One message each way before the measured stream, so every route is known to work
        (and sam's MSN contacts are stored, which ``@carol`` needs)."""
        assert self.alice is not None
        self.alice.send("x2m", f"bob\\40escargot.test@{MSN}", f"x2m-99999-{self.tag}", False)
        await self.buddies["bob"].send("m2x", ALICE_MSN, f"m2x-99999-{self.tag}", f"m2x-99999-{self.tag}")
        await self.buddies["carol"].send("m2s", SAM_MSN, f"m2s-99999-{self.tag}", f"m2s-99999-{self.tag}")
        await self._mo("s2m", SAM_NUMBER, "2020", f"@carol s2m-99999-{self.tag}", f"s2m-99999-{self.tag}")
        async with asyncio.timeout(30):
            while not all(f.received for f in self.flows.values() if f.name in ("x2m", "m2x", "m2s", "s2m")):
                await asyncio.sleep(0.05)
        for flow in self.flows.values():
            flow.attempts.clear()
            flow.accepted.clear()
            flow.received.clear()
            flow.arrivals.clear()
            flow.errors.clear()
            flow.rerouted = 0

    async def stop(self) -> None:
        if self.alice is not None:
            with contextlib.suppress(Exception):
                await self.alice.close()
        for party in self.buddies.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(party.session.close(), 5)
        if self.gateway is not None:
            await self.gateway.stop()
        if self.msn is not None:
            await self.msn.stop()
        await self.smsc.stop()
        self.prosody.stop()

    # -- traffic ----------------------------------------------------------------------------

    def token(self, direction: str, i: int) -> str:
        return f"{direction}-{i:05d}-{self.tag}"

    async def _mo(self, flow: str, source: str, dest: str, text: str, token: str) -> None:
        """The SMSC delivers until the gateway answers ESME_ROK (redelivery, as SMSCs do)."""
        while True:
            self.flows[flow].attempt(token)
            try:
                statuses = await self.smsc.inject_mo(source.lstrip("+"), dest.lstrip("+"), text, timeout=5.0)
            except (RuntimeError, ConnectionError, TimeoutError) as exc:
                self.mo_errors[type(exc).__name__] += 1
            else:
                if all(s == 0 for s in statuses):
                    self.flows[flow].accepted.add(token)
                    return
                self.mo_errors["status " + ",".join(hex(s) for s in statuses)] += 1
            await asyncio.sleep(0.3)

    async def stream(self, fault: Fault, action: FaultAction, at: float = 0.3) -> None:
        """Send MESSAGES per direction at RATE each, with ``action`` started at ``at`` of
        the way through; then wait (bounded) until every message is delivered or answered."""
        assert self.alice is not None
        tasks: set[asyncio.Task[None]] = set()
        mo_window = asyncio.Semaphore(MO_WINDOW)

        def spawn(coro: Awaitable[None]) -> None:
            task = asyncio.ensure_future(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def mo(flow: str, source: str, dest: str, text: str, token: str) -> None:
            async with mo_window:
                await self._mo(flow, source, dest, text, token)

        t0 = now()
        fault_task: asyncio.Task[None] | None = None
        for i in range(MESSAGES):
            due = t0 + i / RATE
            if due > now():
                await asyncio.sleep(due - now())
            if fault_task is None and i >= MESSAGES * at:
                fault_task = asyncio.ensure_future(action(self, fault))
            tok = {d: self.token(d, i) for d in DIRECTIONS}
            self.alice.send("x2s", f"+336980{i % 50:05d}@{SMS}", tok["x2s"], True)
            self.alice.send("x2m", f"bob\\40escargot.test@{MSN}", tok["x2m"], True)
            spawn(mo("s2x", f"+336970{i % 50:05d}", ALICE_NUMBER, tok["s2x"], tok["s2x"]))
            buddy = "carol" if i % 2 else "dave"
            spawn(mo("s2m", SAM_NUMBER, "2020", f"@{buddy} {tok['s2m']}", tok["s2m"]))
            spawn(self.buddies["bob"].send("m2x", ALICE_MSN, tok["m2x"], tok["m2x"]))
            spawn(self.buddies[buddy].send("m2s", SAM_MSN, tok["m2s"], tok["m2s"]))
        if fault_task is not None:
            await fault_task
        deadline = now() + DRAIN_LIMIT_S
        while now() < deadline and (tasks or not self.settled()):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # late duplicates
        for task in tasks:
            task.cancel()

    def settled(self) -> bool:
        """Every message delivered or answered (but those lost in flight at a kill), and every
        delivered x2s message receipted."""
        in_flight = self.lost_in_flight(self.killed_at) if self.killed_at is not None else {}
        if not all(f.settled(in_flight.get(d, set())) for d, f in self.flows.items()):
            return False
        x2s, receipts = self.flows["x2s"], self.alice.receipts if self.alice else set()
        return all(t in receipts for t in x2s.sent if x2s.received[t])

    # -- the verdict ------------------------------------------------------------------------

    def report(self, fault: Fault) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for d, f in self.flows.items():
            first = f.first_arrival_after(fault.end)
            last = max((at for at, _ in f.arrivals), default=fault.end)
            rows[d] = {
                "sent": len(f.sent), "received": sum(1 for t in f.sent if f.received[t]),
                "errors_told": sum(1 for t in f.sent if f.errors[t]),
                "lost": len(f.lost), "lies": len(f.lies),
                "duplicates": f.duplicates, "dup_by_resend": f.resend_duplicates,
                "dup_by_gateway": f.gateway_duplicates, "resends": f.resends, "rerouted": f.rerouted,
                "recovery_s": None if first is None else round(first - fault.end, 2),
                "caught_up_s": round(last - fault.end, 2),
            }  # fmt: skip
        return rows

    def print_report(self, fault: Fault, rows: dict[str, Any]) -> None:
        assert self.alice is not None
        lines = [
            f"\n=== fault case {fault.name}: {MESSAGES} messages per direction, fault "
            f"{fault.end - fault.start:.1f}s; {fault.figures}",
            f"{'dir':5}{'sent':>6}{'recv':>6}{'err':>5}{'lost':>5}{'lies':>5}{'dup':>5}"
            f"{'(resend':>8}{'gw)':>5}{'resent':>7}{'rerouted':>9}{'recovery_s':>11}{'caught_up_s':>12}",
        ]
        for d, r in rows.items():
            lines.append(
                f"{d:5}{r['sent']:>6}{r['received']:>6}{r['errors_told']:>5}{r['lost']:>5}{r['lies']:>5}"
                f"{r['duplicates']:>5}{r['dup_by_resend']:>8}{r['dup_by_gateway']:>5}{r['resends']:>7}"
                f"{r['rerouted']:>9}{r['recovery_s'] if r['recovery_s'] is not None else '-':>11}"
                f"{r['caught_up_s']:>12}"
            )
        lines.append(
            f"client errors by condition: {dict(self.alice.error_conditions)}; "
            f"receipts {len(self.alice.receipts)}; "
            f"client reconnects {self.alice.reconnects}; x2m delivered without a receipt "
            f"{len(self.unreceipted('x2m'))}; MO redeliveries {dict(self.mo_errors)}; "
            f"MSN send failures { {n: dict(p.failures) for n, p in self.buddies.items() if p.failures} }; "
            f"stray texts {len(self.stray)} (s2m failure notices {self.s2m_notices}, m2s "
            f"{dict(self.m2s_notices)}) {self.stray[:3]}"
        )
        print("\n".join(lines))

    def unreceipted(self, flow: str) -> list[str]:
        """Messages of ``flow`` (x2s, x2m: sent with a XEP-0184 request) that reached their
        contact although their sender got no receipt."""
        f = self.flows[flow]
        receipts = self.alice.receipts if self.alice else set()
        return [t for t in f.sent if f.received[t] and t not in receipts]

    def lost_in_flight(self, killed_at: float) -> dict[str, set[str]]:
        """Messages lost at a ``kill -9`` that were, at that instant, already handed to a
        connection the gateway held, on a protocol with no acknowledgement from it: the
        component stream (x2s, x2m: the XMPP server had written them to the dead socket)
        and the switchboards (m2x, m2s: the MSN server ACKs what it relays). First sent
        within IN_FLIGHT_S before the kill."""
        return {
            d: {
                t
                for t in self.flows[d].lost
                if killed_at - IN_FLIGHT_S <= self.flows[d].first_sent[t] <= killed_at
            }
            for d in ("x2s", "x2m", "m2x", "m2s")
        }

    def check(
        self,
        fault: Fault,
        *,
        gateway_dup_bound: int = 0,
        receipts: bool = True,
        recovery: bool = True,
    ) -> dict[str, Any]:
        """The end of every case: nothing lost (but what :meth:`lost_in_flight` counts when the
        gateway was killed), no lies, no duplicate the gateway made (beyond
        ``gateway_dup_bound``), x2s receipts for all delivered, recovered within seconds."""
        rows = self.report(fault)
        self.print_report(fault, rows)
        in_flight = self.lost_in_flight(self.killed_at) if self.killed_at is not None else {}
        if self.killed_at is not None:
            print(f"lost in flight at the kill: { {d: len(t) for d, t in in_flight.items()} }")
        problems = []
        for d, f in self.flows.items():
            lost = f.lost - in_flight.get(d, set())
            if d == "s2m" and lost and len(lost) <= self.s2m_notices:
                continue  # each failed one was answered by an SMS to sam's phone
            if d == "m2s" and lost and self.m2s_told(lost):
                continue  # each failed one was answered to its MSN sender
            if lost:
                problems.append(f"{d}: {len(lost)} lost, e.g. {sorted(lost)[:5]}")
            if f.lies:
                problems.append(f"{d}: {len(f.lies)} received although an error was sent, e.g. "
                                f"{sorted(f.lies)[:3]}")  # fmt: skip
        dups = sum(f.gateway_duplicates for f in self.flows.values())
        if dups > gateway_dup_bound:
            problems.append(f"{dups} duplicates made by the gateway (allowed {gateway_dup_bound})")
        if receipts and self.alice is not None:
            missing = self.unreceipted("x2s")
            if missing:
                problems.append(f"x2s: {len(missing)} delivered without a receipt, e.g. {missing[:3]}")
        if recovery:
            for d, r in rows.items():
                if r["recovery_s"] is None or r["recovery_s"] > RECOVERY_LIMIT_S:
                    problems.append(f"{d}: not back to normal within {RECOVERY_LIMIT_S}s ({r['recovery_s']})")
        traces = [self.trace(t) for f in self.flows.values() for t in sorted(f.lost)[:3]]
        traces += [self.trace(t) for f in self.flows.values() for t in f.gateway_duplicated()[:3]]
        assert not problems, (
            "\n".join([*problems, *traces]) + "\n--- gateway log tail ---\n" + self.log_excerpt()
        )
        return rows

    def trace(self, token: str) -> str:
        """Where a lost message was last seen: the MSN server's relays, the SMSC's submits."""
        relays = [(s, r) for s, r, body in self.msn.messages if token.encode() in body] if self.msn else []
        submits = sum(
            1 for sub in self.smsc.submits
            if token in decode_text(sub.pdu.short_message, sub.pdu.data_coding).text
        )  # fmt: skip
        return f"trace {token}: MSN relays (sender, recipients) {relays}; SMSC submits {submits}"

    def log_excerpt(self) -> str:
        text = self.gateway.log_text() if self.gateway else ""
        interesting = [
            ln for ln in text.splitlines() if any(k in ln for k in ("ERROR", "error", "Traceback", "===="))
        ]
        return "\n".join(interesting[-40:])
