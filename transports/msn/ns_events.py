"""Events the notification-server state machine (:mod:`.ns`) emits. All frozen, all typed."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LoginFailure
from .status import ListBit, Status


@dataclass(frozen=True, slots=True)
class Group:
    """A contact group from ``LSG <name> <guid>``."""

    guid: str
    name: str


@dataclass(frozen=True, slots=True)
class Contact:
    """One entry of the user's lists as the server last described it.

    ``properties`` holds the phone properties seen in ``BPR`` (``PHH``, ``PHW``, ``PHM``,
    ``MOB``, ``MBE``) with their decoded values.
    """

    handle: str
    friendly_name: str
    guid: str | None
    lists: ListBit
    groups: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def mobile_phone(self) -> str | None:
        """The contact's PHM (mobile number) when the server gave one."""
        return dict(self.properties).get("PHM") or None

    @property
    def pending(self) -> bool:
        """They added us while we were away and wait for our answer (PL set)."""
        return bool(self.lists & ListBit.PL)


@dataclass(frozen=True, slots=True)
class NeedTicket:
    """Log in to Passport with this challenge, then call ``supply_ticket``."""

    challenge: str


@dataclass(frozen=True, slots=True)
class Redirected:
    """``XFR … NS``: close this connection, connect to host:port and start over."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class LoginFailed:
    failure: LoginFailure
    reason: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class LoggedIn:
    handle: str
    verified: bool


@dataclass(frozen=True, slots=True)
class ListSynced:
    """The whole list after ``SYN``: every contact with masks, groups and phone properties."""

    contacts: tuple[Contact, ...]
    groups: tuple[Group, ...]
    friendly_name: str | None
    gtc: str | None
    blp: str | None


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """ILN (``initial``), NLN or FLN about a contact. FLN comes with status FLN."""

    handle: str
    status: Status
    friendly_name: str | None = None
    caps: int | None = None
    initial: bool = False


@dataclass(frozen=True, slots=True)
class PersonalMessageChanged:
    handle: str
    text: str
    current_media: str = ""


@dataclass(frozen=True, slots=True)
class ListChanged:
    """A contact entered or left a list. ``trid`` is ours for an echo, None when pushed.

    ``lists`` is the contact's whole mask after the change.
    """

    lst: ListBit
    handle: str
    added: bool
    lists: ListBit
    friendly_name: str | None = None
    guid: str | None = None
    trid: int | None = None


@dataclass(frozen=True, slots=True)
class ContactPropertyChanged:
    """A ``BPR`` outside the list sync (e.g. a contact's new PHM)."""

    handle: str
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class OwnStatusConfirmed:
    trid: int
    status: Status


@dataclass(frozen=True, slots=True)
class OwnFriendlyNameChanged:
    name: str
    trid: int | None = None


@dataclass(frozen=True, slots=True)
class CommandAccepted:
    """A command with no richer confirmation (UUX, QRY…) was answered positively."""

    trid: int
    command: str


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """A numeric error for one of our commands (``command`` is '' when the trid is unknown)."""

    trid: int | None
    command: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SwitchboardGranted:
    """Answer to ``request_switchboard()`` with the same ``trid``."""

    trid: int
    host: str
    port: int
    auth: str


@dataclass(frozen=True, slots=True)
class Invited:
    """``RNG``: ``caller`` invites us to a switchboard session."""

    session_id: str
    host: str
    port: int
    auth: str
    caller: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class SignedOutElsewhere:
    """``OUT OTH``: another login took over. Do not reconnect automatically."""


@dataclass(frozen=True, slots=True)
class ServerClosed:
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """Local verdict (e.g. no ``QNG`` in time): treat the connection as dead."""

    reason: str


@dataclass(frozen=True, slots=True)
class PeerViolation:
    """The server sent something unusable; it was dropped."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unhandled:
    """A well-formed command we do not act on (kept for logs and counters)."""

    command: str


NsEvent = (
    NeedTicket
    | Redirected
    | LoginFailed
    | LoggedIn
    | ListSynced
    | PresenceChanged
    | PersonalMessageChanged
    | ListChanged
    | ContactPropertyChanged
    | OwnStatusConfirmed
    | OwnFriendlyNameChanged
    | CommandAccepted
    | CommandFailed
    | SwitchboardGranted
    | Invited
    | SignedOutElsewhere
    | ServerClosed
    | ConnectionLost
    | PeerViolation
    | Unhandled
)


def split_host_port(text: str, default_port: int = 1863) -> tuple[str, int]:
    """``host:port`` → (host, port); a bad or missing port gives ``default_port``."""
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    number = int(port) if port.isascii() and port.isdigit() else default_port
    return host, number if 0 < number < 65536 else default_port
