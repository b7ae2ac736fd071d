"""Logging: one line per event, human or JSON. Message bodies and secrets are never
logged at the default level; the error reference ids users see appear in these lines.

Every line at ``error`` or above carries a reference id (``ref``): the one a user was
given when the message already names one (``internal error ref=1a2b3c4d``), else a
fresh one, so an operator can always quote a line. Known secrets (component secrets,
the SMSC password) are masked in whatever is written, as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from gateway.errors import new_reference

REF = re.compile(r"\bref=([0-9a-f]{8})\b")
MASK = "***"


def _reference(record: logging.LogRecord, message: str) -> str | None:
    """The reference id of this line: given, named in the message, or new for errors."""
    given = getattr(record, "ref", None)
    if isinstance(given, str):
        return given
    found = REF.search(message)
    if found:
        return found.group(1)
    if record.levelno >= logging.ERROR:
        ref = new_reference()
        record.__dict__["ref"] = ref  # the same id however many handlers format it
        return ref
    return None


class _Masking(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first, so a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class JsonFormatter(_Masking):
    """One JSON object per line: ts, level, logger, msg, and ref / exc when there are."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.mask(message),
        }
        ref = _reference(record, message)
        if ref:
            entry["ref"] = ref
        if record.exc_info:
            entry["exc"] = self.mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)  # masked before quoting: escapes cannot hide one


class HumanFormatter(_Masking):
    """``2026-01-02 03:04:05,678 ERROR gateway.bridge: what happened ref=1a2b3c4d | ValueError: …``

    Kept to one line: newlines in a message are escaped and an exception is summarised
    (type, text, innermost frame); ``--log-format json`` carries the whole traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"
        ref = _reference(record, message)
        if ref and ref not in message:
            line += f" ref={ref}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            where = ""
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
            line += f" | {type(exc).__name__}: {exc}{where}"
        return self.mask(line.replace("\r", "\\r").replace("\n", "\\n"))


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Log to stderr (journald reads it) at ``level`` in format ``human`` or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else HumanFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    """Change the level of the running logger (``SIGHUP`` applies ``logging.level``)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    # slixmpp logs whole stanzas (bodies) at debug, aiosqlite every query: quieter than ours
    for noisy in ("slixmpp", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def current_level() -> str:
    return logging.getLevelName(logging.getLogger().level).lower()
