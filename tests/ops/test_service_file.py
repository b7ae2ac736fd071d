"""The systemd unit an operator installs: its own user, restarts, reload, hardening."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "config" / "passerelle.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_runs_hardened_as_its_own_user_and_reloads_on_hup() -> None:
    s = settings()
    assert s["User"] == ["passerelle"] and s["Group"] == ["passerelle"]
    assert s["Restart"] == ["on-failure"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ExecStart"][0].endswith("passerelle run")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert s["ReadWritePaths"] == ["/var/lib/passerelle"]
    assert int(s["TimeoutStopSec"][0]) >= 20  # the gateway's own shutdown bound is about 15 s
