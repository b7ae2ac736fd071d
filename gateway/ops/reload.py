"""What a configuration reload (``SIGHUP``) may change in a running gateway. Pure.

:func:`plan` compares the running configuration with the file as it is now and returns
the configuration to run with: the keys in :data:`LIVE` take their new values, every
other change is listed as needing a restart and keeps its running value. Secret values
are never shown, only that they changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config, Secret

LIVE: tuple[str, ...] = (
    "xmpp.admins",
    "xmpp.user_domains",
    "xmpp.registration",
    "logging.level",
    "sms.limits.per_user_per_hour",
    "sms.limits.per_user_per_day",
    "sms.limits.global_per_day",
)
"""Keys applied without a restart: read on every use, nothing to reconnect."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    config: Config
    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]

    def summary(self) -> str:
        """One log line (and the answer to the ad-hoc command)."""
        if not self.applied and not self.needs_restart:
            return "configuration reloaded: nothing changed"
        parts = []
        if self.applied:
            parts.append("applied " + ", ".join(self.applied))
        if self.needs_restart:
            parts.append("needs a restart (still running the old value): " + ", ".join(self.needs_restart))
        return "configuration reloaded: " + "; ".join(parts)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type | Secret):
        for f in dataclasses.fields(value):
            if f.name != "source":
                _flatten(getattr(value, f.name), f"{prefix}.{f.name}" if prefix else f.name, out)
    else:
        out[prefix] = value
    return out


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, Path):
        return str(value)
    return "none" if value is None else str(value)


def _replace(config: Any, dotted: str, value: Any) -> Any:
    head, _, rest = dotted.partition(".")
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: _replace(getattr(config, head), rest, value)})


def _section_of(key: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """A key inside a section that appeared or vanished is reported as the section."""
    parts = key.split(".")
    for n in range(1, len(parts)):
        top = ".".join(parts[:n])
        if (top in old and old[top] is None) or (top in new and new[top] is None):
            return top
    return key


def plan(running: Config, reread: Config) -> ReloadPlan:
    old, new = _flatten(running, "", {}), _flatten(reread, "", {})
    config = running
    applied: list[str] = []
    restart: dict[str, None] = {}
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        section = _section_of(key, old, new)
        if section != key:
            restart[f"{section} (section added or removed)"] = None
            continue
        if isinstance(before, Secret) or isinstance(after, Secret):
            change = f"{key} (changed)"
        else:
            change = f"{key} ({_show(before)} → {_show(after)})"
        if key in LIVE:
            config = _replace(config, key, after)
            applied.append(change)
        else:
            restart[change] = None
    return ReloadPlan(config, tuple(applied), tuple(restart))
