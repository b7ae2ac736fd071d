"""Text from other networks made safe for XML 1.0."""

from __future__ import annotations

import re

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Characters XML forbids (control characters an SMS or MSN peer may send, lone
    surrogates) become U+FFFD instead of breaking the component's stream."""
    return _NOT_XML.sub("\ufffd", text)
