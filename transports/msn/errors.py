"""MSNP numeric error codes: what they mean, and what a login failure was.

The texts are for logs and for the gateway's own error mapping, never shown raw to a user.
"""

from __future__ import annotations

from enum import Enum

ERROR_TEXT: dict[int, str] = {
    200: "syntax error",
    201: "invalid parameter",
    205: "invalid principal (no such user)",
    206: "domain name missing",
    207: "already logged in",
    208: "invalid principal",
    209: "nickname change illegal",
    210: "list full",
    215: "already on that list",
    216: "not on that list",
    217: "principal not online",
    218: "already in that mode",
    219: "principal is in the opposite list",
    223: "too many groups",
    224: "invalid group",
    280: "switchboard failed",
    281: "transfer to switchboard failed",
    282: "P2P error",
    300: "required field missing",
    302: "not logged in",
    500: "internal server error",
    501: "database server error",
    502: "command disabled",
    540: "challenge response failed",
    600: "server is busy",
    601: "server is unavailable",
    602: "peer notification server down",
    603: "database connection failed",
    604: "server is going down",
    605: "server unavailable",
    707: "could not create connection",
    710: "bad CVR parameters",
    711: "write is blocking",
    712: "session is overloaded",
    713: "calling too rapidly",
    714: "too many sessions",
    715: "not expected",
    717: "bad friend file",
    731: "not expected",
    800: "changing too rapidly",
    910: "server too busy",
    911: "authentication failed",
    913: "not allowed while offline or hidden",
    914: "server unavailable",
    915: "server unavailable",
    916: "server unavailable",
    917: "authentication failed",
    918: "server too busy",
    919: "server too busy",
    920: "not accepting new users",
    921: "server too busy",
    923: "Kids Passport without parental consent",
    924: "Passport account not yet verified",
    928: "bad ticket",
}

AUTH_FAILURE_CODES = frozenset({911, 917, 923, 924, 928})


def describe(code: int) -> str:
    """A short English description of an error code (for logs and reasons)."""
    return f"{code} {ERROR_TEXT.get(code, 'unknown error')}"


class LoginFailure(Enum):
    """Why a login did not succeed; the gateway maps each to a different user answer."""

    BAD_CREDENTIALS = "bad-credentials"  # 401 from the login server, or 911 from the NS
    SERVER_ERROR = "server-error"  # a numeric error (500, 600…) or an unexpected HTTP status
    UNREACHABLE = "unreachable"  # a URL or host:port could not be reached; reason names it
    DIALECT = "dialect"  # the server does not speak MSNP12
    PROTOCOL = "protocol"  # the server answered something we cannot follow
