"""Typed addresses, parsed once at the edge and passed around as values.

Worked examples::

    >>> escape_node("bob@escargot.test")
    'bob\\\\40escargot.test'
    >>> unescape_node("bob\\\\40escargot.test")
    'bob@escargot.test'
    >>> BareJid.parse("Alice@Example.org/phone")
    BareJid(local='alice', domain='example.org')

XEP-0106 escaping lets any legacy identifier (an MSN handle holds an ``@``) live in
the localpart of a contact JID: ``bob\\40escargot.test@msn.example.org``.
"""

from __future__ import annotations

from dataclasses import dataclass

# XEP-0106 §4.2: the characters that cannot appear in a localpart, and their escapes.
_ESCAPES: dict[str, str] = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}
_UNESCAPES: dict[str, str] = {v: k for k, v in _ESCAPES.items()}
_MAX_PART = 1023  # RFC 7622: each part is at most 1023 octets


class AddressError(ValueError):
    """An address that cannot be parsed; the message says why, for the user."""


def escape_node(text: str) -> str:
    """Escape ``text`` for use as a JID localpart (XEP-0106).

    A backslash is only escaped when it would otherwise be read as the start of an
    escape sequence, as the XEP requires; that keeps the round trip exact.
    """
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == "\\":
            if text[i + 1 : i + 3].lower() in {e[1:] for e in _ESCAPES.values()}:
                out.append("\\5c")
            else:
                out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            out.append(ch)
    return "".join(out)


def unescape_node(node: str) -> str:
    """Reverse :func:`escape_node`."""
    out: list[str] = []
    i = 0
    while i < len(node):
        seq = node[i : i + 3].lower()
        if node[i] == "\\" and seq in _UNESCAPES:
            out.append(_UNESCAPES[seq])
            i += 3
        else:
            out.append(node[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class BareJid:
    """A bare JID (``local@domain``), lower-cased, without resource."""

    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> BareJid:
        """Parse ``text`` (a full JID is accepted; its resource is dropped)."""
        text = text.strip()
        if not text:
            raise AddressError("the address is empty")
        head = text.split("/", 1)[0]
        if "@" in head:
            local, domain = head.rsplit("@", 1)
            if not local:
                raise AddressError(f"{text!r} has an empty name before '@'")
        else:
            local, domain = "", head
        domain = domain.lower().rstrip(".")
        if not domain or any(c.isspace() for c in domain) or "@" in domain:
            raise AddressError(f"{text!r} has no valid domain")
        if len(local.encode()) > _MAX_PART or len(domain.encode()) > _MAX_PART:
            raise AddressError(f"{text[:40]!r}… is longer than a JID may be")
        if any(c in local for c in "\"&'/:<>@") or any(c.isspace() for c in local):
            raise AddressError(f"{text!r} has characters not allowed in a JID")
        return cls(local.lower(), domain)

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}" if self.local else self.domain


@dataclass(frozen=True, slots=True)
class FullJid:
    """A JID with a resource: where an error about one message must go."""

    bare: BareJid
    resource: str

    @classmethod
    def parse(cls, text: str) -> FullJid:
        bare = BareJid.parse(text)
        resource = text.split("/", 1)[1] if "/" in text else ""
        return cls(bare, resource)

    def __str__(self) -> str:
        return f"{self.bare}/{self.resource}" if self.resource else str(self.bare)


@dataclass(frozen=True, slots=True)
class E164:
    """A phone number in E.164 form (``+33698765432``)."""

    digits: str  # without the leading '+'

    @classmethod
    def parse(cls, text: str, default_region: str | None = None) -> E164:
        """Normalise ``text`` with the numbering plan of ``default_region``.

        ``0698765432`` with region ``FR`` gives ``+33698765432``. Raises
        :class:`AddressError` saying what is wrong when the number is not valid.
        """
        import phonenumbers  # local import: phonenumbers' metadata is large

        raw = text.strip()
        if not raw:
            raise AddressError("the phone number is empty")
        try:
            number = phonenumbers.parse(raw, None if raw.startswith("+") else default_region)
        except phonenumbers.NumberParseException as exc:
            raise AddressError(f"{raw!r} is not a phone number ({_reason(exc)})") from None
        if not phonenumbers.is_valid_number(number):
            raise AddressError(f"{raw!r} is not a valid phone number")
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return cls(formatted[1:])

    @classmethod
    def strict(cls, text: str, default_region: str | None = None) -> E164:
        """Accept only the canonical ``+E164`` spelling (used for JID localparts).

        A national or differently written number raises an error naming the canonical
        form, so a user can correct the address.
        """
        number = cls.parse(text, default_region)
        if text != str(number):
            raise AddressError(f"{text!r} is not written in international form; use {number}")
        return number

    def __str__(self) -> str:
        return f"+{self.digits}"


def _reason(exc: Exception) -> str:
    import phonenumbers

    if not isinstance(exc, phonenumbers.NumberParseException):
        return "unreadable"
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "unreadable")


@dataclass(frozen=True, slots=True)
class MsnHandle:
    """An MSN account name (``bob@escargot.test``), lower-cased."""

    address: str

    @classmethod
    def parse(cls, text: str) -> MsnHandle:
        value = text.strip().lower()
        local, sep, domain = value.partition("@")
        if not sep or not local or "." not in domain or any(c.isspace() for c in value):
            raise AddressError(f"{text!r} is not an MSN handle (expected name@domain)")
        if len(value) > 129:
            raise AddressError("an MSN handle is at most 129 characters")
        return cls(value)

    def __str__(self) -> str:
        return self.address
