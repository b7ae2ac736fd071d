"""The storage seam's rules: networks own their storage interfaces and never see SQLite.

No module under ``transports/`` (fake servers included) imports ``sqlite3``,
``aiosqlite`` or ``gateway.storage``, nor does the transport contract; and a failure of
the database reaches callers as :class:`gateway.errors.StorageError` with SQLite's own
error as its cause.
"""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest

from gateway.errors import StorageError
from gateway.storage.boundary import Writes
from gateway.storage.writer import WriteResult

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("sqlite3", "aiosqlite", "gateway.storage")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _forbidden(path: Path) -> list[str]:
    return sorted(
        name for name in _imports(path) if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )


def test_no_transport_module_imports_storage_or_sqlite() -> None:
    modules = [*sorted((ROOT / "transports").rglob("*.py")), ROOT / "gateway" / "transport.py"]
    found = {str(p.relative_to(ROOT)): _forbidden(p) for p in modules}
    assert {path: names for path, names in found.items() if names} == {}


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import sqlite3\nfrom gateway.storage.sms import SmsTables\nimport json\n")
    assert _forbidden(module) == ["gateway.storage.sms", "sqlite3"]


class _RefusingWriter:
    """A group writer whose every write fails like a full disk."""

    async def write(self, sql: str, params: object = ()) -> WriteResult:
        raise sqlite3.OperationalError("database or disk is full")


async def test_a_refused_write_is_a_storage_error_caused_by_sqlites() -> None:
    writes = Writes(_RefusingWriter())  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="disk is full") as refused:
        await writes.write("INSERT INTO t VALUES (1)")
    assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
