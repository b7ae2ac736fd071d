"""Switchboard side of the fake MSN server: sessions, invitations, message relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .codec import Command, Direction, ErrorReply, Parser, encode, url_encode
from .fake_directory import FakeUser
from .payload import MAX_MSG_PAYLOAD

if TYPE_CHECKING:
    from .fake_server import FakeMsnServer

log = logging.getLogger(__name__)


@dataclass
class SbSession:
    id: str
    members: dict[str, SbConnection] = field(default_factory=dict)  # lower handle -> conn


class SbConnection:
    """One client connection to the fake switchboard."""

    def __init__(
        self, server: FakeMsnServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.user: FakeUser | None = None
        self.session: SbSession | None = None
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def send(self, name: str, trid: int | None, *args: str, payload: bytes | None = None) -> None:
        self.send_raw(encode(name, trid, *args, payload=payload))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    async def run(self) -> None:
        parser = Parser(Direction.FROM_CLIENT)
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                for frame in parser.feed(data):
                    if self.server.reply_delay:
                        await asyncio.sleep(self.server.reply_delay)
                    if isinstance(frame, Command):
                        self.handle_command(frame)
                    elif not isinstance(frame, ErrorReply):
                        log.info("fake SB: client violation: %s", frame.reason)
                        self.close()
                    if self.closed:
                        break
                if not self.closed:
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            with contextlib.suppress(Exception):
                self.writer.close()
            self.leave()

    def leave(self) -> None:
        session, user = self.session, self.user
        self.session = None
        if session is None or user is None:
            return
        if session.members.get(user.key) is self:
            del session.members[user.key]
            for member in session.members.values():
                member.send("BYE", None, user.handle)
        if not session.members:
            self.server.sb_sessions.pop(session.id, None)

    def handle_command(self, cmd: Command) -> None:
        server, t = self.server, cmd.trid
        if self.user is None:
            if cmd.name == "USR":
                grant = server.sb_tokens.pop(cmd.arg(1), None)
                user = server.directory.get(cmd.arg(0))
                if grant is None or user is None or grant[0].lower() != user.key:
                    self.send_raw(f"911 {t}\r\n".encode())
                    self.close()
                    return
                self.user = user
                self.session = server.new_sb_session()
                self.session.members[user.key] = self
                self.send("USR", t, "OK", user.handle, url_encode(user.friendly_name))
            elif cmd.name == "ANS":
                self._answer(cmd)
            else:
                self.send_raw(f"715 {t}\r\n".encode())
            return
        if cmd.name == "OUT":
            self.leave()
            self.close()
        elif cmd.name == "CAL":
            self._call(cmd)
        elif cmd.name == "MSG":
            self._message(cmd)
        else:
            self.send_raw(f"502 {t}\r\n".encode())

    def _answer(self, cmd: Command) -> None:
        server, t = self.server, cmd.trid
        grant = server.sb_tokens.pop(cmd.arg(1), None)
        user = server.directory.get(cmd.arg(0))
        session = server.sb_sessions.get(cmd.arg(2))
        if grant is None or user is None or session is None or grant != (user.handle, session.id):
            self.send_raw(f"911 {t}\r\n".encode())
            self.close()
            return
        self.user, self.session = user, session
        others = list(session.members.values())
        for i, member in enumerate(others, start=1):
            assert member.user is not None
            self.send(
                "IRO",
                t,
                str(i),
                str(len(others)),
                member.user.handle,
                url_encode(member.user.friendly_name),
                str(member.user.caps),
            )
        self.send("ANS", t, "OK")
        session.members[user.key] = self
        for member in others:
            member.send("JOI", None, user.handle, url_encode(user.friendly_name), str(user.caps))

    def _call(self, cmd: Command) -> None:
        server, t = self.server, cmd.trid
        assert self.user is not None and self.session is not None
        callee = server.directory.get(cmd.arg(0))
        if callee is None:
            self.send_raw(f"208 {t}\r\n".encode())
            return
        ns = server.ns_of(callee.handle)
        reachable = (
            ns is not None
            and callee.status.is_online
            and callee.allows(self.user.handle)
            and callee.key not in server.forced_217
        )
        if not reachable or ns is None:
            self.send_raw(f"217 {t}\r\n".encode())
            return
        self.send("CAL", t, "RINGING", self.session.id)
        if callee.key in self.session.members:
            return
        token = server.new_sb_token(callee.handle, self.session.id)
        ns.send(
            "RNG",
            None,
            self.session.id,
            f"127.0.0.1:{server.sb_port}",
            "CKI",
            token,
            self.user.handle,
            url_encode(self.user.friendly_name),
        )

    def _message(self, cmd: Command) -> None:
        assert self.user is not None and self.session is not None
        payload = cmd.payload or b""
        if len(payload) > MAX_MSG_PAYLOAD:
            log.info("fake SB: %d-byte MSG payload, closing as real servers do", len(payload))
            self.close()
            return
        relay = encode("MSG", None, self.user.handle, url_encode(self.user.friendly_name), payload=payload)
        others = [m for k, m in self.session.members.items() if k != self.user.key]
        for member in others:
            member.send_raw(relay)
        self.server.record_message(self.user.handle, [m.user.handle for m in others if m.user], payload)
        if cmd.arg(0) in ("A", "D"):
            self.send("ACK", cmd.trid)  # even when nobody was there to receive it
