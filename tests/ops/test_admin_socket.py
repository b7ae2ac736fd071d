"""The admin socket: one JSON line each way, mode 0600, one gateway per configuration."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError
from gateway.ops.admin_socket import AdminServer, AdminSocketError, NotRunning, request, running_pid


async def handler(command: str, args: dict[str, Any]) -> dict[str, Any]:
    if command == "echo":
        return {"args": args}
    if command == "ping":
        return {"pid": os.getpid()}
    if command == "boom":
        raise RuntimeError("do not show this")
    if command == "status":
        return {"status": {"components": {}}}
    raise LookupError(f"unknown command {command!r}")


async def test_serves_status_with_mode_0600_and_removes_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    server = AdminServer(path, handler)
    await server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        answer = await asyncio.to_thread(request, path, "status")
        assert answer == {"ok": True, "status": {"components": {}}}
        answer = await asyncio.to_thread(request, path, "echo", 5.0, {"subscriber": 7})
        assert answer == {"ok": True, "args": {"subscriber": 7}}
        assert await asyncio.to_thread(running_pid, path) == os.getpid()
        with pytest.raises(AdminSocketError, match="unknown command 'nope'"):
            await asyncio.to_thread(request, path, "nope")
        with pytest.raises(AdminSocketError, match=r"internal error; see the log, ref=[0-9a-f]{8}") as info:
            await asyncio.to_thread(request, path, "boom")
        assert "do not show this" not in str(info.value)
    finally:
        await server.stop()
    assert not path.exists()
    with pytest.raises(NotRunning, match=f"no gateway is running \\(nothing answers on {path}\\)"):
        request(path, "status")
    assert running_pid(path) is None


async def test_a_second_gateway_is_refused_and_a_stale_socket_replaced(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    first = AdminServer(path, handler)
    await first.start()
    try:
        with pytest.raises(ConfigError, match="a gateway is already running on this configuration"):
            await AdminServer(path, handler).start()
    finally:
        await first.stop()
    stale = socket.socket(socket.AF_UNIX)  # bound, never listening: what a crash leaves
    stale.bind(str(path))
    stale.close()
    server = AdminServer(path, handler)
    await server.start()
    await server.stop()


async def test_a_path_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    path.write_text("precious")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        await AdminServer(path, handler).start()
    assert path.read_text() == "precious"
