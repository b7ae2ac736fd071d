"""XEP-0106 escaping and typed addresses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.addressing import E164, AddressError, BareJid, MsnHandle, escape_node, unescape_node


@settings(derandomize=True, max_examples=300)
@given(st.text(min_size=1, max_size=60))
def test_escape_round_trip(text: str) -> None:
    escaped = escape_node(text)
    assert unescape_node(escaped) == text
    assert not set(escaped) & set(" \"&'/:<>@")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [  # XEP-0106 §5 examples
        ("space cadet", "space\\20cadet"),
        ('call me "ishmael"', "call\\20me\\20\\22ishmael\\22"),
        ("at&t guy", "at\\26t\\20guy"),
        ("d'artagnan", "d\\27artagnan"),
        ("/.fanboy", "\\2f.fanboy"),
        ("::foo::", "\\3a\\3afoo\\3a\\3a"),
        ("<foo>", "\\3cfoo\\3e"),
        ("user@host", "user\\40host"),
        ("c:\\net", "c\\3a\\net"),
        ("c:\\\\net", "c\\3a\\\\net"),
        ("c:\\cool stuff", "c\\3a\\cool\\20stuff"),
        ("c:\\5commas", "c\\3a\\5c5commas"),
    ],
)
def test_xep0106_examples(raw: str, escaped: str) -> None:
    assert escape_node(raw) == escaped
    assert unescape_node(escaped) == raw


def test_bare_jid() -> None:
    assert str(BareJid.parse("Alice@Example.ORG/res")) == "alice@example.org"
    assert str(BareJid.parse("example.org")) == "example.org"
    for bad in ("", "@example.org", "a b@example.org", "alice@"):
        with pytest.raises(AddressError):
            BareJid.parse(bad)


def test_e164() -> None:
    assert str(E164.parse("0698765432", "FR")) == "+33698765432"
    assert str(E164.parse("+33 6 98 76 54 32")) == "+33698765432"
    with pytest.raises(AddressError, match="use \\+33698765432"):
        E164.strict("0698765432", "FR")
    with pytest.raises(AddressError):
        E164.parse("hello", "FR")
    with pytest.raises(AddressError):
        E164.parse("+331", "FR")


def test_msn_handle() -> None:
    assert str(MsnHandle.parse("Bob@Escargot.test")) == "bob@escargot.test"
    with pytest.raises(AddressError):
        MsnHandle.parse("bob")
