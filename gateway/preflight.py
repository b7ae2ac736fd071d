"""Everything ``passerelle run`` checks before it opens a socket, as one step.

``check-config`` runs this step and ``run`` runs it first, so a configuration that
``check-config`` passes does not fail at ``run`` for a reason a file could have shown, and
both say it with the same one line naming the key. What only the network can tell (an
address that does not answer, a refused bind) is left to ``run``, which logs it and retries.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.config import Config, ConfigError
from gateway.ops.admin_socket import check_path
from gateway.storage import Cipher, KeyError_
from gateway.storage.migrations import LATEST


def key_cipher(config: Config) -> Cipher:
    """The key file's cipher; a missing or malformed file is a ``storage.key_file`` error."""
    return key_cipher_at(config.storage.key_file)


def key_cipher_at(path: Path) -> Cipher:
    try:
        return Cipher.from_file(path)
    except KeyError_ as exc:
        raise ConfigError(f"storage.key_file: {exc}") from None


def check(config: Config) -> Cipher:
    """Raise :class:`ConfigError` for the first problem ``run`` would meet; return the cipher."""
    cipher = key_cipher(config)
    check_path(config.admin.socket)
    check_database(config.storage.path, cipher)
    _check_transports(config)
    return cipher


def check_database(path: Path, cipher: Cipher) -> None:
    """An existing database must be one this version can use, with this key; a missing one
    must be creatable under its directory. Read-only: checking never creates or migrates."""
    if not path.exists():
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(f"storage.path: {parent} is not a directory, so {path} cannot be created")
        return
    if not path.is_file():
        raise ConfigError(f"storage.path: {path} is not a file")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            query = "SELECT value FROM meta WHERE key = 'key_check'"
            row = conn.execute(query).fetchone() if version else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"storage.path: {path} is not a usable Passerelle database ({exc})") from None
    if version > LATEST:
        raise ConfigError(
            f"storage.path: {path} is at schema version {version}, newer than this Passerelle supports "
            f"({LATEST}); upgrade Passerelle or restore a backup made by this version"
        )
    if row is not None:
        try:
            cipher.decrypt(row[0])
        except KeyError_ as exc:
            raise ConfigError(f"storage.key_file: {exc}") from None


def _check_transports(config: Config) -> None:
    """Build what the transports build from the config at start (no connection is made)."""
    if config.sms is not None:
        from transports.sms.transport import esme_config

        try:
            esme_config(config.sms)
        except ValueError as exc:  # the config loader checks the same limits first
            raise ConfigError(f"sms.smsc: {exc}") from None
