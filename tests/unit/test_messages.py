"""The rule for messages from XMPP users to contacts, on every network, as a table."""

from __future__ import annotations

import pytest

from gateway.core.messages import IGNORE, MessagePlan, XmppMessage, has_content, plan_message

SEND = MessagePlan(send=True)
EMPTY = MessagePlan(refuse="empty")
HEADLINE = MessagePlan(refuse="headline")


@pytest.mark.parametrize(
    ("body", "content"),
    [
        (None, False),
        ("", False),
        (" ", False),
        (" \n\t\r ", False),
        ("\u00a0\u3000", False),  # no-break and ideographic spaces
        ("x", True),
        ("  ok  ", True),
        (".", True),
        ("😀", True),
    ],
)
def test_content_is_a_body_with_some_text(body: str | None, content: bool) -> None:
    assert has_content(body) is content


@pytest.mark.parametrize(
    ("message", "plan"),
    [
        # chat and normal (also no type, or an unknown one) are the same: text is sent
        (XmppMessage("chat", "hi"), SEND),
        (XmppMessage("normal", "hi"), SEND),
        (XmppMessage("", "hi"), SEND),
        (XmppMessage("whatever", "hi"), SEND),
        (XmppMessage("chat", "hi", receipt=True, chat_state="active"), SEND),
        # no text: nothing sent; told when a receipt was asked for or nothing else came
        (XmppMessage("chat", ""), EMPTY),
        (XmppMessage("chat", "  \n "), EMPTY),
        (XmppMessage("normal", ""), EMPTY),
        (XmppMessage("chat", "", receipt=True), EMPTY),
        (XmppMessage("chat", None, receipt=True), EMPTY),
        (
            XmppMessage("chat", " ", receipt=True, chat_state="active"),
            MessagePlan(chat_state="active", refuse="empty"),
        ),
        # a chat state alone is a chat state, never an error
        (XmppMessage("chat", None, chat_state="composing"), MessagePlan(chat_state="composing")),
        (XmppMessage("chat", "", chat_state="active"), MessagePlan(chat_state="active")),
        # without a body or a chat state (receipts, markers, extensions): nothing at all
        (XmppMessage("chat", None), IGNORE),
        # headline: a notification, never sent; its sender is told when it had text or asked
        (XmppMessage("headline", "news"), HEADLINE),
        (XmppMessage("headline", None, receipt=True), HEADLINE),
        (XmppMessage("headline", None), IGNORE),
        (XmppMessage("headline", " ", chat_state="active"), IGNORE),
        # never answered: no loops
        (XmppMessage("error", "hi", receipt=True), IGNORE),
        (XmppMessage("groupchat", "hi", receipt=True), IGNORE),
    ],
)
def test_what_a_message_asks_of_the_gateway(message: XmppMessage, plan: MessagePlan) -> None:
    assert plan_message(message) == plan
