"""Notification-server connection as a sans-I/O state machine (MSNP12, TWN login).

Feed what the server sent with :meth:`NotificationConnection.receive_data` (with the current
time), get events back, and write :meth:`data_to_send` to the socket. Keep-alive is driven by
:meth:`get_timer` / :meth:`handle_timer`. No sockets, no clock, no asyncio here.

States, and the only moves between them (this class is the only place that changes them)::

    IDLE --start--> VER --VER ok--> CVR --CVR--> USR_I --USR TWN S--> NEED_TICKET
    NEED_TICKET --supply_ticket--> USR_S --USR OK--> SYNCING --list complete--> LIVE
    any --error during login / XFR NS / OUT / close()--> CLOSED

The first ``CHG`` is sent as soon as the announced number of LSG/LST lines arrived; the
server answers it after the rest of the SYN output, so its reply (or anything that is not a
list line) closes the sync and :class:`ListSynced` is emitted before any ``ILN``.
"""

from __future__ import annotations

from enum import Enum

from . import challenge
from .codec import Command, Direction, ErrorReply, Parser, encode, url_decode, url_encode
from .contacts import ContactBook
from .errors import AUTH_FAILURE_CODES, LoginFailure, describe
from .ns_events import (
    CommandAccepted,
    CommandFailed,
    ConnectionLost,
    Contact,
    ContactPropertyChanged,
    Invited,
    ListSynced,
    LoggedIn,
    LoginFailed,
    NeedTicket,
    NsEvent,
    OwnFriendlyNameChanged,
    OwnStatusConfirmed,
    PeerViolation,
    PersonalMessageChanged,
    PresenceChanged,
    Redirected,
    ServerClosed,
    SignedOutElsewhere,
    SwitchboardGranted,
    Unhandled,
    split_host_port,
)
from .payload import build_psm, parse_psm
from .status import ListBit, Status

DIALECT = "MSNP12"
CLIENT_VERSION = ("0x0409", "winnt", "5.1", "i386", "MSNMSGR", "7.0.0816", "MSMSGS")


class NsState(Enum):
    IDLE = "idle"
    VER = "ver"
    CVR = "cvr"
    USR_I = "usr-i"
    NEED_TICKET = "need-ticket"
    USR_S = "usr-s"
    SYNCING = "syncing"
    LIVE = "live"
    CLOSED = "closed"


_LOGIN_STATES = frozenset({NsState.VER, NsState.CVR, NsState.USR_I, NsState.NEED_TICKET, NsState.USR_S})
_SYNC_LINES = frozenset({"LST", "LSG", "BPR", "GTC", "BLP", "PRP"})


class NotificationConnection:
    """One connection to a notification server for ``handle``."""

    def __init__(
        self,
        handle: str,
        *,
        status: Status = Status.NLN,
        caps: int = 0,
        ping_interval: float = 45.0,
        pong_timeout: float = 30.0,
        sync_timeout: float = 20.0,
    ) -> None:
        self.handle = handle
        self.state = NsState.IDLE
        self._status = status
        self._caps = caps
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._sync_timeout = sync_timeout
        self._parser = Parser(Direction.FROM_SERVER)
        self._out = bytearray()
        self._trid = 0
        self._pending: dict[int, tuple[str, ListBit | None, str]] = {}
        self._book = ContactBook()
        self._settings: dict[str, str] = {}
        self._expected: tuple[int, int] | None = None  # (contacts, groups) announced by SYN
        self._first_chg_trid: int | None = None
        self._sync_deadline: float | None = None
        self._next_ping: float | None = None
        self._pong_deadline: float | None = None

    # --- outgoing bytes and time ---------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes queued for the server since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def _send(
        self,
        name: str,
        *args: str,
        payload: bytes | None = None,
        pending: tuple[ListBit | None, str] = (None, ""),
    ) -> int:
        self._trid += 1
        self._out += encode(name, self._trid, *args, payload=payload)
        self._pending[self._trid] = (name, *pending)
        return self._trid

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next be called, or None."""
        times = [t for t in (self._next_ping, self._pong_deadline, self._sync_deadline) if t]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[NsEvent]:
        """Send a PNG when due; report a dead connection when the QNG is late."""
        if self._pong_deadline is not None and now >= self._pong_deadline:
            self.state = NsState.CLOSED
            self._pong_deadline = self._next_ping = None
            return [ConnectionLost(f"no QNG within {self._pong_timeout:g} s of PNG")]
        events: list[NsEvent] = []
        if self._sync_deadline is not None and now >= self._sync_deadline:
            events += self._finish_sync(now)  # the server announced more than it sent
        if self._next_ping is not None and now >= self._next_ping:
            self._out += b"PNG\r\n"
            self._next_ping = None
            self._pong_deadline = now + self._pong_timeout
        return events

    # --- login -------------------------------------------------------------------------------

    def start(self) -> None:
        """Queue ``VER``: the first thing said on a fresh connection."""
        assert self.state is NsState.IDLE, self.state
        self.state = NsState.VER
        self._send("VER", DIALECT, "CVR0")

    def supply_ticket(self, ticket: str) -> None:
        """Continue the login with the Passport ticket obtained for :class:`NeedTicket`."""
        assert self.state is NsState.NEED_TICKET, self.state
        self.state = NsState.USR_S
        self._send("USR", "TWN", "S", ticket)

    # --- commands (valid once logged in) --------------------------------------------------

    def set_status(self, status: Status) -> int | None:
        """``CHG`` (always with capabilities); None if it will go out with the first CHG."""
        if status is Status.FLN:
            raise ValueError("FLN is not a status one can set; close the session instead")
        self._status = status
        if self._first_chg_trid is None:
            return None
        return self._send("CHG", status.value, str(self._caps))

    def set_personal_message(self, text: str, current_media: str = "") -> int:
        """``UUX`` with our personal message (PSM)."""
        return self._send("UUX", payload=build_psm(text, current_media))

    def set_friendly_name(self, name: str) -> int:
        """``PRP MFN``: our display name."""
        return self._send("PRP", "MFN", url_encode(name))

    def add_to_list(self, lst: ListBit, handle: str, friendly_name: str | None = None) -> int:
        """``ADC``; the server's echo (a :class:`ListChanged` with this trid) confirms it."""
        args: tuple[str, ...]
        if lst is ListBit.FL:
            args = (f"N={handle}", f"F={url_encode(friendly_name or handle)}")
        else:
            args = (f"N={handle}",)
        return self._send("ADC", lst.wire_name, *args, pending=(lst, handle))

    def remove_from_list(self, lst: ListBit, handle_or_guid: str) -> int:
        """``REM``: FL by contact guid (looked up from a handle), the other lists by handle.

        Raises LookupError for FL when the contact's guid is unknown.
        """
        target = handle_or_guid
        contact = self._book.get(handle_or_guid)
        if lst is ListBit.FL and "@" in handle_or_guid:
            if contact is None or not contact.guid:
                raise LookupError(f"no contact guid known for {handle_or_guid}")
            target = contact.guid
        elif lst is not ListBit.FL and "@" not in handle_or_guid:
            target = self._book.handle_for_guid(handle_or_guid) or handle_or_guid
        handle = contact.handle if contact else self._book.handle_for_guid(target) or target
        return self._send("REM", lst.wire_name, target, pending=(lst, handle))

    def request_switchboard(self) -> int:
        """``XFR SB``; answered by :class:`SwitchboardGranted` or :class:`CommandFailed`."""
        return self._send("XFR", "SB")

    def close(self) -> None:
        """Say ``OUT`` and stop."""
        if self.state not in (NsState.IDLE, NsState.CLOSED):
            self._out += b"OUT\r\n"
        self.state = NsState.CLOSED
        self._next_ping = self._pong_deadline = self._sync_deadline = None

    @property
    def contacts(self) -> dict[str, Contact]:
        """The current list, keyed by lower-cased handle (a copy)."""
        return dict(self._book.contacts)

    # --- incoming ----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[NsEvent]:
        """Process bytes from the server."""
        events: list[NsEvent] = []
        for frame in self._parser.feed(data):
            if self.state is NsState.CLOSED:
                break
            if isinstance(frame, Command):
                if self._closes_sync(frame):
                    events += self._finish_sync(now)
                events += self._on_command(frame, now)
            elif isinstance(frame, ErrorReply):
                events += self._on_error(frame)
            else:
                events.append(PeerViolation(frame.reason))
        return events

    def _on_error(self, err: ErrorReply) -> list[NsEvent]:
        name = ""
        if err.trid is not None and err.trid in self._pending:
            name = self._pending.pop(err.trid)[0]
        if self.state in _LOGIN_STATES:
            self.state = NsState.CLOSED
            kind = (
                LoginFailure.BAD_CREDENTIALS if err.code in AUTH_FAILURE_CODES else LoginFailure.SERVER_ERROR
            )
            return [LoginFailed(kind, f"server refused {name or 'login'}: {describe(err.code)}", err.code)]
        return [CommandFailed(err.trid, name, err.code, describe(err.code))]

    def _on_command(self, cmd: Command, now: float) -> list[NsEvent]:
        mine = self._pending.pop(cmd.trid, None) if cmd.trid else None
        match cmd.name:
            case "VER":
                return self._on_ver(cmd)
            case "CVR" if self.state is NsState.CVR:
                self.state = NsState.USR_I
                self._send("USR", "TWN", "I", self.handle)
                return []
            case "USR":
                return self._on_usr(cmd)
            case "XFR":
                return self._on_xfr(cmd)
            case "SYN":
                counts = [int(a) if _digits(a) else 0 for a in (cmd.arg(2), cmd.arg(3))]
                self._expected = (counts[0], counts[1])
                self._sync_deadline = now + self._sync_timeout
                self._maybe_first_chg()
                return []
            case "LSG":
                self._book.apply_lsg(cmd)
                self._maybe_first_chg()
                return []
            case "LST":
                self._book.apply_lst(cmd)
                self._maybe_first_chg()
                return []
            case "BPR":
                return self._on_bpr(cmd)
            case "GTC" | "BLP":
                self._settings[cmd.name] = cmd.arg(0)
                return []
            case "PRP":
                return self._on_prp(cmd)
            case "CHG":
                status = Status.parse(cmd.arg(0)) or self._status
                return [OwnStatusConfirmed(cmd.trid or 0, status)]
            case "ILN" | "NLN":
                return self._on_presence(cmd)
            case "FLN":
                return [PresenceChanged(cmd.arg(0), Status.FLN)]
            case "UBX":
                msg = parse_psm(cmd.payload or b"")
                return [PersonalMessageChanged(cmd.arg(0), msg.text, msg.current_media)]
            case "ADC" | "REM":
                return [self._book.apply_change(cmd, mine[2] if mine else None, cmd.trid if mine else None)]
            case "RNG":
                host, port = split_host_port(cmd.arg(1), 1864)
                return [Invited(cmd.arg(0), host, port, cmd.arg(3), cmd.arg(4), url_decode(cmd.arg(5)))]
            case "QNG":
                self._pong_deadline = None
                hint = int(cmd.arg(0)) if _digits(cmd.arg(0)) else 0
                interval = min(self._ping_interval, hint) if hint > 0 else self._ping_interval
                self._next_ping = now + interval
                return []
            case "CHL":
                self._send("QRY", challenge.PRODUCT_ID, payload=challenge.answer(cmd.arg(0)).encode())
                return []
            case "OUT":
                self.state = NsState.CLOSED
                if cmd.arg(0) == "OTH":
                    return [SignedOutElsewhere()]
                return [ServerClosed(f"server sent OUT {cmd.arg(0)}".strip())]
            case "UUX" | "QRY" if cmd.trid is not None:
                return [CommandAccepted(cmd.trid, cmd.name)]
            case "MSG" | "SBS" | "NOT" | "GCF" | "IPG":
                return []  # Hotmail profile, mail notices, config: nothing for a gateway
        return [Unhandled(cmd.name)]

    def _on_ver(self, cmd: Command) -> list[NsEvent]:
        if self.state is not NsState.VER:
            return [Unhandled("VER")]
        offered = [a for a in cmd.args if a.upper().startswith("MSNP")]
        if DIALECT in (a.upper() for a in offered):
            self.state = NsState.CVR
            self._send("CVR", *CLIENT_VERSION, self.handle)
            return []
        self.state = NsState.CLOSED
        reason = (
            f"server only offers {', '.join(offered)}; this gateway needs {DIALECT}"
            if offered
            else f"server accepts none of the offered dialects ({DIALECT})"
        )
        return [LoginFailed(LoginFailure.DIALECT, reason)]

    def _on_usr(self, cmd: Command) -> list[NsEvent]:
        if self.state is NsState.USR_I and cmd.arg(0) == "TWN" and cmd.arg(1) == "S":
            self.state = NsState.NEED_TICKET
            return [NeedTicket(cmd.arg(2))]
        if self.state is NsState.USR_S and cmd.arg(0) == "OK":
            self.state = NsState.SYNCING
            self._book.clear()
            self._send("SYN", "0", "0")
            return [LoggedIn(cmd.arg(1) or self.handle, cmd.arg(2) == "1")]
        if self.state in _LOGIN_STATES:
            self.state = NsState.CLOSED
            return [LoginFailed(LoginFailure.PROTOCOL, f"unexpected USR {' '.join(cmd.args)}")]
        return [Unhandled("USR")]

    def _on_xfr(self, cmd: Command) -> list[NsEvent]:
        host, port = split_host_port(cmd.arg(1))
        if cmd.arg(0) == "NS":
            self.state = NsState.CLOSED
            return [Redirected(host, port)]
        if cmd.arg(0) == "SB" and cmd.trid is not None:
            host, port = split_host_port(cmd.arg(1), 1864)
            return [SwitchboardGranted(cmd.trid, host, port, cmd.arg(3))]
        return [Unhandled("XFR")]

    # --- list sync -----------------------------------------------------------------------

    def _on_bpr(self, cmd: Command) -> list[NsEvent]:
        changed = self._book.apply_bpr(cmd)
        if changed is None or self.state is NsState.SYNCING:
            return []
        return [ContactPropertyChanged(changed[0].handle, changed[1], changed[2])]

    def _on_prp(self, cmd: Command) -> list[NsEvent]:
        self._settings["PRP " + cmd.arg(0)] = url_decode(cmd.arg(1))
        if cmd.arg(0) == "MFN" and (cmd.trid is not None or self.state is NsState.LIVE):
            return [OwnFriendlyNameChanged(url_decode(cmd.arg(1)), cmd.trid)]
        return []

    def _closes_sync(self, cmd: Command) -> bool:
        """Whether ``cmd`` (not a list line) shows that the announced list is complete."""
        if self.state is not NsState.SYNCING or (cmd.name in _SYNC_LINES and cmd.trid is None):
            return False
        return self._sync_complete()

    def _sync_complete(self) -> bool:
        if self._expected is None:
            return False
        n_contacts, n_groups = self._expected
        return len(self._book.contacts) >= n_contacts and len(self._book.groups) >= n_groups

    def _maybe_first_chg(self) -> None:
        if self._first_chg_trid is None and self._sync_complete():
            self._first_chg_trid = self._send("CHG", self._status.value, str(self._caps))

    def _finish_sync(self, now: float) -> list[NsEvent]:
        if self._first_chg_trid is None:
            self._first_chg_trid = self._send("CHG", self._status.value, str(self._caps))
        self.state = NsState.LIVE
        self._sync_deadline = None
        self._expected = None
        self._next_ping = now + self._ping_interval
        return [
            ListSynced(
                tuple(self._book.contacts.values()),
                tuple(self._book.groups),
                self._settings.get("PRP MFN"),
                self._settings.get("GTC"),
                self._settings.get("BLP"),
            )
        ]

    # --- live notifications ---------------------------------------------------------------

    def _on_presence(self, cmd: Command) -> list[NsEvent]:
        status = Status.parse(cmd.arg(0))
        if status is None:
            return [PeerViolation(f"{cmd.name} with unknown status {cmd.arg(0)!r}")]
        caps = int(cmd.arg(3)) if _digits(cmd.arg(3)) else None
        return [
            PresenceChanged(
                cmd.arg(1), status, url_decode(cmd.arg(2, cmd.arg(1))), caps, initial=cmd.name == "ILN"
            )
        ]


def _digits(word: str) -> bool:
    """ASCII decimal digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses."""
    return word.isascii() and word.isdigit()
