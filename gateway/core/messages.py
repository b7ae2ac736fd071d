"""What a message from an XMPP user to a contact asks of the gateway (pure rules).

One rule for every network, SMS and MSN alike, so that nothing is billed or sent that the
user did not write, and an error answers a message only when its sender expects an answer:

- *Content* is a ``<body/>`` with some non-whitespace text. Only content is sent to a network.
- ``chat`` and ``normal`` (also a message without a type or of an unknown type, which read
  as ``normal``, RFC 6121 §5.2.2) are the same: a ``normal`` message is a message someone
  wrote, and some clients and scripts send nothing else.
- ``headline`` is a notification that expects no reply (RFC 6121 §5.2.2): server
  announcements, PubSub/PEP events, feeds. It is never sent to a network (an unasked-for
  billed SMS, or an MSN message its reader cannot answer); when it has content or asks for a
  receipt, its sender is told, once, so that a person who sent one is not left guessing.
- A message without content sends nothing. Its sender is told the message was empty when it
  asked for a receipt (XEP-0184: it waits for one that would never come) or when it has an
  empty ``<body/>`` and no chat state (someone pressed send on nothing). A chat state alone is a
  chat state: relayed, and never answered with an error. Anything else without a body
  (receipts, markers, unknown extensions) is not for the networks and is ignored.
- Errors met while relaying a chat state (a badly written contact address, a sender not
  registered) are not answered: a client sends one per keystroke pause, and the message with
  content that follows gets the error, once.
- ``groupchat`` and ``error`` messages are never answered (no loops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Refusal = Literal["empty", "headline"]


@dataclass(frozen=True, slots=True)
class XmppMessage:
    """What the rules need to know of a ``<message/>`` addressed to a contact."""

    type: str  # the stanza's ``type`` attribute; "" reads as "normal" (RFC 6121 §5.2.2)
    body: str | None  # the text of <body/>, "" for an empty one, None without one
    receipt: bool = False  # it carries a XEP-0184 <request/>
    chat_state: str | None = None  # the XEP-0085 state it carries, if any


@dataclass(frozen=True, slots=True)
class MessagePlan:
    """What to do with one message. Errors raised while sending are answered only when
    ``send`` is set; ``refuse`` names the error to answer instead of sending."""

    send: bool = False  # the body goes to the network
    chat_state: str | None = None  # relay this state; a failure to do so is not answered
    refuse: Refusal | None = None


IGNORE = MessagePlan()


def has_content(body: str | None) -> bool:
    """A body a network can carry: some text that is not only whitespace."""
    return bool(body and body.strip())


def plan_message(message: XmppMessage) -> MessagePlan:
    """The one rule, for every network (see the module's docstring for why)."""
    kind = message.type or "normal"
    if kind in ("error", "groupchat"):
        return IGNORE
    content = has_content(message.body)
    if kind == "headline":
        return MessagePlan(refuse="headline") if content or message.receipt else IGNORE
    if content:
        return MessagePlan(send=True)
    told = message.receipt or (message.body is not None and message.chat_state is None)
    return MessagePlan(chat_state=message.chat_state, refuse="empty" if told else None)
