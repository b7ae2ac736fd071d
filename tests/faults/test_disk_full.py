"""The gateway's database runs out of space mid-stream, then space comes back.

The database lives on its own small tmpfs (``mount -t tmpfs -o size=16m``; root only, as CI
runs): a filler file takes every free byte for 4 s, while the SMSC stops answering so the
outbox has to grow. The gateway must refuse new messages with a clear error
(``resource-constraint``, "cannot store new messages"), lose none it had accepted, and be
back to normal by itself once the filler is gone. ``PRAGMA max_page_count`` cannot be used:
it is per connection, and the gateway opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import Fault, World, now

pytestmark = pytest.mark.e2e


@pytest.fixture
async def small_disk_world(tmp_path: Path) -> AsyncIterator[World]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs for the database")
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(db_dir)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    w = World(tmp_path, db_dir=db_dir)
    try:
        await w.start()
        yield w
    finally:
        await w.stop()
        subprocess.run(["umount", "-l", str(db_dir)], check=False)


def fill(path: Path) -> int:
    """Take every free byte of the filesystem holding ``path``; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                written += f.write(chunk)
        small = b"\0" * 512
        with contextlib.suppress(OSError):
            while True:
                written += f.write(small)
    return written


async def disk_full(w: World, fault: Fault) -> None:
    filler = w.db_dir / "filler"
    fault.start = now()
    w.smsc.stop_answering(True)  # submits pile up in the outbox while the disk is full
    fault.figures["filler_bytes"] = await asyncio.to_thread(fill, filler)
    await asyncio.sleep(4.0)
    filler.unlink()
    w.smsc.stop_answering(False)
    await w.smsc.drop_connections()  # the silent link is dropped; the gateway rebinds
    fault.end = now()
    assert w.alice is not None
    fault.figures["errors_by_condition"] = dict(w.alice.error_conditions)


async def test_database_out_of_space(small_disk_world: World) -> None:
    w = small_disk_world
    fault = Fault("database disk full for 4 s (SMSC silent meanwhile)")
    await w.stream(fault, disk_full)
    w.check(fault)
    assert w.alice is not None
    refused = [t for t in w.alice.error_texts.values() if "resource-constraint" in t]
    assert refused, f"no message was refused with resource-constraint: {w.alice.error_texts}"
    assert all("cannot store new messages" in t for t in refused)
