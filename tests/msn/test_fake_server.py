"""The fake server's own rules, checked with raw command lines (not through MsnSession)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from transports.msn import nexus
from transports.msn.codec import Command, Direction, ErrorReply, Frame, Parser, encode
from transports.msn.fake_directory import Directory
from transports.msn.fake_server import FakeMsnServer
from transports.msn.payload import build_text

from .conftest import USERS


class Raw:
    """A hand-driven client connection: send lines, read frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = Parser(Direction.FROM_SERVER)
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, port: int) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, name: str, trid: int | None, *args: str, payload: bytes | None = None) -> None:
        self.writer.write(encode(name, trid, *args, payload=payload))

    async def expect(self, name: str, timeout: float = 2.0) -> Frame:
        """The next frame named ``name`` (or error code), skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                while self.frames:
                    frame = self.frames.pop(0)
                    if isinstance(frame, Command) and frame.name == name:
                        return frame
                    if isinstance(frame, ErrorReply) and str(frame.code) == name:
                        return frame
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.frames += self.parser.feed(data)

    async def silent(self, duration: float = 0.2) -> list[Frame]:
        try:
            async with asyncio.timeout(duration):
                self.frames += self.parser.feed(await self.reader.read(65536))
        except TimeoutError:
            pass
        frames, self.frames = self.frames, []
        return frames


async def logged_in(server: FakeMsnServer, handle: str, password: str) -> Raw:
    raw = await Raw.connect(server.ns_port)
    raw.send("VER", 1, "MSNP12", "CVR0")
    await raw.expect("VER")
    raw.send("USR", 2, "TWN", "I", handle)
    usr = await raw.expect("USR")
    assert isinstance(usr, Command)
    async with aiohttp.ClientSession() as http:
        ticket = await nexus.get_ticket(http, server.nexus_url, handle, password, usr.arg(2))
    raw.send("USR", 3, "TWN", "S", ticket)
    await raw.expect("USR")
    return raw


async def test_switchboard_rules(server: FakeMsnServer) -> None:
    alice = await logged_in(server, "alice@example.com", "alice pw")
    bob = await logged_in(server, "bob@example.com", "bob pw")
    alice.send("XFR", 4, "SB")
    assert await alice.expect("913") == ErrorReply(913, 4)  # not before the first CHG
    alice.send("CHG", 5, "NLN")
    assert await alice.silent() == []  # no caps: no reply at all
    alice.send("CHG", 6, "NLN", "0")
    await alice.expect("CHG")
    bob.send("CHG", 4, "NLN", "0")
    await bob.expect("CHG")
    alice.send("PNG", None)
    assert await alice.expect("QNG") == Command("QNG", None, ("60",))

    alice.send("XFR", 7, "SB")
    xfr = await alice.expect("XFR")
    assert isinstance(xfr, Command)
    sb = await Raw.connect(server.sb_port)
    sb.send("USR", 1, "alice@example.com", xfr.arg(3))
    await sb.expect("USR")
    sb.send("CAL", 2, "bob@example.com")
    await sb.expect("CAL")
    rng = await bob.expect("RNG")
    assert isinstance(rng, Command)
    bob_sb = await Raw.connect(server.sb_port)
    bob_sb.send("ANS", 1, "bob@example.com", rng.arg(3), rng.arg(0))
    assert await bob_sb.expect("IRO") == Command("IRO", 1, ("1", "1", "alice@example.com", "Alice", "0"))
    await bob_sb.expect("ANS")
    await sb.expect("JOI")

    bob_sb.send("OUT", None)
    await sb.expect("BYE")
    sb.send("MSG", 3, "A", payload=build_text("anyone?"))
    assert await sb.expect("ACK") == Command("ACK", 3)  # ACKed, and dropped
    assert server.messages[-1][1] == ()

    sb.send("MSG", 4, "A", payload=build_text("x" * 1700))
    try:
        await sb.expect("ACK")
        raise AssertionError("the server should have closed the connection")
    except EOFError:
        pass


async def test_blocked_watcher_sees_offline(server: FakeMsnServer) -> None:
    alice = await logged_in(server, "alice@example.com", "alice pw")
    alice.send("CHG", 4, "NLN", "0")
    await alice.expect("CHG")
    bob = await logged_in(server, "bob@example.com", "bob pw")
    bob.send("CHG", 4, "NLN", "0")
    await bob.expect("ILN")
    alice.send("REM", 5, "AL", "bob@example.com")
    await alice.expect("REM")
    alice.send("ADC", 6, "BL", "N=bob@example.com")
    await alice.expect("ADC")
    assert await bob.expect("FLN") == Command("FLN", None, ("alice@example.com",))


async def test_users_from_json(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": USERS}), encoding="utf-8")
    directory = Directory.from_file(path)
    alice = directory.get("ALICE@example.com")
    assert alice is not None and alice.mask_for("dave@example.com") == 8


async def _lst_mask(raw: Raw, trid: int, handle: str) -> int:
    """SYN, then the list mask of ``handle``'s LST line."""
    raw.send("SYN", trid, "0", "0")
    syn = await raw.expect("SYN")
    assert isinstance(syn, Command)
    for _ in range(int(syn.arg(2))):
        lst = await raw.expect("LST")
        assert isinstance(lst, Command)
        if lst.arg(0) == f"N={handle}":
            return int(next(a for a in lst.args[1:] if a.isdigit()))
    raise AssertionError(f"{handle} not listed")


async def test_a_live_reverse_add_stays_on_pl_until_rem_pl(server: FakeMsnServer) -> None:
    """Real servers keep someone who added the user while online on PL (not RL) until the
    user answers with REM PL; every login in between lists them as pending (mask 16)."""
    server.directory.add_user("gus@example.com", "gus pw", "Gus")
    alice = await logged_in(server, "alice@example.com", "alice pw")
    alice.send("CHG", 4, "NLN", "0")
    await alice.expect("CHG")
    gus = await logged_in(server, "gus@example.com", "gus pw")
    gus.send("CHG", 4, "NLN", "0")
    await gus.expect("CHG")
    gus.send("ADC", 5, "FL", "N=alice@example.com", "F=Alice")
    await gus.expect("ADC")
    assert await alice.expect("ADC") == Command("ADC", 0, ("RL", "N=gus@example.com", "F=Gus"))
    record = server.directory.get("alice@example.com")
    assert record is not None and record.mask_for("gus@example.com") == 16  # PL, RL hidden

    again = await logged_in(server, "alice@example.com", "alice pw")
    assert await _lst_mask(again, 4, "gus@example.com") == 16  # still asked at every login
    again.send("ADC", 5, "AL", "N=gus@example.com")
    await again.expect("ADC")
    again.send("REM", 6, "PL", "gus@example.com")
    await again.expect("REM")
    assert record.mask_for("gus@example.com") == 2 | 8  # AL, and RL now that PL is answered
    third = await logged_in(server, "alice@example.com", "alice pw")
    assert await _lst_mask(third, 4, "gus@example.com") == 2 | 8


async def test_any_participant_can_call_a_third_one_in(server: FakeMsnServer) -> None:
    """Multi-party switchboards: bob calls carol into alice's session; everyone gets JOI,
    carol one IRO per participant, and a MSG goes to every other participant."""
    people = {}
    for name in ("alice", "bob", "carol"):
        ns = await logged_in(server, f"{name}@example.com", f"{name} pw")
        ns.send("CHG", 4, "NLN", "0")
        await ns.expect("CHG")
        people[name] = ns
    people["alice"].send("XFR", 5, "SB")
    xfr = await people["alice"].expect("XFR")
    assert isinstance(xfr, Command)
    alice_sb = await Raw.connect(server.sb_port)
    alice_sb.send("USR", 1, "alice@example.com", xfr.arg(3))
    await alice_sb.expect("USR")
    alice_sb.send("CAL", 2, "bob@example.com")
    await alice_sb.expect("CAL")

    async def answer(name: str) -> Raw:
        rng = await people[name].expect("RNG")
        assert isinstance(rng, Command)
        sb = await Raw.connect(server.sb_port)
        sb.send("ANS", 1, f"{name}@example.com", rng.arg(3), rng.arg(0))
        return sb

    bob_sb = await answer("bob")
    await bob_sb.expect("ANS")
    await alice_sb.expect("JOI")
    bob_sb.send("CAL", 2, "carol@example.com")
    await bob_sb.expect("CAL")
    carol_sb = await answer("carol")
    iro = [await carol_sb.expect("IRO"), await carol_sb.expect("IRO")]
    assert {f.arg(2) for f in iro if isinstance(f, Command)} == {"alice@example.com", "bob@example.com"}
    await carol_sb.expect("ANS")
    for sb in (alice_sb, bob_sb):
        joi = await sb.expect("JOI")
        assert isinstance(joi, Command) and joi.arg(0) == "carol@example.com"
    alice_sb.send("MSG", 3, "A", payload=build_text("for bob only?"))
    await alice_sb.expect("ACK")
    for sb in (bob_sb, carol_sb):
        msg = await sb.expect("MSG")
        assert isinstance(msg, Command) and msg.arg(0) == "alice@example.com"
    assert set(server.messages[-1][1]) == {"bob@example.com", "carol@example.com"}
