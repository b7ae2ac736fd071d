"""When may a deliver_sm be the SMSC's redelivery of one already taken? Pure: times passed in.

An SMSC sends a deliver_sm again only when it did not get our ``deliver_sm_resp`` in
time. That happens in two ways, and in no other:

* **on the same bind**, when its response timer ran out before it read our answer (our
  answer was late, or the link or the SMSC was slow): the copy comes at least that timer
  after the first, which no SMSC sets under :data:`RESEND_FLOOR_S`;
* **after a rebind**, when the bind was lost before the SMSC read our answer (or before we
  wrote it): TCP does not say which bytes the other side read, so any answer not yet
  *confirmed* when its bind ended may be missing.

An answer is **confirmed** when the SMSC answers a request we wrote after it (the ESME
sends an ``enquire_link`` right after answering, and every ``submit_sm`` counts too): the
SMSC reads in order, so it read our answer first. It is **confirmed in time** when that
confirmation came less than :data:`RESEND_FLOOR_S` after the deliver_sm arrived: the SMSC
read our answer before any timer of its own could run out, so it never sends that PDU again.

So a message with the same content as one taken (see :func:`may_be_redelivery`) is dropped
only when the first one's answer was not confirmed in time and the copy comes either after
a rebind, or on the same bind at least :data:`RESEND_FLOOR_S` after the first; and only
within the duplicate window. A person who sends the same text again is taken as a new
message, except in the one case no SMSC tells apart: the same text again, after a lost bind
(or a gateway crash), when the first one's answer was not confirmed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

RESEND_FLOOR_S = 2.0
"""No SMSC resends a deliver_sm sooner than this after sending it. SMPP 3.4 leaves the
response timer to the SMSC; a timer this short would resend on ordinary network jitter.
It is also the time an answer has to be confirmed in."""


@dataclass(slots=True)
class Arrival:
    """One deliver_sm as the ESME received it and answered it (ESME clock, seconds)."""

    bind: int  # which bind of this process it came on (0: none)
    received: float
    answered: float | None = None  # when its deliver_sm_resp was written
    serial: int = 0  # the answer's rank among those written on its bind
    confirmed: float | None = None  # when the SMSC showed it had read the answer

    @property
    def confirmed_in_time(self) -> bool:
        """The SMSC read our answer before any response timer of its own could run out."""
        return self.confirmed is not None and self.confirmed - self.received < RESEND_FLOOR_S


def may_be_redelivery(first: Arrival, copy: Arrival) -> bool:
    """Whether ``copy``, with the same content as ``first`` (which was taken, and is the
    latest such message taken), may be the SMSC sending ``first`` again (see the module
    docstring). The caller applies the duplicate window."""
    if first.confirmed_in_time:
        return False
    if copy.bind != first.bind:
        return True  # a rebind since: the answer may have been lost with the first bind
    return copy.received - first.received >= RESEND_FLOOR_S


class AnswerLedger:
    """The ESME's record of the deliver_sm it answered on its current bind and which
    answers the SMSC has confirmed. Answers on an earlier bind stay unconfirmed for good."""

    def __init__(self) -> None:
        self.bind = 0
        self._written = 0
        self._unconfirmed: deque[Arrival] = deque()

    def new_bind(self) -> int:
        """A bind succeeded: its number."""
        self.bind += 1
        self._written = 0
        self._unconfirmed.clear()
        return self.bind

    def arrived(self, bind: int, now: float) -> Arrival:
        return Arrival(bind, now)

    def answered(self, arrival: Arrival, now: float) -> None:
        """``arrival``'s deliver_sm_resp was written to its bind."""
        arrival.answered = now
        if arrival.bind != self.bind:
            return
        self._written += 1
        arrival.serial = self._written
        self._unconfirmed.append(arrival)

    def mark(self, bind: int) -> int:
        """Taken just before writing a request on ``bind``: the answers written before it."""
        return self._written if bind == self.bind else 0

    def confirm(self, bind: int, mark: int, now: float) -> None:
        """The SMSC answered a request written on ``bind`` at ``mark``: it read every
        answer written before that request."""
        if bind != self.bind:
            return
        while self._unconfirmed and self._unconfirmed[0].serial <= mark:
            self._unconfirmed.popleft().confirmed = now
