"""Encryption at rest for legacy passwords (Fernet: AES-128-CBC + HMAC-SHA256).

The key lives in a file outside the database (``storage.key_file``), created by
``passerelle init`` with mode 0600. Without it the stored passwords cannot be read.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class KeyError_(Exception):
    """The key file is missing, unreadable, malformed, or does not match the database."""


def create_key_file(path: Path) -> None:
    """Write a new random key readable only by its owner; refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")


class Cipher:
    """Encrypts and decrypts small secrets with the key from ``key_file``."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise KeyError_("the key file does not hold a valid key") from None

    @classmethod
    def from_file(cls, path: Path) -> Cipher:
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            raise KeyError_(f"{path}: key file not found (create one with `passerelle init`)") from None
        except OSError as exc:
            raise KeyError_(f"{path}: cannot read the key file ({exc.strerror})") from None
        try:
            return cls(key)
        except KeyError_:
            raise KeyError_(f"{path}: the key file does not hold a valid key") from None

    def encrypt(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise KeyError_(
                "stored secrets cannot be decrypted: the key file is not the one this database was "
                "created with (restore the matching key file)"
            ) from None
