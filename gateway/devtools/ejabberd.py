"""A throwaway ejabberd in a temp dir, on free loopback ports, stopped by pid.

The end-to-end tests run the gateway against it as well as against Prosody. Needs Debian's
``ejabberd`` package (23.01 on Debian 12), but none of its service scripts: the Erlang VM
is started directly (no distribution, so no epmd, no cookie and no node name to clash with
a system instance), with the package's code on ``ERL_LIBS`` and everything it writes (the
Mnesia database, logs, crash dumps) under ``directory``.

Its ``ejabberd.yml`` holds what only a test server needs (a plaintext c2s listener,
in-band registration from loopback for the test users) and includes, with
``include_config_file``, the file :func:`gateway.deploy.ejabberd_snippet` writes: the
very snippet ``passerelle init`` prints.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from gateway.deploy import ComponentSpec, ejabberd_snippet
from gateway.devtools.prosody import Prosody, free_port

__all__ = ["ComponentSpec", "Ejabberd", "EjabberdError", "XmppServer", "ejabberd_libs"]

EBIN_GLOB = "/usr/lib/*/ejabberd-*/ebin/ejabberd.app"


class EjabberdError(RuntimeError):
    pass


def ejabberd_libs() -> Path | None:
    """The directory holding Debian's ``ejabberd-<version>`` code (for ``ERL_LIBS``), or
    None when the package is not installed."""
    found = sorted(glob.glob(EBIN_GLOB))
    return Path(found[-1]).parent.parent.parent if found else None


@dataclass
class Ejabberd:
    """One instance. ``start()`` waits until ejabberd says it started and both ports
    accept connections."""

    directory: Path
    domain: str = "example.test"
    components: list[ComponentSpec] = field(default_factory=list)
    c2s_port: int = field(default_factory=free_port)
    component_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "ejabberd.yml"

    @property
    def snippet_path(self) -> Path:
        """The gateway's part, as ``passerelle init`` prints it (with the test's port)."""
        return self.directory / "passerelle.yml"

    @property
    def log_path(self) -> Path:
        return self.directory / "ejabberd.log"

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.snippet_path.write_text(ejabberd_snippet(self.components, port=self.component_port))
        self.config_path.write_text(
            f"""hosts:
  - {self.domain}
loglevel: info
certfiles: []
listen:
  - port: {self.c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
auth_method: internal
auth_password_format: plain
registration_timeout: infinity
acl:
  test_loopback:
    ip: 127.0.0.0/8
access_rules:
  test_register_from:
    allow: test_loopback
  test_register_anyone:
    allow: all
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_carboncopy: {{}}
  mod_offline: {{}}
  mod_register:
    ip_access: test_register_from
    access: test_register_anyone
include_config_file: {self.snippet_path}
"""
        )

    def start(self, timeout: float = 30.0) -> None:
        libs = ejabberd_libs()
        if libs is None:
            raise EjabberdError(
                "ejabberd is not installed (apt-get install --no-install-recommends ejabberd)"
            )
        if not self.config_path.exists():
            self.write_config()
        self.log_path.unlink(missing_ok=True)
        d = self.directory
        env = {
            **os.environ,
            "ERL_LIBS": str(libs),
            "HOME": str(d),
            "EJABBERD_CONFIG_PATH": str(self.config_path),
            "EJABBERD_LOG_PATH": str(self.log_path),
            "ERL_CRASH_DUMP": str(d / "erl_crash.dump"),
        }
        self.process = subprocess.Popen(
            ["erl", "-noinput", "-mnesia", "dir", f'"{d / "database"}"', "-s", "ejabberd"],
            cwd=d,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self._log_tail()
            if self.process.poll() is not None or "[critical]" in log:
                self.stop()
                raise EjabberdError(f"ejabberd did not start:\n{log}")
            if (
                " is started in the node " in log
                and _accepts(self.c2s_port)
                and _accepts(self.component_port)
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise EjabberdError(f"ejabberd did not start within {timeout} s:\n{self._log_tail()}")

    def stop(self, *, graceful: bool = False) -> None:
        """Stop the VM: SIGKILL by default (the test throws its directory away), SIGTERM
        when ``graceful`` (about a second: Mnesia closes its files for a restart)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop(graceful=True)
        self.start()

    def register(self, user: str, password: str) -> None:
        """Create an account by in-band registration (XEP-0077), which the test config
        allows from loopback only: no ``ejabberdctl`` (it needs the service's node)."""
        stream = (
            f"<stream:stream to='{self.domain}' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        )
        query = (
            f"<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{user}</username>"
            f"<password>{password}</password></query></iq>"
        )
        with socket.create_connection(("127.0.0.1", self.c2s_port), timeout=10) as sock:
            sock.sendall(stream.encode())
            _read_until(sock, re.compile(rb"</stream:features>"))
            sock.sendall(query.encode())
            answer = _read_until(sock, re.compile(rb"<iq[^>]*id='reg'.*?(/>|</iq>)", re.S))
            sock.sendall(b"</stream:stream>")
        if b"type='result'" not in answer:
            raise EjabberdError(f"registering {user} failed: {answer.decode(errors='replace')}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""


def _read_until(sock: socket.socket, pattern: re.Pattern[bytes]) -> bytes:
    data = b""
    while not pattern.search(data):
        chunk = sock.recv(4096)
        if not chunk:
            raise EjabberdError(f"ejabberd closed the stream: {data.decode(errors='replace')}")
        data += chunk
    return data


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


XmppServer: TypeAlias = Prosody | Ejabberd
"""Either throwaway server: the end-to-end helpers use only their ports and ``register``."""
