"""The component's link to the XMPP server: when to try again, and what to tell the operator.

Pure rules (no I/O, randomness passed in). The slixmpp layer reports what happened to
each attempt; :class:`Link` answers with the pause before the next one and the one log
line to write, if any. A line is written when the state changes (connected, lost,
unreachable for another reason, secret refused), never again while it stays the same, so
a server that stays down or keeps refusing the secret does not fill the log, and an
operator still reads, once, what is wrong and when the next try is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FIRST_S = 1.0  # the pause after a first failed attempt (half of it random)
CAP_S = 30.0  # the longest pause between two attempts
LOST_S = 0.5  # a link that was up is tried again this soon (plus up to as much at random)
QUICK_TRIES = 8  # ... and as often for this many failed attempts (a server restarting takes seconds)

State = Literal["starting", "connected", "lost", "unreachable", "refused"]
Level = Literal["info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Note:
    """A line for the log."""

    level: Level
    text: str


@dataclass
class Link:
    """The state of one component's link. ``where`` is ``host:port``; ``jid`` the component's."""

    jid: str
    where: str
    state: State = "starting"
    reason: str = ""
    failures: int = 0  # attempts failed in a row since the link was last up (after the quick ones)
    quick: int = 0  # failed attempts still retried soon, after a link that was up went down

    def pause(self, rand: float) -> float:
        """The pause before the next attempt: capped exponential, "equal jitter" (half of
        it fixed, half random; ``rand`` in [0, 1)) so that many gateways restarted together
        do not knock at the same instant."""
        base = min(CAP_S, FIRST_S * 2.0 ** min(max(self.failures - 1, 0), 16))
        return base / 2 + rand * base / 2

    def connected(self) -> Note | None:
        was = self.state
        self.state, self.reason, self.failures, self.quick = "connected", "", 0, 0
        if was == "connected":
            return None
        return Note("info", f"component {self.jid} connected to the XMPP server at {self.where}")

    def lost(self, reason: str, rand: float) -> tuple[float, Note | None]:
        """The link that was up went down: try again soon (a restarting server is back in a
        moment), and say so once."""
        self.state, self.reason, self.failures, self.quick = "lost", reason, 0, QUICK_TRIES
        delay = LOST_S + rand * LOST_S
        text = (
            f"component {self.jid} lost its connection to the XMPP server at {self.where} "
            f"({reason}); reconnecting in {delay:.1f} s"
        )
        return delay, Note("warning", text)

    def unreachable(self, reason: str, rand: float) -> tuple[float, Note | None]:
        """An attempt failed before a stream was up (refused, timed out, name unknown, the
        stream closed at once)."""
        return self._failed("unreachable", reason, rand)

    def refused(self, condition: str, rand: float) -> tuple[float, Note | None]:
        """The server closed the stream with a stream error at the handshake:
        ``not-authorized`` is a secret the server does not accept."""
        return self._failed("refused", condition, rand)

    def _failed(self, state: State, reason: str, rand: float) -> tuple[float, Note | None]:
        if self.quick > 0:
            self.quick -= 1
            delay = LOST_S + rand * LOST_S
        else:
            self.failures += 1
            delay = self.pause(rand)
        same = self.state == state and self.reason == reason
        self.state, self.reason = state, reason
        if same:
            return delay, None
        return delay, self._note(state, reason, delay)

    def _note(self, state: State, reason: str, delay: float) -> Note:
        retry = f"retrying in {delay:.1f} s (then less often, up to every {CAP_S:.0f} s)"
        if state == "refused" and reason == "not-authorized":
            return Note(
                "error",
                f"the XMPP server at {self.where} refused the secret of component {self.jid} "
                f"(stream error not-authorized): check that the component_secret of {self.jid} in "
                f"the server's configuration is the gateway's secret for it (secret, secret_file or "
                f"PASSERELLE_<NETWORK>_SECRET of the [sms] or [msn] section); {retry}",
            )
        if state == "refused":
            return Note(
                "error",
                f"the XMPP server at {self.where} closed the stream of component {self.jid} "
                f"(stream error {reason}): check that the server has a component named {self.jid}; "
                f"{retry}",
            )
        return Note(
            "warning",
            f"component {self.jid} cannot reach the XMPP server at {self.where}: {reason}; {retry}",
        )
