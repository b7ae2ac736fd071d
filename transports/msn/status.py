"""MSN presence statuses and contact-list bits, as MSNP12 spells them on the wire."""

from __future__ import annotations

from enum import IntFlag, StrEnum


class Status(StrEnum):
    """A user's status code (``CHG``/``ILN``/``NLN``); FLN is how offline is reported."""

    NLN = "NLN"  # online
    BSY = "BSY"  # busy
    IDL = "IDL"  # idle
    BRB = "BRB"  # be right back
    AWY = "AWY"  # away
    PHN = "PHN"  # on the phone
    LUN = "LUN"  # out to lunch
    HDN = "HDN"  # hidden (appear offline); contacts see FLN
    FLN = "FLN"  # offline (never sent in CHG)

    @property
    def is_online(self) -> bool:
        """True when contacts can see the user (everything but HDN and FLN)."""
        return self not in (Status.HDN, Status.FLN)

    @classmethod
    def parse(cls, code: str) -> Status | None:
        """The status for a wire code, or None for an unknown one."""
        try:
            return cls(code.upper())
        except ValueError:
            return None


class ListBit(IntFlag):
    """Contact-list membership mask, as in ``LST … <mask>``.

    FL: I watch them. AL: they may see me. BL: they may not. RL: they have me on their FL
    (maintained by the server). PL: they added me while I was away, waiting for my answer.
    """

    FL = 1
    AL = 2
    BL = 4
    RL = 8
    PL = 16

    @classmethod
    def parse_one(cls, name: str) -> ListBit | None:
        """The single list named on the wire (``FL``…``PL``), or None."""
        try:
            return cls[name.upper()]
        except KeyError:
            return None

    @property
    def wire_name(self) -> str:
        """The two-letter name of a single list bit."""
        name = self.name
        if name is None or "|" in name:
            raise ValueError(f"not a single list: {self!r}")
        return name
