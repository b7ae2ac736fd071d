"""Text ↔ SMS payloads: alphabet choice, segmentation, decoding. Pure, no I/O.

Over SMPP the GSM 03.38 default alphabet travels *unpacked* (one septet per octet,
``data_coding`` 0); the SMSC packs it for the air interface. That is why the limits
below count septets while the payloads are one byte per septet.

Outgoing text is sent as GSM-7 when every character exists in the default alphabet or
its extension table (the extension characters cost two septets: ESC + char), otherwise
the whole message goes as UCS-2 (``data_coding`` 8, UTF-16BE on the wire, so characters
outside the BMP such as emoji cost two units as a surrogate pair).

Segment sizes, with the 6-octet concatenation header ``05 00 03 ref total seq``:

=========  ===========  =====================
alphabet   single part  each concatenated part
=========  ===========  =====================
GSM-7      160 septets  153 septets
UCS-2      70 units     67 units
=========  ===========  =====================

A part never ends between ESC and its character, nor between the two halves of a
surrogate pair: the splitter works on whole characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import gsm0338

DC_GSM7 = 0x00
DC_IA5 = 0x01
DC_LATIN1 = 0x03
DC_UCS2 = 0x08

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

_ESC = 0x1B


def _build_gsm_tables() -> tuple[dict[int, str], dict[int, str], dict[str, bytes]]:
    """Derive septet tables from the gsm0338 codec, the single source of the alphabet."""
    codec = gsm0338.Codec()
    basic: dict[int, str] = {}
    extension: dict[int, str] = {}
    for septet in range(0x80):
        if septet == _ESC:
            continue
        try:
            basic[septet] = codec.decode(bytes([septet]))[0]
        except UnicodeDecodeError:  # pragma: no cover - the basic table is complete
            continue
        try:
            extension[septet] = codec.decode(bytes([_ESC, septet]))[0]
        except UnicodeDecodeError:
            continue
    encode: dict[str, bytes] = {ch: bytes([_ESC, s]) for s, ch in extension.items()}
    for s, ch in basic.items():  # a basic mapping wins over an extension one
        encode[ch] = bytes([s])
    return basic, extension, encode


_GSM_BASIC, _GSM_EXTENSION, _GSM_ENCODE = _build_gsm_tables()
GSM7_CHARACTERS = frozenset(_GSM_ENCODE)  # every character GSM-7 can carry
GSM7_EXTENSION_CHARACTERS = frozenset(_GSM_EXTENSION.values())  # those costing 2 septets

# Typographic characters that word processors and phone keyboards insert, mapped to
# GSM-7 look-alikes. Applied only when it makes the whole message GSM-7 (see encode_text).
_TRANSLITERATION: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u2039": "'", "\u203a": "'", "\u00b4": "'", "\u0060": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
    "\u2026": "...",
    "\u2022": "*",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ",
    "\u2006": " ", "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ",
    "\u202f": " ", "\u205f": " ", "\u3000": " ",
    "\u200b": "", "\ufeff": "", "\u00ad": "",
}  # fmt: skip


@dataclass(frozen=True)
class EncodedText:
    """A message ready for submit_sm: one payload per SMS part, without any UDH."""

    data_coding: int
    segments: tuple[bytes, ...]
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text

    @property
    def parts(self) -> int:
        return len(self.segments)

    def short_messages(self, ref: int) -> tuple[bytes, ...]:
        """The ``short_message`` of each part: UDH-prefixed when there is more than one."""
        if len(self.segments) == 1:
            return self.segments
        total = len(self.segments)
        return tuple(concat_udh(ref, total, seq) + seg for seq, seg in enumerate(self.segments, start=1))


@dataclass(frozen=True)
class DecodedText:
    """Text of an incoming payload; ``exact`` is False when the coding was guessed."""

    text: str
    data_coding: int
    exact: bool = True


class MessageTooLong(ValueError):
    """The text needs more SMS parts than the caller allows. ``str()`` is user-presentable."""

    def __init__(self, parts: int, max_parts: int, data_coding: int) -> None:
        per_part = GSM7_PART if data_coding == DC_GSM7 else UCS2_PART
        single = GSM7_SINGLE if data_coding == DC_GSM7 else UCS2_SINGLE
        limit = single if max_parts == 1 else per_part * max_parts
        super().__init__(
            f"message too long: it needs {parts} SMS parts and the limit is {max_parts} "
            f"(about {limit} characters"
            f"{'' if data_coding == DC_GSM7 else ' when it contains emoji or non-Latin letters'})"
        )
        self.parts = parts
        self.max_parts = max_parts
        self.data_coding = data_coding


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """The 8-bit-reference concatenation header ``05 00 03 ref total seq``."""
    return bytes([0x05, 0x00, 0x03, ref & 0xFF, total & 0xFF, seq & 0xFF])


def is_gsm7(text: str) -> bool:
    """True when every character exists in the GSM 03.38 alphabet or its extension."""
    return all(ch in _GSM_ENCODE for ch in text)


def transliterate(text: str) -> str:
    """Replace typographic characters by GSM-7 look-alikes (other characters unchanged)."""
    return "".join(_TRANSLITERATION.get(ch, ch) for ch in text)


def encode_chars(text: str, data_coding: int) -> list[bytes]:
    """Each character of ``text`` encoded in ``data_coding`` (0, 3 or 8), unsplit.

    Raises ValueError when a character does not exist in that coding.
    """
    if data_coding == DC_GSM7:
        try:
            return [_GSM_ENCODE[ch] for ch in text]
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]!r} is not in the GSM 03.38 alphabet") from None
    if data_coding == DC_LATIN1:
        return [ch.encode("latin-1") for ch in text]
    if data_coding == DC_UCS2:
        return [ch.encode("utf-16-be") for ch in text]
    raise ValueError(f"cannot encode in data_coding {data_coding}")


def encode_text(text: str, *, transliterate_typography: bool = False) -> EncodedText:
    """Choose the alphabet and split ``text`` into SMS parts.

    With ``transliterate_typography`` the look-alike replacement is applied only when
    it lets the whole message go as GSM-7; text that needs UCS-2 anyway keeps its
    typographic characters.
    """
    if transliterate_typography and not is_gsm7(text):
        candidate = transliterate(text)
        if is_gsm7(candidate):
            text = candidate
    if is_gsm7(text):
        return _split(encode_chars(text, DC_GSM7), DC_GSM7, GSM7_SINGLE, GSM7_PART, 1)
    return _split(encode_chars(text, DC_UCS2), DC_UCS2, UCS2_SINGLE, UCS2_PART, 2)


def count_parts(text: str, *, transliterate_typography: bool = False) -> int:
    """How many SMS parts ``text`` needs (at least 1, an empty text is one empty SMS)."""
    return encode_text(text, transliterate_typography=transliterate_typography).parts


def encode_within(text: str, max_parts: int, *, transliterate_typography: bool = False) -> EncodedText:
    """Like :func:`encode_text` but raises :class:`MessageTooLong` past ``max_parts``."""
    encoded = encode_text(text, transliterate_typography=transliterate_typography)
    if encoded.parts > max_parts:
        raise MessageTooLong(encoded.parts, max_parts, encoded.data_coding)
    return encoded


def _split(chars: list[bytes], data_coding: int, single: int, per_part: int, unit_bytes: int) -> EncodedText:
    """Greedy split on character boundaries; each item of ``chars`` is one character."""
    total_units = sum(len(c) for c in chars) // unit_bytes
    if total_units <= single:
        return EncodedText(data_coding, (b"".join(chars),), total_units)
    limit = per_part * unit_bytes
    segments: list[bytes] = []
    current = bytearray()
    for encoded in chars:
        if len(current) + len(encoded) > limit:
            segments.append(bytes(current))
            current = bytearray()
        current += encoded
    if current:
        segments.append(bytes(current))
    return EncodedText(data_coding, tuple(segments), total_units)


def decode_gsm7(data: bytes) -> str:
    """Unpacked GSM-7 septets to text. Never raises.

    An ESC followed by a septet outside the extension table shows the basic character,
    as 03.38 asks of handsets; a trailing ESC is dropped; octets >= 0x80 become U+FFFD.
    """
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        septet = data[i]
        if septet == _ESC:
            if i + 1 >= n:
                break
            following = data[i + 1]
            ch = _GSM_EXTENSION.get(following) or _GSM_BASIC.get(following, "\ufffd")
            out.append(ch)
            i += 2
            continue
        out.append(_GSM_BASIC.get(septet, "\ufffd"))
        i += 1
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> DecodedText:
    """Decode a ``short_message`` / ``message_payload`` (no UDH). Never raises.

    0 → GSM-7 unpacked, 1 → IA5 (ASCII), 3 → Latin-1, 8 → UCS-2/UTF-16BE (surrogate
    pairs accepted, invalid sequences replaced), 0xF0-0xF3 → GSM-7 with a message
    class. Anything else is decoded as Latin-1 and flagged ``exact=False``.
    """
    if data_coding == DC_GSM7 or 0xF0 <= data_coding <= 0xF3:
        return DecodedText(decode_gsm7(data), data_coding)
    if data_coding == DC_IA5:
        return DecodedText(data.decode("ascii", errors="replace"), data_coding)
    if data_coding == DC_LATIN1:
        return DecodedText(data.decode("latin-1"), data_coding)
    if data_coding == DC_UCS2:
        return DecodedText(data.decode("utf-16-be", errors="replace"), data_coding)
    return DecodedText(data.decode("latin-1"), data_coding, exact=False)
