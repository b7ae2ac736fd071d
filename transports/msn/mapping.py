"""MSN ↔ XMPP translation rules (pure: no I/O, no clock, no session state).

The tables of the design's mapping document, written as small functions so each row is a
unit test: list masks → roster subscription, MSN status → contact presence, the
subscriber's presence → MSN status, subscription stanzas → list operations, personal
message ↔ status text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.core.model import OFFLINE, Presence, Show
from transports.msn.status import ListBit, Status

PSM_MAX_CHARS = 129  # what MSN Messenger 7 lets a user type

Subscription = Literal["none", "to", "from", "both"]

# The list bits as plain ints: these rules run once per contact at every sync (thousands per
# login), and arithmetic on the IntFlag members builds a new enum value each time.
_FL, _AL, _BL, _RL, _PL = (int(b) for b in (ListBit.FL, ListBit.AL, ListBit.BL, ListBit.RL, ListBit.PL))


# -- contact lists ↔ roster subscription ----------------------------------------------------


def subscription_for(mask: int) -> Subscription:
    """The roster ``subscription`` for a list mask (the stricter table: AL and not BL count).

    FL is "I see them" (``to``); RL with AL and without BL is "they see me" (``from``).
    PL is a question, not a state: it never changes the answer.
    """
    sees_them = bool(mask & _FL)
    sees_me = (mask & (_RL | _AL | _BL)) == (_RL | _AL)  # RL and AL, not BL
    if sees_them and sees_me:
        return "both"
    if sees_them:
        return "to"
    if sees_me:
        return "from"
    return "none"


def in_roster(mask: int) -> bool:
    """Whether a contact belongs in the subscriber's roster: on one of the subscriber's own
    lists (FL, AL, BL). Someone only asking (RL or PL alone) gets a ``subscribe`` instead,
    and shows up once the subscriber answers it."""
    return bool(mask & (_FL | _AL | _BL))


def asks_to_subscribe(mask: int) -> bool:
    """PL at login: they added the subscriber and wait for an answer → XMPP ``subscribe``."""
    return bool(mask & _PL)


def live_reverse_add(mask: int) -> int:
    """The mask after a live ``ADC 0 RL``: the server keeps the contact on PL (and lists
    them so at every later login) until the subscriber answers, so accepting must be
    ``ADC AL`` *and* ``REM PL``. Recording RL alone made the REM look like a no-op."""
    if mask & _RL and not mask & _PL:
        mask = (mask & ~_RL) | _PL
    return mask


def reverse_add_asks(mask: int) -> bool:
    """A live ``ADC 0 RL``: ask the subscriber unless they already decided (AL or BL)."""
    return not mask & (ListBit.AL | ListBit.BL)


# -- XMPP subscription stanzas → list operations ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ListOp:
    """One ``ADC`` (``add``) or ``REM`` on one list."""

    add: bool
    lst: ListBit


_RULES: dict[str, tuple[ListOp, ...]] = {
    # add to FL (and AL, unless blocked: subscribing is not unblocking)
    "subscribe": (ListOp(True, ListBit.FL), ListOp(True, ListBit.AL)),
    # accept: off PL and BL, onto AL (REM BL first: the server refuses AL while on BL)
    "subscribed": (ListOp(False, ListBit.PL), ListOp(False, ListBit.BL), ListOp(True, ListBit.AL)),
    "unsubscribe": (ListOp(False, ListBit.FL),),
    # refuse or revoke: off AL and PL, onto BL
    "unsubscribed": (ListOp(False, ListBit.AL), ListOp(False, ListBit.PL), ListOp(True, ListBit.BL)),
}


def list_operations(kind: str, mask: int) -> tuple[ListOp, ...]:
    """The ADC/REM to send for a subscription stanza (``subscribe``, ``subscribed``,
    ``unsubscribe``, ``unsubscribed``; anything else: none), given the contact's mask.

    Operations that would change nothing are left out (the server answers them with 215 or
    216), and so is AL for a blocked contact on ``subscribe``.
    """
    lists = ListBit(mask & 31)
    ops = []
    for op in _RULES.get(kind, ()):
        if kind == "subscribe" and op.lst is ListBit.AL and lists & ListBit.BL:
            continue
        if op.add != bool(lists & op.lst):
            ops.append(op)
            lists = lists | op.lst if op.add else lists & ~op.lst
    return tuple(ops)


def mask_after(mask: int, ops: tuple[ListOp, ...]) -> int:
    """The mask once ``ops`` succeeded. Off PL means onto RL: they asked, so they have the
    subscriber on their FL, and the server lists them with RL from then on."""
    lists = ListBit(mask & 31)
    for op in ops:
        lists = lists | op.lst if op.add else lists & ~op.lst
        if op == ListOp(False, ListBit.PL):
            lists |= ListBit.RL
    return int(lists)


def answer_subscribe_at_once(mask: int) -> bool:
    """``subscribe`` to a contact already on FL is answered ``subscribed`` without a command."""
    return bool(mask & ListBit.FL)


# -- group conversations --------------------------------------------------------------------


def group_marked(text: str, others: tuple[str, ...]) -> str:
    """A line said in a multi-party switchboard, as the subscriber sees it (in XMPP and in
    an SMS forward): ``[with carol] text``, naming the other participants by the part of
    their address before ``@``. Until the gateway has group conversations this keeps such a
    line from passing for a one-to-one message from its writer."""
    if not others:
        return text
    names = ", ".join(handle.split("@", 1)[0] for handle in others)
    return f"[with {names}] {text}"


# -- presence -----------------------------------------------------------------------------

_SHOW: dict[Status, Show] = {
    Status.NLN: Show.AVAILABLE,
    Status.BSY: Show.DND,
    Status.PHN: Show.DND,
    Status.AWY: Show.AWAY,
    Status.BRB: Show.AWAY,
    Status.LUN: Show.AWAY,
    Status.IDL: Show.AWAY,
}

# What ``show`` cannot say, said in the status text when the contact has no personal message.
_LABEL: dict[Status, str] = {
    Status.PHN: "On the phone",
    Status.BRB: "Be right back",
    Status.LUN: "Out to lunch",
    Status.IDL: "Idle",
}


def msn_to_xmpp_presence(status: Status, psm: str = "") -> Presence:
    """A contact's MSN status (and personal message) as the presence the subscriber sees."""
    show = _SHOW.get(status)
    if show is None:  # HDN, FLN
        return OFFLINE
    return Presence(show, psm_to_status_text(psm) or _LABEL.get(status, ""))


def xmpp_to_msn_status(presence: Presence) -> Status | None:
    """The subscriber's aggregate XMPP presence as an MSN status; None when unavailable."""
    match presence.show:
        case Show.AVAILABLE | Show.CHAT:
            return Status.NLN
        case Show.AWAY | Show.XA:
            return Status.AWY
        case Show.DND:
            return Status.BSY
        case Show.UNAVAILABLE:
            return None


def status_text_to_psm(text: str) -> str:
    """XMPP status text → MSN personal message: one line, at most ``PSM_MAX_CHARS``."""
    return " ".join(text.split())[:PSM_MAX_CHARS]


def psm_to_status_text(psm: str) -> str:
    """MSN personal message → XMPP status text."""
    return psm.strip()
