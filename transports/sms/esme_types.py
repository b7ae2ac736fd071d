"""Values the ESME exchanges with its caller: config, submit outcomes, link events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from transports.sms.pdu import AlertNotification, DeliverSm
from transports.sms.status import Status


@dataclass(frozen=True)
class EsmeConfig:
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    window: int = 10  # submit_sm in flight at most (enquire_link/unbind bypass it)
    max_rate: float | None = None  # submit_sm per second
    enquire_link_s: float = 30.0
    response_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    close_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        """Refuse at construction what the SMSC would refuse at every bind."""
        for name, value, limit in (
            ("system_id", self.system_id, 15),
            ("password", self.password, 8),
            ("system_type", self.system_type, 12),
        ):
            try:
                size = len(value.encode("latin-1"))
            except UnicodeEncodeError:
                raise ValueError(f"SMPP {name} must be Latin-1 text") from None
            if size > limit:
                raise ValueError(f"SMPP {name} is limited to {limit} characters (SMPP 3.4 section 4.1)")
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be positive (or None for no limit)")


@dataclass(frozen=True)
class SubmitOutcome:
    """What became of one submit_sm. ``status`` is None when no answer came."""

    status: int | None
    message_id: str | None
    retryable: bool
    reason: str
    maybe_sent: bool = False

    @property
    def ok(self) -> bool:
        return self.status == Status.ESME_ROK


@dataclass(frozen=True)
class Bound:
    smsc_system_id: str


@dataclass(frozen=True)
class Unbound:
    reason: str


@dataclass(frozen=True)
class BindFailed:
    reason: str
    status: int | None = None  # None: no bind_resp (connection refused, time-out)


LinkEvent = Bound | Unbound | BindFailed
DeliverHandler = Callable[[DeliverSm], Awaitable[int]]
AlertHandler = Callable[[AlertNotification], Awaitable[None]]
