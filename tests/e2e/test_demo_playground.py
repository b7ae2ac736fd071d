"""``make demo`` after the story: the playground played from the terminal (stdin), where
the operator plays the phones and the MSN users, and sees what each received."""

from __future__ import annotations

import asyncio
import sys

import pytest

from gateway.devtools.demo import ALICE_PHONE, BOB_MSN, BOB_PHONE, MsnLine, PhoneLine, Say, parse_line

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("see you at 8", PhoneLine(BOB_PHONE, ALICE_PHONE, "see you at 8")),
        ("sms @bob on my way", PhoneLine(ALICE_PHONE, "2020", "@bob on my way")),
        ("SMS /who", PhoneLine(ALICE_PHONE, "2020", "/who")),
        ("msn bob are you there?", MsnLine(BOB_MSN, "are you there?")),
        ("msn Carol@escargot.test hi", MsnLine("carol@escargot.test", "hi")),
        ("   ", None),
    ],
)
def test_playground_lines(line: str, parsed: object) -> None:
    assert parse_line(line) == parsed


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("msn zed hi", "No MSN user 'zed' here"),
        ("msn alice hi", "No MSN user 'alice' here"),  # Alice is the subscriber, not a player
        ("msn bob", "Usage: msn <buddy> <text>"),
        ("sms", "Usage: sms <text>"),
        ("help", "msn <buddy> <text>"),
    ],
)
def test_playground_answers(line: str, answer: str) -> None:
    said = parse_line(line)
    assert isinstance(said, Say) and answer in said.text


class Demo:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def until(self, wanted: str, timeout: float = 60) -> None:
        """Read the demo's output until a line containing ``wanted``."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while not any(wanted in line for line in self.lines):
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"the demo ended before {wanted!r}:\n" + "\n".join(self.lines))
                self.lines.append(raw.decode().rstrip("\n"))

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")


@pytest.mark.timeout(240)
async def test_the_playground_plays_msn_users_and_phones_from_the_terminal() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.devtools.demo",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    demo = Demo(proc)
    try:
        await demo.until("msn <buddy> <text>", timeout=120)  # the story is over, the prompt is up
        # Alice's XMPP client left with the story: an MSN message from Bob reaches her phone
        demo.type("msn bob Hi Alice, Bob on MSN here")
        await demo.until(f"[phone {ALICE_PHONE}] SMS from 2020: Bob: Hi Alice, Bob on MSN here")
        # her phone answers Bob by name; Bob (played here) receives it on MSN
        demo.type("sms @bob see you at 8")
        await demo.until(f"[msn {BOB_MSN}] message from alice@escargot.test: see you at 8")
        # Carol writes; a plain SMS reply goes to her, the last who wrote
        demo.type("msn carol lunch tomorrow?")
        await demo.until(f"[phone {ALICE_PHONE}] SMS from 2020: Carol: lunch tomorrow?")
        demo.type("sms yes!")
        await demo.until("[msn carol@escargot.test] message from alice@escargot.test: yes!")
        demo.type("msn zed hi")
        await demo.until("No MSN user 'zed' here")
        assert proc.stdin is not None
        proc.stdin.close()  # the end of the input stops everything, like Ctrl-C
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
