"""Convergence rules: one buddy list, and the subscriber reachable by SMS (pure).

What a subscriber on a plain phone texts to the service number, and what the gateway
texts back, as plain functions of typed values. Time (``now``) is passed in.

SMS commands (case-insensitive):

=================  ===================================================================
``text``           a reply to the buddy who wrote most recently (within the window)
``@name text``     a message to the buddy whose alias, friendly name or handle matches
``/who``           the buddies online now
``/status s [t]``  set the MSN status: online, away or busy, with an optional text
``/help``          these commands
``STOP`` / ``START`` stop / resume forwarding MSN messages by SMS
=================  ===================================================================
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from gateway.core.model import Presence, Show

GSM7_SAFE = re.compile(r"[^A-Za-z0-9._\-]")


@dataclass(frozen=True, slots=True)
class Buddy:
    """An MSN buddy as the subscriber's phone sees it."""

    handle: str
    friendly_name: str = ""
    alias: str = ""
    online: bool = False
    phone: str = ""  # a linked E.164 number, if known

    @property
    def short_name(self) -> str:
        return short_name(self)


def short_name(buddy: Buddy) -> str:
    """The alias if set, else the first word of the friendly name made GSM-7-safe, else
    the handle's local part: the name a forward is prefixed with and ``@name`` accepts.

    A friendly name that is an address (MSN's default is the handle itself, sometimes still
    URL-encoded) gives its local part, not the address with its ``@`` dropped."""
    local = buddy.handle.split("@")[0]
    if buddy.alias.strip():
        return _safe(_word(buddy.alias)) or local
    name = buddy.friendly_name.strip()
    if not name or unquote(name).lower() == buddy.handle.lower():
        return local
    return _safe(_word(name)) or local


def _word(name: str) -> str:
    """The first word of ``name`` (not blank); when that word is an address, its local part."""
    first = name.split()[0]
    address = unquote(first)
    return address.split("@")[0] if "@" in address else first


def _safe(word: str) -> str:
    ascii_word = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return GSM7_SAFE.sub("", ascii_word)


# -- commands from the phone ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


@dataclass(frozen=True, slots=True)
class To:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Who:
    pass


@dataclass(frozen=True, slots=True)
class SetStatus:
    show: Show
    text: str


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class BadCommand:
    answer: str


Command = Reply | To | Who | SetStatus | Help | Stop | Start | BadCommand

_STATUSES = {"online": Show.AVAILABLE, "away": Show.AWAY, "busy": Show.DND}
HELP_TEXT = (
    "Reply to answer the last person who wrote. @name text: write to a buddy. /who: who is online. "
    "/status online|away|busy [text]. STOP: no more forwards, START: resume."
)


def parse_command(text: str) -> Command:
    body = text.strip()
    word = body.split(maxsplit=1)[0].lower() if body else ""
    if word == "stop" and len(body.split()) == 1:
        return Stop()
    if word == "start" and len(body.split()) == 1:
        return Start()
    if body.startswith("@"):
        name, _, rest = body[1:].partition(" ")
        if not name:
            return BadCommand("Write @name followed by your message, e.g. @bob see you at 8.")
        if not rest.strip():
            return BadCommand(f"Nothing to send to {name}: write @{name} followed by your message.")
        return To(name, rest.strip())
    if body.startswith("/"):
        args = body.split(maxsplit=2)
        match word:
            case "/who":
                return Who()
            case "/help":
                return Help()
            case "/status":
                if len(args) < 2 or args[1].lower() not in _STATUSES:
                    return BadCommand(
                        "Use /status online, /status away or /status busy, optionally with a text."
                    )
                return SetStatus(_STATUSES[args[1].lower()], args[2] if len(args) > 2 else "")
            case _:
                return BadCommand(f"Unknown command {word}. {HELP_TEXT}")
    if not body:
        return BadCommand(HELP_TEXT)
    return Reply(body)


def status_set_text(show: Show, text: str) -> str:
    """The confirmation of ``/status``, in the words the phone used."""
    word = next((w for w, s in _STATUSES.items() if s is show), show.value)
    return f"MSN status set to {word}" + (f": {text}." if text else ".")


def match_buddy(name: str, buddies: Iterable[Buddy]) -> tuple[Buddy | None, list[Buddy]]:
    """(the buddy, []) for one match, else (None, candidates): several, or close ones."""
    wanted = name.lower()
    pool = list(buddies)
    exact = [
        b
        for b in pool
        if wanted in (b.short_name.lower(), b.alias.lower(), b.handle.lower(), b.handle.split("@")[0].lower())
    ]
    if len(exact) == 1:
        return exact[0], []
    if exact:
        return None, exact
    prefix = [
        b
        for b in pool
        if b.short_name.lower().startswith(wanted)
        or b.handle.lower().startswith(wanted)
        or wanted in b.friendly_name.lower()
    ]
    if len(prefix) == 1:
        return prefix[0], []
    return None, prefix


def candidates_text(name: str, candidates: Sequence[Buddy]) -> str:
    if not candidates:
        return f"No buddy called {name}. /who lists who is online."
    listed = ", ".join(f"@{b.short_name} ({b.handle})" for b in candidates[:5])
    return f"{name} could be: {listed}. Write again with one of these names."


def who_text(buddies: Iterable[Buddy]) -> str:
    online = sorted(b.short_name for b in buddies if b.online)
    return "Online: " + ", ".join(online) if online else "No buddy is online right now."


# -- forwards to the phone --------------------------------------------------------------------


def forward_text(buddy: Buddy, body: str, max_chars: int) -> str:
    """``bob: are you coming tonight?``, cut with a marker when longer than ``max_chars``."""
    text = f"{buddy.short_name}: {body}"
    if len(text) <= max_chars:
        return text
    marker = " [cut: too long for SMS]"
    return text[: max(0, max_chars - len(marker))].rstrip() + marker


# -- what the MSN sender is told ------------------------------------------------------------

STOPPED_WHY = "I have stopped SMS forwarding."
LOOP_WHY = "Too many messages in a minute."
UNDELIVERED_WHY = "The SMS network could not deliver it to my phone."


def waiting_text() -> str:
    """Over the subscriber's SMS limit: the forward waits for the limit to reset."""
    return "(automatic reply) I am away; I will get your message later."


def not_forwarded_text(why: str, kept: bool) -> str:
    """A message that will never reach the subscriber's phone, and ``why``. ``kept``: it
    waits for their XMPP account; else (an SMS-only subscriber) it is lost."""
    then = (
        "I will read it when I am back online."
        if kept
        else "It was not delivered; please send it again later."
    )
    return f"(automatic reply) Your message could not be delivered to me by SMS: {why} {then}"


# -- routes --------------------------------------------------------------------------------------

Route = Literal["msn", "sms", "none"]


def route_to_contact(msn_online: bool, phone: str, prefer: Literal["msn", "sms"]) -> Route:
    """A message from the subscriber to a (possibly linked) buddy."""
    if prefer == "sms" and phone:
        return "sms"
    if msn_online:
        return "msn"
    return "sms" if phone else "none"


def merged_presence(msn: Presence, phone: str) -> Presence:
    """A linked buddy's presence: MSN's while online there, else reachable by SMS."""
    if msn.online or not phone:
        return msn
    return Presence(Show.AWAY, "reachable by SMS")


def reply_target(last_from: str | None, last_at: float | None, now: float, window: float) -> str | None:
    """The buddy a plain SMS reply goes to, if the last message is recent enough."""
    if last_from is None or last_at is None or now - last_at > window:
        return None
    return last_from


def outside_window_text() -> str:
    return "Nobody wrote to you recently. Write @name text to message a buddy; /who lists who is online."


# -- loops ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breaker:
    """Stops auto-responder ping-pong: at most ``limit`` forwards per ``window`` seconds
    from one buddy to the phone while the phone is answering automatically."""

    limit: int = 10
    window: float = 60.0

    def allows(self, recent: Sequence[float], now: float) -> bool:
        return sum(1 for t in recent if now - t < self.window) < self.limit
