"""Contact localparts on the SMS component (``transports.sms.numbers``): the worked examples
of the module, asked twice (a parsed number is kept: the second answer must be the same)."""

from __future__ import annotations

import pytest

from gateway.errors import UserError
from transports.sms.numbers import Numbering

FR = Numbering("FR", "sms.example.org")


@pytest.mark.parametrize("attempt", [1, 2])
def test_an_international_number_names_itself(attempt: int) -> None:
    assert FR.parse_contact("+33698765432") == "+33698765432"


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_national_number_is_refused_with_its_international_form(attempt: int) -> None:
    with pytest.raises(UserError) as refused:
        FR.parse_contact("0698765432")
    assert "+33698765432@sms.example.org" in refused.value.text


@pytest.mark.parametrize("attempt", [1, 2])
def test_an_invalid_number_is_refused_every_time(attempt: int) -> None:
    with pytest.raises(UserError):
        FR.parse_contact("+3312")


def test_the_region_is_part_of_the_answer() -> None:
    """The same localpart under another region is parsed for that region."""
    us = Numbering("US", "sms.example.org")
    assert us.parse_contact("+14155550123") == FR.parse_contact("+14155550123") == "+14155550123"
    with pytest.raises(UserError) as refused:
        us.parse_contact("4155550123")
    assert "+14155550123@sms.example.org" in refused.value.text
