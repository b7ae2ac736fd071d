"""MSG payloads (MIME-like headers + body) and UUX/UBX personal-message XML (no I/O).

A switchboard message is ``headers CRLF CRLF body``. Servers close the connection on a
payload over 1664 bytes, so :func:`split_text` cuts long texts into several payloads, each at
most :data:`MAX_MSG_PAYLOAD` bytes *including* the headers, at UTF-8 character boundaries
(preferring a cut after whitespace); the bodies concatenate back to the original text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import quote

MAX_MSG_PAYLOAD = 1664
DEFAULT_FORMAT = "FN=Arial; EF=; CO=0; CS=0; PF=22"


@dataclass(frozen=True, slots=True)
class TextPayload:
    """A ``text/plain`` message. ``im_format`` is the raw X-MMS-IM-Format header, if any."""

    text: str
    im_format: str | None = None


@dataclass(frozen=True, slots=True)
class TypingPayload:
    """A ``text/x-msmsgscontrol`` typing notification from ``handle``."""

    handle: str


@dataclass(frozen=True, slots=True)
class OtherPayload:
    """Anything else (ink, nudges, P2P, profile…): recognised by content type, not acted on."""

    content_type: str


ParsedPayload = TextPayload | TypingPayload | OtherPayload


def format_header(font: str = "Arial", color: str = "0") -> str:
    """An X-MMS-IM-Format value for ``font`` (URL-encoded as MSN clients do)."""
    return f"FN={quote(font)}; EF=; CO={color}; CS=0; PF=22"


def text_header(im_format: str = DEFAULT_FORMAT) -> bytes:
    """The headers (and the blank line) that start every text payload."""
    return (
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        f"X-MMS-IM-Format: {im_format}\r\n\r\n"
    ).encode()


def build_text(text: str, im_format: str = DEFAULT_FORMAT) -> bytes:
    """One text payload (no size check: use :func:`split_text` for user input)."""
    return text_header(im_format) + text.encode("utf-8")


def build_typing(handle: str) -> bytes:
    """A typing notification saying ``handle`` is typing."""
    return (
        f"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: {handle}\r\n\r\n\r\n"
    ).encode()


def _cut(body: bytes, start: int, budget: int) -> int:
    """End offset of the chunk starting at ``start``: ≤ budget bytes, on a char boundary."""
    end = start + budget
    if end >= len(body):
        return len(body)
    while end > start and (body[end] & 0xC0) == 0x80:  # never inside a UTF-8 sequence
        end -= 1
    # Prefer ending just after whitespace in the second half of the window.
    half = start + budget // 2
    space = max(body.rfind(b" ", half, end), body.rfind(b"\n", half, end))
    if space >= 0:
        end = space + 1
    elif body[end - 1 : end] == b"\r" and body[end : end + 1] == b"\n":
        end -= 1  # keep CR LF together
    return end


def split_text(text: str, *, limit: int = MAX_MSG_PAYLOAD, im_format: str = DEFAULT_FORMAT) -> list[bytes]:
    """Payloads for ``text``, each at most ``limit`` bytes including headers.

    An empty text gives one payload with an empty body. Raises ValueError when the headers
    alone leave no room for a 4-byte character.
    """
    header = text_header(im_format)
    budget = limit - len(header)
    if budget < 4:
        raise ValueError(f"payload limit {limit} leaves no room after {len(header)} header bytes")
    body = text.encode("utf-8")
    if not body:
        return [header]
    parts: list[bytes] = []
    start = 0
    while start < len(body):
        end = _cut(body, start, budget)
        parts.append(header + body[start:end])
        start = end
    return parts


def _split_headers(payload: bytes) -> tuple[dict[str, str], bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = payload.find(sep)
        if idx >= 0:
            head, body = payload[:idx], payload[idx + len(sep) :]
            break
    else:
        head, body = payload, b""
    headers: dict[str, str] = {}
    for raw in head.decode("utf-8", errors="replace").splitlines():
        key, colon, value = raw.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    return headers, body


def parse_message(payload: bytes) -> ParsedPayload:
    """Classify and decode a MSG payload; never raises on malformed input."""
    headers, body = _split_headers(payload)
    ctype_full = headers.get("content-type", "")
    ctype, _, params = ctype_full.partition(";")
    ctype = ctype.strip().lower()
    if ctype == "text/plain":
        charset = "utf-8"
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            text = body.decode(charset, errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        return TextPayload(text, headers.get("x-mms-im-format"))
    if ctype == "text/x-msmsgscontrol" and "typinguser" in headers:
        return TypingPayload(headers["typinguser"])
    return OtherPayload(ctype or "(none)")


# --- personal message (UUX from us, UBX about contacts) ---------------------------------------


@dataclass(frozen=True, slots=True)
class PersonalMessage:
    """The decoded content of a UBX payload."""

    text: str
    current_media: str = ""


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def build_psm(text: str, current_media: str = "") -> bytes:
    """The UUX payload setting our personal message to ``text``."""
    return (
        f"<Data><PSM>{_xml_escape(text)}</PSM>"
        f"<CurrentMedia>{_xml_escape(current_media)}</CurrentMedia></Data>"
    ).encode()


def _element(name: str, doc: str) -> str:
    match = re.search(rf"<{name}\s*>(.*?)</{name}\s*>", doc, re.DOTALL)
    return html.unescape(match.group(1)) if match else ""


def parse_psm(payload: bytes) -> PersonalMessage:
    """Read PSM and CurrentMedia from a UBX payload; missing or malformed parts read as ''.

    A regular expression rather than an XML parser: the payload is untrusted, tiny, and we need
    two leaf elements, so there is no entity expansion or DTD to worry about.
    """
    doc = payload.decode("utf-8", errors="replace")
    return PersonalMessage(_element("PSM", doc), _element("CurrentMedia", doc))


def split_text_chunks(
    text: str, *, limit: int = MAX_MSG_PAYLOAD, im_format: str = DEFAULT_FORMAT
) -> list[str]:
    """The texts of :func:`split_text`'s payloads: each fits one payload, they join to ``text``."""
    header_len = len(text_header(im_format))
    return [p[header_len:].decode("utf-8") for p in split_text(text, limit=limit, im_format=im_format)]
