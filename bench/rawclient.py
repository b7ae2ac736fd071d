"""A raw asyncio XMPP c2s client for load generation (deliberately not slixmpp).

It speaks just enough XMPP to log in to a loopback Prosody without TLS (stream header,
SASL PLAIN, stream restart, resource bind, session when offered, optional initial presence)
and then sends and receives ``<message/>`` stanzas as raw bytes. Incoming traffic is split
into top-level stanzas with a small byte scanner that is good enough for what Prosody
serialises (attribute values have ``<`` and ``>`` escaped); it is not a general XML parser.

Server pings (``urn:xmpp:ping``) and roster pushes are answered, other IQ get/set get
``service-unavailable``, and IQ results resolve the futures of :meth:`RawClient.send_iq`.

Per message the client costs a handful of microseconds: one f-string and one regex search
to send, one regex search plus two attribute lookups to receive, and writes made in the same
event-loop iteration are coalesced into one ``write()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import time
from collections.abc import Callable
from typing import Final

MessageHandler = Callable[[str, str, str, float], None]
"""``(from, id, body, recv_time)``; ``recv_time`` is ``time.perf_counter()`` of the read."""

RawHandler = Callable[[str, bytes, float], None]
"""``(element name, raw stanza bytes, recv_time)`` for everything that is not a body message."""

STREAM_NS: Final = "http://etherx.jabber.org/streams"
SASL_NS: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS: Final = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION_NS: Final = "urn:ietf:params:xml:ns:xmpp-session"

_READ_SIZE: Final = 256 * 1024
_MAX_BUFFER: Final = 16 * 1024 * 1024

_START_TAG = re.compile(rb"<([A-Za-z][\w:.-]*)([^>]*?)(/?)>")
_ATTR = re.compile(rb"""(?:^|\s)([\w:.-]+)=(?:'([^']*)'|"([^"]*)")""")
_BODY = re.compile(rb"<body(?:\s[^>]*)?(?:/>|>(.*?)</body>)", re.DOTALL)
_FEATURES_END = re.compile(rb"</stream:features>|<stream:features\s*/>")
_SASL_RESULT = re.compile(rb"<(success|failure)\b[^>]*?(?:/>|>.*?</\1>)", re.DOTALL)
_STREAM_ERROR = re.compile(rb"<stream:error>.*?</stream:error>", re.DOTALL)
_JID_ELEM = re.compile(rb"<jid>([^<]*)</jid>")

_ESCAPES_TEXT: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ESCAPES_ATTR: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})
_UNESCAPES: Final = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


class XmppError(RuntimeError):
    """Login failed, the stream broke, or an IQ came back with ``type='error'``."""


def escape_text(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.translate(_ESCAPES_TEXT)
    return text


def escape_attr(text: str) -> str:
    if "&" in text or "<" in text or ">" in text or "'" in text or '"' in text:
        return text.translate(_ESCAPES_ATTR)
    return text


def unescape(text: str) -> str:
    if "&" not in text:
        return text
    for entity, char in _UNESCAPES:
        text = text.replace(entity, char)
    return text


def attributes(start_tag: bytes) -> dict[str, str]:
    """The attributes of one raw start tag (or of the attribute part of it), unescaped."""
    return {
        m.group(1).decode(): unescape((m.group(2) if m.group(2) is not None else m.group(3) or b"").decode())
        for m in _ATTR.finditer(start_tag)
    }


class StanzaSplitter:
    """Cuts a byte stream (after the stream header) into top-level stanzas.

    ``feed(data)`` returns the complete stanzas as ``(name, attribute bytes, raw)`` triples and
    keeps the incomplete tail. Nested elements with the stanza's own name (a forwarded
    ``<message/>`` inside a ``<message/>``) are counted so the outer one is cut correctly.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._patterns: dict[bytes, re.Pattern[bytes]] = {}
        self.closed = False

    def _pattern(self, name: bytes) -> re.Pattern[bytes]:
        pat = self._patterns.get(name)
        if pat is None:
            n = re.escape(name)
            pat = re.compile(rb"<(/?)" + n + rb"(?=[\s/>])[^>]*?(/?)>")
            self._patterns[name] = pat
        return pat

    def feed(self, data: bytes) -> list[tuple[bytes, bytes, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[bytes, bytes, bytes]] = []
        pos = 0
        size = len(buf)
        while pos < size:
            lt = buf.find(b"<", pos)
            if lt < 0:  # whitespace keep-alives
                pos = size
                break
            if buf.startswith(b"</stream:stream", lt):
                self.closed = True
                pos = size
                break
            if buf.startswith(b"<?", lt):  # XML declaration (after a stream restart)
                end = buf.find(b"?>", lt)
                if end < 0:
                    pos = lt
                    break
                pos = end + 2
                continue
            m = _START_TAG.match(buf, lt)
            if m is None:
                if buf.find(b">", lt) >= 0:
                    raise XmppError(f"cannot parse stanza at {buf[lt : lt + 200]!r}")
                pos = lt  # incomplete start tag
                break
            name = m.group(1)
            if m.group(3):  # self-closing
                out.append((name, m.group(2), buf[lt : m.end()]))
                pos = m.end()
                continue
            if name == b"stream:stream":  # a new stream header: nothing to emit
                pos = m.end()
                continue
            end = self._close(buf, name, m.end())
            if end < 0:
                pos = lt
                break
            out.append((name, m.group(2), buf[lt:end]))
            pos = end
        self._buf = buf[pos:] if pos < size else b""
        if len(self._buf) > _MAX_BUFFER:
            raise XmppError("incomplete stanza larger than 16 MiB")
        return out

    def _close(self, buf: bytes, name: bytes, start: int) -> int:
        """End offset of the element whose start tag ends at ``start``, or -1 if incomplete."""
        pat = self._pattern(name)
        depth = 1
        for m in pat.finditer(buf, start):
            if m.group(1):
                depth -= 1
                if depth == 0:
                    return m.end()
            elif not m.group(2):
                depth += 1
        return -1


class RawClient:
    """One logged-in c2s connection. Build it with ``await RawClient.connect(...)``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, jid: str) -> None:
        self.reader = reader
        self.writer = writer
        self.jid = jid  # the full JID once bound
        self.on_message: MessageHandler | None = None
        self.on_error_message: MessageHandler | None = None
        self.on_raw: RawHandler | None = None
        self.received = 0
        self.sent = 0
        self.error_messages = 0
        self.stream_error: str | None = None
        self._splitter = StanzaSplitter()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._iq_ids = itertools.count(1)
        self._pending_iq: dict[str, asyncio.Future[bytes]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ login

    @classmethod
    async def connect(
        cls,
        port: int,
        jid: str,
        password: str,
        *,
        host: str = "127.0.0.1",
        presence: bool = False,
        on_message: MessageHandler | None = None,
        timeout: float = 10.0,
    ) -> RawClient:
        """Connect, log in with SASL PLAIN, bind (``jid``'s resource or ``bench``) and start reading."""
        bare, _, resource = jid.partition("/")
        user, _, domain = bare.partition("@")
        if not user or not domain:
            raise ValueError(f"need user@domain[/resource], got {jid!r}")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        client = cls(reader, writer, jid)
        client.on_message = on_message
        try:
            await asyncio.wait_for(client._login(user, domain, password, resource or "bench"), timeout)
        except BaseException:
            writer.close()
            raise
        client._reader_task = asyncio.create_task(client._read_loop(), name=f"rawclient {client.jid}")
        if presence:
            client.send_raw("<presence/>")
        return client

    async def _login(self, user: str, domain: str, password: str, resource: str) -> None:
        buf = bytearray()
        header = (
            f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}'"
            f" to='{escape_attr(domain)}' version='1.0'>"
        ).encode()
        self.writer.write(header)
        features = await self._read_until(buf, _FEATURES_END)
        if b"PLAIN" not in features:
            raise XmppError(f"server does not offer SASL PLAIN: {features[-500:]!r}")
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.writer.write(f"<auth xmlns='{SASL_NS}' mechanism='PLAIN'>{token}</auth>".encode())
        result = await self._read_until(buf, _SASL_RESULT)
        if b"<success" not in result:
            raise XmppError(f"SASL PLAIN failed for {user}@{domain}: {result[-300:]!r}")
        self.writer.write(header)
        features = await self._read_until(buf, _FEATURES_END)
        if BIND_NS.encode() not in features:
            raise XmppError("server does not offer resource binding")
        self.writer.write(
            f"<iq type='set' id='bind1'><bind xmlns='{BIND_NS}'><resource>{escape_text(resource)}"
            f"</resource></bind></iq>".encode()
        )
        bound = await self._read_until(buf, re.compile(rb"<iq\b[^>]*\bid=['\"]bind1['\"].*?</iq>", re.DOTALL))
        jid = _JID_ELEM.search(bound)
        if jid is None:
            raise XmppError(f"bind failed: {bound[-300:]!r}")
        self.jid = unescape(jid.group(1).decode())
        session = SESSION_NS.encode()
        if session in features and b"<optional/>" not in features.split(session, 1)[1][:200]:
            self.writer.write(f"<iq type='set' id='sess1'><session xmlns='{SESSION_NS}'/></iq>".encode())
            await self._read_until(buf, re.compile(rb"<iq\b[^>]*\bid=['\"]sess1['\"][^>]*?(?:/>|>.*?</iq>)"))
        if buf:  # anything the server sent right after (unlikely): hand it to the stanza reader
            self._dispatch(self._splitter.feed(bytes(buf)), time.perf_counter())

    async def _read_until(self, buf: bytearray, pattern: re.Pattern[bytes]) -> bytes:
        """Read until ``pattern`` matches; return everything up to the match end and drop it."""
        while True:
            err = _STREAM_ERROR.search(buf)
            if err is not None:
                raise XmppError(f"stream error during login: {err.group(0)!r}")
            m = pattern.search(buf)
            if m is not None:
                chunk = bytes(buf[: m.end()])
                del buf[: m.end()]
                return chunk
            data = await self.reader.read(65536)
            if not data:
                raise XmppError(f"connection closed during login; got {bytes(buf[-300:])!r}")
            buf += data

    # ------------------------------------------------------------------ sending

    def send_raw(self, data: str | bytes) -> None:
        """Queue raw XML; everything queued in one loop iteration goes out in one write."""
        self._out.append(data.encode() if isinstance(data, str) else data)
        self.sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def send_message(self, to: str, body: str, id: str, type: str = "chat") -> None:
        self._out.append(
            f"<message to='{escape_attr(to)}' id='{escape_attr(id)}' type='{type}'>"
            f"<body>{escape_text(body)}</body></message>".encode()
        )
        self.sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.writer.is_closing():
            self.writer.write(b"".join(self._out))
        self._out.clear()

    async def drain(self) -> None:
        self._flush()
        await self.writer.drain()

    async def send_iq(
        self, payload: str, type: str = "get", to: str | None = None, timeout: float = 10.0
    ) -> bytes:
        """Send ``<iq>payload</iq>``, return the raw result stanza; raise :class:`XmppError` on error."""
        iq_id = f"rc{next(self._iq_ids)}"
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._pending_iq[iq_id] = fut
        to_attr = f" to='{escape_attr(to)}'" if to else ""
        self.send_raw(f"<iq type='{type}' id='{iq_id}'{to_attr}>{payload}</iq>")
        try:
            raw = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending_iq.pop(iq_id, None)
        if b"type='error'" in raw[:300] or b'type="error"' in raw[:300]:
            raise XmppError(f"iq error: {raw[:500]!r}")
        return raw

    # ------------------------------------------------------------------ receiving

    async def _read_loop(self) -> None:
        read = self.reader.read
        try:
            while True:
                data = await read(_READ_SIZE)
                if not data:
                    break
                now = time.perf_counter()
                self._dispatch(self._splitter.feed(data), now)
                if self._splitter.closed:
                    break
        except (ConnectionError, XmppError) as exc:
            self.stream_error = self.stream_error or repr(exc)
        finally:
            self._closed.set()
            for fut in self._pending_iq.values():
                if not fut.done():
                    fut.set_exception(XmppError(f"stream closed ({self.stream_error})"))

    def _dispatch(self, stanzas: list[tuple[bytes, bytes, bytes]], now: float) -> None:
        for name, attrs, raw in stanzas:
            if name == b"message":
                self._on_message(attrs, raw, now)
            elif name == b"iq":
                self._on_iq(attrs, raw, now)
            elif name == b"stream:error":
                self.stream_error = raw.decode(errors="replace")
            elif self.on_raw is not None:
                self.on_raw(name.decode(), raw, now)

    def _on_message(self, attrs: bytes, raw: bytes, now: float) -> None:
        a = attributes(attrs)
        if a.get("type") == "error":
            self.error_messages += 1
            if self.on_error_message is not None:
                body = _BODY.search(raw)
                text = unescape(body.group(1).decode()) if body is not None and body.group(1) else ""
                self.on_error_message(a.get("from", ""), a.get("id", ""), text, now)
            elif self.on_raw is not None:
                self.on_raw("message", raw, now)
            return
        body = _BODY.search(raw)
        if body is None:  # chat states, receipts, mod_privilege's empty advertisement
            if self.on_raw is not None:
                self.on_raw("message", raw, now)
            return
        self.received += 1
        if self.on_message is not None:
            raw_body = body.group(1)
            self.on_message(
                a.get("from", ""), a.get("id", ""), unescape(raw_body.decode()) if raw_body else "", now
            )

    def _on_iq(self, attrs: bytes, raw: bytes, now: float) -> None:
        a = attributes(attrs)
        kind = a.get("type")
        iq_id = a.get("id", "")
        if kind in ("result", "error"):
            fut = self._pending_iq.get(iq_id)
            if fut is not None and not fut.done():
                fut.set_result(raw)
            elif self.on_raw is not None:
                self.on_raw("iq", raw, now)
            return
        sender = a.get("from")
        to_attr = f" to='{escape_attr(sender)}'" if sender else ""
        if b"urn:xmpp:ping" in raw or b"jabber:iq:roster" in raw:
            # pings must be answered or Prosody drops us; roster pushes must be acknowledged
            self.send_raw(f"<iq type='result' id='{escape_attr(iq_id)}'{to_attr}/>")
        else:
            self.send_raw(
                f"<iq type='error' id='{escape_attr(iq_id)}'{to_attr}><error type='cancel'>"
                "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            )
        if self.on_raw is not None:
            self.on_raw("iq", raw, now)

    # ------------------------------------------------------------------ closing

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self, timeout: float = 2.0) -> None:
        """Close the stream politely, wait (bounded) for the server to close it, then the socket."""
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._out.append(b"</stream:stream>")
                self._flush()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout)
        if self._reader_task is not None and not self._reader_task.done():
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self.writer.close()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), timeout)
