"""``python -m transports.sms.fake_smsc`` runs a usable SMSC and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from transports.sms.esme import Esme, EsmeConfig
from transports.sms.pdu import DeliverSm, SubmitSm

ROOT = Path(__file__).resolve().parents[2]


async def test_fake_smsc_as_a_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "transports.sms.fake_smsc", "--port", "0", "--system-id", "demo",
        "--password", "pw", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])

        async def on_deliver(pdu: DeliverSm) -> int:
            return 0

        esme = Esme(EsmeConfig("127.0.0.1", port, "demo", "pw"), on_deliver)
        esme.start()
        assert await esme.wait_bound(5)
        outcome = await esme.submit(SubmitSm(source_addr="1", destination_addr="2", short_message=b"hi"))
        assert outcome.ok
        await esme.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
