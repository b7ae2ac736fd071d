"""The parser gives the same frames however the server's bytes are cut into reads: a SYN
of a thousand contacts comes in a few large reads, a slow link in many small ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transports.msn.codec import Parser, url_decode

FAST = settings(derandomize=True, database=None, max_examples=200, deadline=None)

LINES = [
    b"SYN 5 2000-01-01 2000-01-01 2 1\r\n",
    b"LSG Friends%20%C3%A9 g-1\r\n",
    b"LST N=bob@example.com F=Bob%20B C=guid-1 11 g-1\r\n",
    b"BPR PHM +33612345678\r\n",
    b"LST N=carol@example.com F=Carol C=guid-2 19\r\n",
    b"UBX bob@example.com 7\r\n<Data/>",
    b"X" * 90 + b"\r\n",  # over the line cap below
    b"MSG Hotmail Hotmail 120\r\n" + b"p" * 120,  # over the payload cap below
    b"ILN 6 NLN bob@example.com Bob%20B 0\r\n",
    b"\r\n",
    b"911 4\r\n",
]


def frames(reads: list[bytes]) -> list[object]:
    parser = Parser(max_line=80, max_payload=100)
    out: list[object] = []
    for data in reads:
        out += parser.feed(data)
    return out


@FAST
@given(st.lists(st.sampled_from(LINES), max_size=30), st.lists(st.integers(0, 4000), max_size=12))
def test_the_same_frames_whatever_the_reads(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(lines)
    points = sorted({c % (len(data) + 1) for c in cuts})
    reads = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert frames(reads) == frames([data])


def test_a_thousand_contacts_in_one_read() -> None:
    lines = [f"LST N=c{j}@example.net F=C{j} C=guid-{j} 11\r\n".encode() for j in range(1000)]
    got = frames([b"".join(lines)])
    assert [f.args[0] for f in got] == [f"N=c{j}@example.net" for j in range(1000)]  # type: ignore[attr-defined]


def test_names_without_escapes_come_back_unchanged() -> None:
    assert url_decode("Bob") == "Bob"
    assert url_decode("Bob%20B%C3%A9") == "Bob Bé"
    assert url_decode("100%") == "100%"
