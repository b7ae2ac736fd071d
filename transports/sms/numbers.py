"""Contact addressing on the SMS component: ``+E164@sms.example.org``.

Worked examples (region FR, component ``sms.example.org``)::

    +33698765432        -> the number +33698765432
    0698765432          -> error: "use +33698765432@sms.example.org"
    36665 / InfoBank    -> a service sender (short code, alphanumeric): readable, not repliable
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gateway.addressing import E164, AddressError, escape_node, unescape_node
from gateway.errors import UserError

TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5
NPI_E164 = 1
PARSED_KEPT = 4096  # contact localparts whose number is kept parsed


@dataclass(frozen=True, slots=True)
class Numbering:
    region: str
    domain: str

    def parse_contact(self, localpart: str) -> str:
        """The E.164 number a contact localpart names; ``UserError('bad-address')`` otherwise."""
        text = unescape_node(localpart)
        if text.startswith("+"):
            try:
                return _strict(text, self.region)
            except AddressError as exc:
                raise UserError(
                    "bad-address", reason=f"{exc}. Write numbers as +<country><number>@{self.domain}."
                ) from None
        try:
            number = E164.parse(text, self.region)
        except AddressError:
            if is_service_sender(text):
                raise UserError(
                    "bad-address",
                    reason=f"{text} is a service sender (short code or name); it cannot receive SMS replies.",
                ) from None
            raise UserError(
                "bad-address",
                reason=f"'{text[:40]}' is not a phone number; use +<country><number>@{self.domain}.",
            ) from None
        raise UserError(
            "bad-address", reason=f"Write the number in international form: {number}@{self.domain}"
        )

    def translate(self, text: str) -> str:
        """``jabber:iq:gateway``: a typed number to its localpart."""
        try:
            return str(E164.parse(text, self.region))
        except AddressError as exc:
            raise UserError("bad-address", reason=str(exc)) from None

    @staticmethod
    def localpart(legacy_id: str) -> str:
        return escape_node(legacy_id)


@functools.lru_cache(maxsize=PARSED_KEPT)
def _strict(text: str, region: str) -> str:
    """``E164.strict`` as text, kept for the contacts in use: every message to SMS names its
    contact, and parsing a number (phonenumbers) cost about a tenth of the gateway's CPU per
    message in the xmpp-sms bench. Only valid numbers are kept (an error is raised anew)."""
    return str(E164.strict(text, region))


def is_service_sender(text: str) -> bool:
    """Short codes (up to 8 digits) and alphanumeric sender ids."""
    stripped = text.strip()
    if stripped.isdigit():
        return len(stripped) <= 8
    return bool(stripped) and len(stripped) <= 11 and not stripped.startswith("+")


def mo_source(address: str) -> str:
    """The contact id of an MO sender: ``+E164`` for international numbers, else as sent."""
    digits = address.strip().lstrip("+")
    if digits.isdigit() and len(digits) > 8:
        return f"+{digits}"  # whatever the TON says: some SMSCs send international numbers with TON 0
    return address.strip()


def msisdn_digits(number: str) -> str:
    return number.lstrip("+")
