"""A throwaway Prosody in a temp dir, on free loopback ports, stopped by pid.

Used by the end-to-end tests, ``make demo`` and the benchmarks. Needs the Debian
packages ``prosody`` and ``prosody-modules`` (for ``mod_privilege``, XEP-0356).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.deploy import ComponentSpec, prosody_components

__all__ = ["ComponentSpec", "Prosody", "ProsodyError", "free_port"]


class ProsodyError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prosody:
    """One instance. ``start()`` waits until both ports accept connections."""

    directory: Path
    domain: str = "example.test"
    components: list[ComponentSpec] = field(default_factory=list)
    generational_gc: bool = False
    extra_modules: tuple[str, ...] = ()
    """Modules enabled besides the base set, e.g. ``("carbons",)`` for XEP-0280 message
    carbons, as in Prosody's default configuration (``mod_offline`` needs no entry: Prosody
    loads it by itself)."""
    c2s_port: int = field(default_factory=free_port)
    component_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @property
    def log_path(self) -> Path:
        return self.directory / "prosody.log"

    def write_config(self) -> None:
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        (self.directory / "certs").mkdir(exist_ok=True)
        d = self.directory
        gc = 'gc = { mode = "generational" }' if self.generational_gc else ""
        extra = "".join(f'; "{module}"' for module in self.extra_modules)
        self.config_path.write_text(
            f"""
run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}/certs"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.log_path}" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
component_ports = {{ {self.component_port} }}
component_interfaces = {{ "127.0.0.1" }}
modules_disabled = {{ "s2s"; "s2s_auth_certs" }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "privilege"; "presence"; "message"{extra} }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
{gc}

{prosody_components(self.domain, self.components)}"""
        )

    def start(self, timeout: float = 10.0) -> None:
        if shutil.which("prosody") is None:
            raise ProsodyError("prosody is not installed (apt-get install prosody prosody-modules)")
        if not self.config_path.exists():
            self.write_config()
        self.log_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            ["prosody", "-F", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProsodyError(f"prosody exited at start:\n{self._log_tail()}")
            if "Failed to open server port" in self._log_tail():
                raise ProsodyError(f"prosody could not open its ports:\n{self._log_tail()}")
            if _accepts(self.c2s_port) and _accepts(self.component_port):
                return
            time.sleep(0.05)
        self.stop()
        raise ProsodyError(f"prosody did not start within {timeout} s:\n{self._log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def register(self, user: str, password: str) -> None:
        result = subprocess.run(
            ["prosodyctl", "--config", str(self.config_path), "register", user, self.domain, password],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise ProsodyError(f"prosodyctl register {user} failed: {result.stderr.strip()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
