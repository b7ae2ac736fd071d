"""The running gateway's local admin socket: a Unix socket (mode 0600) speaking one JSON
line each way.

Only the service's own user and root can connect, so the socket needs no other
authentication. Requests are ``{"command": "status"}``, ``{"command": "ping"}``,
``{"command": "reload"}`` or ``{"command": "subscriber-changed", "args": {...}}`` (what
the management commands changed in the database, for the running gateway to apply now);
every answer has ``ok`` and either the result or ``error``.

A socket that answers means a gateway is running on this configuration: a second
gateway refuses to start, and ``db restore`` refuses to replace its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.config import ConfigError
from gateway.errors import new_reference

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (command, args)
MAX_REQUEST = 4096
SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes, NUL included


class NotRunning(Exception):
    """Nothing answers on the admin socket."""


class AdminSocketError(Exception):
    """The socket exists but cannot be used (permissions, a broken answer)."""


def request(
    path: Path, command: str, timeout: float = 10.0, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ask the gateway listening on ``path``; raises :class:`NotRunning` when none is."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"no gateway is running (nothing answers on {path})") from None
        except PermissionError:
            raise AdminSocketError(
                f"{path}: permission denied; run this as the gateway's user (passerelle) or root"
            ) from None
        except OSError as exc:
            raise AdminSocketError(f"{path}: cannot connect ({exc.strerror or exc})") from None
        try:
            asked: dict[str, Any] = {"command": command, **({"args": args} if args else {})}
            sock.sendall(json.dumps(asked).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise AdminSocketError(f"{path}: the gateway did not answer within {timeout:.0f} s") from None
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        raise AdminSocketError(f"{path}: not a Passerelle admin socket (unreadable answer)") from None
    if not answer.get("ok"):
        raise AdminSocketError(f"the gateway refused {command!r}: {answer.get('error', 'no reason given')}")
    return answer


def running_pid(path: Path) -> int | None:
    """The pid of the gateway answering on ``path``, or None when none does."""
    try:
        return int(request(path, "ping", timeout=5.0).get("pid", 0)) or None
    except NotRunning:
        return None


def check_path(path: Path) -> None:
    """Refuse a socket path the kernel cannot bind (``check-config`` asks this too)."""
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ConfigError(
            f"admin.socket: {path} is longer than a Unix socket path may be "
            f"({SUN_PATH_MAX} bytes); set a shorter admin.socket"
        )


class AdminServer:
    """Serves ``handler(command)`` on ``path`` while the gateway runs."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.Server | None = None
        self._inode: int | None = None

    async def start(self) -> None:
        check_path(self.path)
        if self.path.exists():
            if not stat.S_ISSOCK(self.path.stat().st_mode):
                raise ConfigError(f"admin.socket: {self.path} exists and is not a socket")
            try:
                pid = await asyncio.to_thread(running_pid, self.path)
            except AdminSocketError as exc:
                raise ConfigError(f"admin.socket: {exc}") from None
            if pid is not None:
                raise ConfigError(
                    f"admin.socket: a gateway is already running on this configuration (pid {pid}, "
                    f"{self.path}); stop it first"
                )
            self.path.unlink()  # left over by a gateway that did not stop cleanly
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        except OSError as exc:
            raise ConfigError(f"admin.socket: cannot listen on {self.path} ({exc.strerror or exc})") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._inode = self.path.stat().st_ino
        log.info("admin socket listening on %s", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self._inode:  # never remove another gateway's socket
                self.path.unlink()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            try:
                asked = json.loads(line[:MAX_REQUEST])
                command, args = asked["command"], asked.get("args", {})
                if not isinstance(command, str) or not isinstance(args, dict):
                    raise TypeError(command)
            except (ValueError, KeyError, TypeError):
                answer: dict[str, Any] = {"ok": False, "error": 'expected {"command": "...", "args": {...}}'}
            else:
                try:
                    answer = {"ok": True, **await self.handler(command, args)}
                except LookupError as exc:
                    answer = {"ok": False, "error": str(exc.args[0] if exc.args else exc)}
                except Exception:
                    ref = new_reference()
                    log.exception("internal error ref=%s answering admin command %r", ref, command)
                    answer = {"ok": False, "error": f"internal error; see the log, ref={ref}"}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")  # odd types from a transport
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
