"""Answer to a notification server's ``CHL`` challenge (MSNP11+ ``QRY`` algorithm).

The server seen in testing never sends ``CHL``; Microsoft's servers did. We answer with the
MSNP11 scheme (published by the community in the MSNPiki) under the MSN Messenger 7.0 product
id, which matches the client version we announce in ``CVR``. It has not been checked against
a live server that verifies it: a server that disagrees closes the connection (``540``),
which is what would happen if we stayed silent, and the session then reconnects.
"""

from __future__ import annotations

import hashlib
import struct

PRODUCT_ID = "PROD0090YUAUV{2B"
PRODUCT_KEY = "YMM8C_H7KCQ2S_KL"
_MAGIC = 0x0E79A9C1
_MOD = 0x7FFFFFFF


def answer(challenge: str, product_id: str = PRODUCT_ID, product_key: str = PRODUCT_KEY) -> str:
    """The 32 hex digits to send as the ``QRY`` payload for ``challenge``."""
    digest = hashlib.md5((challenge + product_key).encode("ascii", "replace")).digest()
    md5_words = struct.unpack("<4I", digest)
    md5_masked = [w & _MOD for w in md5_words]

    chl = (challenge + product_id).encode("ascii", "replace")
    chl += b"0" * (-len(chl) % 8)
    chl_words = struct.unpack(f"<{len(chl) // 4}I", chl)

    high = low = 0
    for i in range(0, len(chl_words), 2):
        temp = (chl_words[i] * _MAGIC) % _MOD
        temp = (md5_masked[0] * (temp + high) + md5_masked[1]) % _MOD
        high = (chl_words[i + 1] + temp) % _MOD
        high = (md5_masked[2] * high + md5_masked[3]) % _MOD
        low += high + temp
    high = (high + md5_masked[1]) % _MOD
    low = (low + md5_masked[3]) % _MOD

    out = struct.pack(
        "<4I",
        md5_words[0] ^ high,
        md5_words[1] ^ low,
        md5_words[2] ^ high,
        md5_words[3] ^ low,
    )
    return out.hex()
