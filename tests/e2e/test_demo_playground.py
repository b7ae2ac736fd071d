"""``make demo`` after the story: the playground played from the terminal (stdin), where
the operator plays the phones and the MSN users, and sees what each received."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import IO

import pytest

from gateway.devtools.demo import (
    ALICE_PHONE,
    BOB_MSN,
    BOB_PHONE,
    MsnLine,
    PhoneLine,
    Phones,
    Say,
    Sms,
    parse_line,
)
from transports.sms.fake_smsc import RecordedSubmit
from transports.sms.mt import build_submits

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


class SubmitsOnly:
    """What :class:`Phones` reads of the fake SMSC: the submit_sm it accepted."""

    def __init__(self) -> None:
        self.submits: list[RecordedSubmit] = []

    def submit(self, source: str, destination: str, text: str, ref: int) -> None:
        for pdu in build_submits(source, destination, text, ref=ref, max_parts=6):
            self.submits.append(RecordedSubmit(pdu, f"id{len(self.submits)}", 0))


def test_a_phone_shows_a_long_sms_as_one_text_and_numbers_in_one_form() -> None:
    smsc = SubmitsOnly()
    phones = Phones(smsc)
    long_text = "Bob: " + "é " * 100  # two GSM-7 parts, each behind a concatenation header
    smsc.submit("2020", ALICE_PHONE, long_text, ref=7)
    smsc.submit(ALICE_PHONE, BOB_PHONE, "ok", ref=8)
    smsc.submit(ALICE_PHONE, BOB_PHONE, "ok", ref=9)  # the same text again is a new SMS
    assert len(smsc.submits) == 4
    assert phones.poll() == [
        Sms("2020", ALICE_PHONE, long_text),
        Sms(ALICE_PHONE, BOB_PHONE, "ok"),
        Sms(ALICE_PHONE, BOB_PHONE, "ok"),
    ]
    assert not phones.pending


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


# ---- the demo run the ways the README says: any stdin, to its end, or stopped by a signal

LONG_TEXT = " ".join(f"word{i}" for i in range(40))  # 233 characters: two SMS parts
SCRIPT = f"msn bob {LONG_TEXT}\nsms @bob got it\nsms /who\nsms /who\n"


async def run_demo(stdin: int | IO[bytes], script: bytes | None = None) -> tuple[int, list[str], str]:
    """Run the whole demo (story and playground) with ``stdin``; its exit code, stdout
    lines and stderr. ``script`` is written to a pipe at once and the pipe closed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.devtools.demo",
        stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(200):
            out, err = await proc.communicate(script)
    finally:
        await kill_demo(proc)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


async def kill_demo(proc: asyncio.subprocess.Process) -> None:
    """A demo still running when its test failed goes, with its Prosody."""
    if proc.returncode is None:
        prosody = demo_prosody(proc.pid)
        proc.kill()
        await proc.wait()
        if prosody is not None:
            os.kill(prosody[0], signal.SIGKILL)


def demo_prosody(demo_pid: int) -> tuple[int, Path] | None:
    """The Prosody the demo ``demo_pid`` started (its child process): pid and the demo's
    temp directory (Prosody's config is ``<dir>/prosody/prosody.cfg.lua``)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == demo_pid and any(a.endswith("prosody.cfg.lua") for a in args):
            config = Path(next(a for a in args if a.endswith("prosody.cfg.lua")))
            return int(proc.name), config.parent.parent
    return None


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def assert_no_traceback(code: int, lines: list[str], err: str) -> None:
    everything = "\n".join(lines) + err
    assert "Traceback" not in everything, everything
    assert code == 0, everything


def assert_ended_cleanly(lines: list[str]) -> None:
    assert lines[-2:-1] == ["End of input: stopping."], lines[-5:]
    assert re.fullmatch(r"Stopped; /\S+ removed\.", lines[-1])


def assert_story_says_what_happens(lines: list[str]) -> None:
    """/who's answer comes after the text that asked for it; the away-grace pause is
    announced; every phone number is written +E.164 (short codes as they are)."""
    who = [i for i, line in enumerate(lines) if "sends SMS to 2020: /who" in line]
    assert who and lines[who[0]].startswith(f"alice's phone {ALICE_PHONE} |"), "\n".join(lines)
    assert lines[who[0] + 1].endswith("SMS from 2020: Online: Bob"), lines[who[0] : who[0] + 2]
    pause = [i for i, line in enumerate(lines) if "a pause of up to" in line and "away" in line]
    assert pause, "\n".join(lines)
    assert lines[pause[0] + 1].endswith("SMS from 2020: Bob: Are you coming tonight?")
    assert not re.findall(r"(?<![+\d])33\d{9}", "\n".join(lines))  # no number without its +


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["file", "pipe"])
async def test_a_script_on_stdin_is_played_to_the_end_and_answered(kind: str, tmp_path: Path) -> None:
    if kind == "file":
        script = tmp_path / "script.txt"
        script.write_text(SCRIPT)
        with script.open("rb") as stdin:
            code, lines, err = await run_demo(stdin)
    else:
        code, lines, err = await run_demo(asyncio.subprocess.PIPE, SCRIPT.encode())
    assert_no_traceback(code, lines, err)
    # Alice is away: Bob's long MSN message reaches her phone as two SMS parts, shown as one
    assert f"[phone {ALICE_PHONE}] SMS from 2020: Bob: {LONG_TEXT}" in lines, "\n".join(lines)
    assert f"[msn {BOB_MSN}] message from alice@escargot.test: got it" in lines
    played = lines[lines.index(f"> msn bob {LONG_TEXT}") :]  # each line, then its replies
    assert played[1] == f"[phone {ALICE_PHONE}] SMS from 2020: Bob: {LONG_TEXT}", played
    assert played[2:4] == ["> sms @bob got it", f"[msn {BOB_MSN}] message from alice@escargot.test: got it"]
    asked = [i for i, line in enumerate(played) if line == "> sms /who"]
    assert len(asked) == 2, played
    for i in asked:  # the same command twice is answered twice
        assert played[i + 1].startswith(f"[phone {ALICE_PHONE}] SMS from 2020: Online: "), played[i:]
    assert_ended_cleanly(lines)
    assert_story_says_what_happens(lines)


@pytest.mark.timeout(240)
async def test_the_demo_with_nothing_on_stdin_plays_the_story_and_exits() -> None:
    code, lines, err = await run_demo(asyncio.subprocess.DEVNULL)
    assert_no_traceback(code, lines, err)
    assert any("SMS from 2020: Online: Bob" in line for line in lines)
    assert_ended_cleanly(lines)


@pytest.mark.timeout(240)
async def test_sigterm_stops_the_demo_its_prosody_and_removes_its_temp_dir() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.devtools.demo",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    demo = Demo(proc)
    prosody = None
    try:
        await demo.until("msn <buddy> <text>", timeout=120)  # the playground is up; stdin stays open
        prosody = demo_prosody(proc.pid)
        assert prosody is not None, "no Prosody child of the demo found"
        pid, directory = prosody
        assert directory.name.startswith("passerelle-demo-") and directory.is_dir()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        everything = "\n".join(demo.lines) + out.decode() + err.decode()
        assert not alive(pid), "the demo's Prosody is still running"
        assert not directory.exists()
        assert "Traceback" not in everything, everything
        assert proc.returncode == 0, everything
    finally:
        await kill_demo(proc)
        if prosody is not None:  # not left behind when the test fails
            if alive(prosody[0]):
                os.kill(prosody[0], signal.SIGKILL)
            shutil.rmtree(prosody[1], ignore_errors=True)
