"""Notification-server side of the fake MSN server: one instance per client connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .codec import Command, Direction, ErrorReply, Parser, encode, url_decode, url_encode
from .fake_directory import FakeUser
from .payload import build_psm, parse_psm
from .status import ListBit, Status

if TYPE_CHECKING:
    from .fake_server import FakeMsnServer

log = logging.getLogger(__name__)
_DATE = "2000-01-01T00:00:00.0-00:00"
_PROFILE = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n\r\n"


class NsConnection:
    """Speaks the server half of MSNP12 on one notification-server connection."""

    def __init__(
        self,
        server: FakeMsnServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        alternate: bool,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.alternate = alternate  # the listener clients are redirected to
        self.dialect: str | None = None
        self.handle: str | None = None  # claimed in USR I
        self.user: FakeUser | None = None  # set once authenticated
        self.first_chg_done = False
        self.closed = False
        self.last_seen: dict[str, tuple[str, str, int]] = {}  # what we told about each contact

    def send(self, name: str, trid: int | None, *args: str, payload: bytes | None = None) -> None:
        if not self.closed:
            self.writer.write(encode(name, trid, *args, payload=payload))

    def send_error(self, code: int, trid: int | None) -> None:
        if not self.closed:
            self.writer.write(f"{code} {trid if trid is not None else 0}\r\n".encode())

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
                    elif isinstance(frame, ErrorReply):
                        pass  # clients do not send these
                    else:
                        log.info("fake NS: client violation: %s", frame.reason)
                        self.close()
                if not self.closed:
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            with contextlib.suppress(Exception):
                self.writer.close()
            self.server.ns_disconnected(self)

    # --- dispatch ---------------------------------------------------------------------------

    def handle_command(self, cmd: Command) -> None:
        t = cmd.trid
        if cmd.name == "PNG":
            self.send("QNG", None, str(self.server.qng_seconds))
            return
        if cmd.name == "OUT":
            self.close()
            return
        if self.user is None:
            self._login_step(cmd)
            return
        handlers = {
            "SYN": self._syn,
            "CHG": self._chg,
            "UUX": self._uux,
            "PRP": self._prp,
            "ADC": self._adc,
            "REM": self._rem,
            "XFR": self._xfr,
            "QRY": self._qry,
            "GTC": self._setting,
            "BLP": self._setting,
        }
        handler = handlers.get(cmd.name)
        if handler is None:
            self.send_error(502 if cmd.name.isalpha() else 200, t)
            return
        handler(cmd)

    def _login_step(self, cmd: Command) -> None:
        t, server = cmd.trid, self.server
        if cmd.name == "VER":
            common = [d for d in cmd.args if d in server.dialects]
            if not common:
                self.send("VER", t, "0")
                self.close()
                return
            self.dialect = common[0]
            self.send("VER", t, *server.dialects)
        elif cmd.name == "CVR" and self.dialect:
            version = cmd.arg(5, "7.0.0816")
            self.send("CVR", t, version, version, version, server.nexus_url, server.nexus_url)
        elif cmd.name == "USR" and self.dialect and cmd.arg(0) == "TWN" and cmd.arg(1) == "I":
            refusal = server.login_refusal()
            if refusal is not None:
                self.send_error(refusal, t)
                return
            self.handle = cmd.arg(2)
            if server.should_redirect(self.handle, alternate=self.alternate):
                target = f"127.0.0.1:{server.ns_alt_port}"
                self.send("XFR", t, "NS", target, "0", f"127.0.0.1:{server.ns_port}")
                return
            self.send("USR", t, "TWN", "S", "ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1")
        elif cmd.name == "USR" and self.handle and cmd.arg(0) == "TWN" and cmd.arg(1) == "S":
            user = server.check_ticket(self.handle, cmd.arg(2))
            if user is None:
                self.send_error(911, t)
                return
            self.user = user
            server.ns_authenticated(self)
            self.send("USR", t, "OK", user.handle, "1", "0")
            self.send("SBS", 0, "null")
            self.send("MSG", None, "Hotmail", "Hotmail", payload=_PROFILE)
        else:
            self.send_error(715, t)

    # --- lists ----------------------------------------------------------------------------

    def _syn(self, cmd: Command) -> None:
        user = self._me()
        entries = list(user.lists.items())
        self.send("SYN", cmd.trid, _DATE, _DATE, str(len(entries)), str(len(user.groups)))
        self.send("GTC", None, user.gtc)
        self.send("BLP", None, user.blp)
        self.send("PRP", None, "MFN", url_encode(user.friendly_name))
        for key, value in user.phones.items():
            self.send("PRP", None, key, url_encode(value))
        for gid, name in user.groups.items():
            self.send("LSG", None, url_encode(name), gid)
        for key, entry in entries:
            other = self.server.directory.get(key)
            handle = other.handle if other else key
            words = [f"N={handle}", f"F={url_encode(other.friendly_name if other else key)}"]
            if entry.mask & ListBit.FL:
                words.append(f"C={other.guid if other else key}")
            words.append(str(int(entry.mask)))
            if entry.groups:
                words.append(",".join(entry.groups))
            self.send("LST", None, *words)
            for prop, value in other.phones.items() if other else ():
                self.send("BPR", None, prop, url_encode(value))

    def _chg(self, cmd: Command) -> None:
        user = self._me()
        status = Status.parse(cmd.arg(0))
        if status is None or status is Status.FLN:
            self.send_error(201, cmd.trid)
            return
        if not cmd.arg(1):
            return  # MSNP12 servers ignore a CHG without capabilities: no reply at all
        user.caps = int(cmd.arg(1)) if cmd.arg(1).isdigit() else 0
        user.status = status
        self.send("CHG", cmd.trid, status.value, str(user.caps))
        if not self.first_chg_done:
            self.first_chg_done = True
            for other in self.server.watched_by(user):
                self.show_presence(other, iln_trid=cmd.trid)
        self.server.broadcast_presence(user)

    def show_presence(self, other: FakeUser, iln_trid: int | None = None) -> None:
        """Tell this client what it may see of ``other``, if that changed.

        A contact coming into sight is followed by its personal message (UBX), as real
        servers do after ILN and the first NLN.
        """
        assert self.user is not None
        seen = other.visible_status(self.user.handle)
        view = (seen.value, other.friendly_name, other.caps)
        previous = self.last_seen.get(other.key)
        if previous == view:
            return
        self.last_seen[other.key] = view
        if seen is Status.FLN:
            if previous is not None:
                self.send("FLN", None, other.handle)
            return
        name = "ILN" if iln_trid is not None else "NLN"
        self.send(name, iln_trid, seen.value, other.handle, url_encode(other.friendly_name), str(other.caps))
        if (previous is None or previous[0] == Status.FLN.value) and other.psm:
            self.send("UBX", None, other.handle, payload=build_psm(other.psm))

    def _uux(self, cmd: Command) -> None:
        user = self._me()
        user.psm = parse_psm(cmd.payload or b"").text
        self.send("UUX", cmd.trid, payload=b"")
        self.server.broadcast_psm(user)

    def _prp(self, cmd: Command) -> None:
        user = self._me()
        if cmd.arg(0) == "MFN" and cmd.arg(1):
            user.friendly_name = url_decode(cmd.arg(1))
        elif cmd.arg(1):
            user.phones[cmd.arg(0)] = url_decode(cmd.arg(1))
        self.send("PRP", cmd.trid, cmd.arg(0), cmd.arg(1))
        if cmd.arg(0) == "MFN":
            self.server.broadcast_presence(user)

    def _setting(self, cmd: Command) -> None:
        user = self._me()
        if cmd.name == "BLP":
            user.blp = cmd.arg(0)
        else:
            user.gtc = cmd.arg(0)
        self.send(cmd.name, cmd.trid, cmd.arg(0))

    def _adc(self, cmd: Command) -> None:
        user, t = self._me(), cmd.trid
        lst = ListBit.parse_one(cmd.arg(0))
        fields = {w[:1]: w[2:] for w in cmd.args[1:] if w[1:2] == "="}
        other = self.server.directory.get(fields.get("N", ""))
        if lst is None or lst in (ListBit.RL, ListBit.PL):
            self.send_error(201, t)
            return
        if other is None:
            self.send_error(205, t)
            return
        entry = user.entry(other.handle)
        if entry.mask & lst:
            self.send_error(215, t)
            return
        opposite = {ListBit.AL: ListBit.BL, ListBit.BL: ListBit.AL}.get(lst)
        if opposite is not None and entry.mask & opposite:
            self.send_error(219, t)
            return
        entry.mask |= lst
        if lst is ListBit.FL:
            self.send("ADC", t, "FL", f"N={other.handle}", f"C={other.guid}")
            self.server.added_to_forward_list(user, other)
        else:
            self.send("ADC", t, lst.wire_name, f"N={other.handle}")
            self.server.broadcast_presence(user)

    def _rem(self, cmd: Command) -> None:
        user, t = self._me(), cmd.trid
        lst = ListBit.parse_one(cmd.arg(0))
        target = cmd.arg(1)
        if lst is None or lst is ListBit.RL:
            self.send_error(201, t)
            return
        if lst is ListBit.FL:
            key = next(
                (k for k, e in user.lists.items() if e.mask & ListBit.FL and self._guid_of(k) == target), None
            )
        else:
            key = target.lower() if user.mask_for(target) & lst else None
        if key is None:
            self.send_error(216, t)
            return
        user.entry(key).mask &= ~lst
        self.send("REM", t, lst.wire_name, target)
        other = self.server.directory.get(key)
        if lst is ListBit.FL and other is not None:
            self.server.removed_from_forward_list(user, other)
        elif lst is ListBit.PL and other is not None and other.mask_for(user.handle) & ListBit.FL:
            user.entry(key).mask |= ListBit.RL  # accepted or not, they do have us on their FL
        user.prune()
        self.server.broadcast_presence(user)

    def _xfr(self, cmd: Command) -> None:
        user = self._me()
        if cmd.arg(0) != "SB":
            self.send_error(201, cmd.trid)
            return
        if not self.first_chg_done or user.status is Status.HDN:
            self.send_error(913, cmd.trid)
            return
        token = self.server.new_sb_token(user.handle)
        self.send("XFR", cmd.trid, "SB", f"127.0.0.1:{self.server.sb_port}", "CKI", token)

    def _qry(self, cmd: Command) -> None:
        self.send("QRY", cmd.trid)

    def _guid_of(self, key: str) -> str | None:
        other = self.server.directory.get(key)
        return other.guid if other else None

    def _me(self) -> FakeUser:
        assert self.user is not None
        return self.user
