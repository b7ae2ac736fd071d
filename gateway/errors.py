"""The user-facing errors, in one registry.

Each key maps to the XMPP error type and condition and a text template. Code raises
:class:`UserError` with a key; the XMPP boundary turns it into an error reply. Nothing
ever sends an exception's own text to a user: unexpected failures become
``internal-server-error`` with a reference id that is also in the log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

ErrorType = Literal["auth", "cancel", "continue", "modify", "wait"]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    type: ErrorType
    condition: str
    text: str


REGISTRY: dict[str, ErrorSpec] = {
    "not-registered": ErrorSpec(
        "auth", "registration-required", "You are not registered with this gateway; register first."
    ),
    "domain-not-served": ErrorSpec("cancel", "forbidden", "This gateway serves only users of {domains}."),
    "registration-closed": ErrorSpec(
        "cancel", "forbidden", "Registration is closed here; ask the operator to add your account."
    ),
    "admin-only": ErrorSpec("auth", "forbidden", "Only the gateway's administrators may do this."),
    "bad-address": ErrorSpec("modify", "jid-malformed", "{reason}"),
    "bad-form": ErrorSpec("modify", "not-acceptable", "{reason}"),
    "bad-request": ErrorSpec("modify", "bad-request", "{reason}"),
    "bad-credentials": ErrorSpec("auth", "not-authorized", "{reason}"),
    "conflict": ErrorSpec("cancel", "conflict", "{reason}"),
    "recipient-unavailable": ErrorSpec("wait", "recipient-unavailable", "{reason}"),
    "too-long": ErrorSpec(
        "modify", "not-acceptable", "The message is too long: at most {limit} SMS parts are allowed."
    ),
    "empty-message": ErrorSpec(
        "modify",
        "not-acceptable",
        "The message has no text: nothing was sent. Write some text and send it again.",
    ),
    "headline-not-sent": ErrorSpec(
        "cancel",
        "not-acceptable",
        "Notifications (messages of type headline) are not sent on {network}: nothing was sent. "
        "Send it as a chat message.",
    ),
    "quota": ErrorSpec("wait", "resource-constraint", "{reason}"),
    "storage-full": ErrorSpec(
        "wait", "resource-constraint", "The gateway cannot store new messages right now; try again later."
    ),
    "not-supported": ErrorSpec("cancel", "feature-not-implemented", "{what} is not supported here."),
    "no-such-item": ErrorSpec("cancel", "item-not-found", "{reason}"),
    "network-down": ErrorSpec("wait", "remote-server-timeout", "{reason}"),
    "internal": ErrorSpec(
        "cancel", "internal-server-error", "Internal error; quote reference {ref} to the operator."
    ),
}


class UserError(Exception):
    """An error a user may see. ``str()`` is the rendered text, safe to show."""

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.spec = REGISTRY[key]
        self.params = params
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return self.spec.text.format(**self.params)

    @property
    def condition(self) -> str:
        return self.spec.condition

    @property
    def type(self) -> ErrorType:
        return self.spec.type


class StorageError(Exception):
    """Storage failed (refused a write, cannot be read, is not a usable database): the one
    exception storage failures reach the rest of the gateway as, whatever the backend. The
    backend's own error, when there is one, is its ``__cause__``. Its text is for the operator
    (one line), never for a user: a user sees ``storage-full`` or ``internal``."""


class Conflict(StorageError):
    """A legacy identity is already linked to another subscriber."""


def new_reference() -> str:
    """A short id joining a user's error message to the log line that explains it."""
    return secrets.token_hex(4)
