"""A failed SMSC (re)bind is logged once, as one WARNING naming the SMSC's reason and the
next retry delay: no second line, no ERROR with a reference id for an expected network
failure (it used to be a WARNING from the ESME and an ERROR from the SMS transport)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.config import parse
from gateway.storage import Cipher, Store, create_key_file
from transports.sms.fake_smsc import FakeSmsc
from transports.sms.transport import SmsTransport


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("transports.sms")
        and "bind" in r.getMessage().lower()
        and r.levelno >= logging.INFO
    ]


async def test_each_failed_bind_is_one_warning_with_reason_and_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    create_key_file(tmp_path / "secret.key")
    store = await Store.open(tmp_path / "gw.db", Cipher.from_file(tmp_path / "secret.key"))
    async with FakeSmsc(system_id="gw", password="right") as smsc:
        config = parse(
            {
                "xmpp": {"user_domains": ["example.test"]},
                "storage": {"path": str(tmp_path / "gw.db"), "key_file": str(tmp_path / "secret.key")},
                "sms": {
                    "jid": "sms.example.test", "secret": "s", "service_number": "2020",
                    "smsc": {"host": "127.0.0.1", "port": smsc.port, "system_id": "gw", "password": "badpw1"},
                },
            },
            env={},
        ).sms  # fmt: skip
        assert config is not None
        transport = SmsTransport(config, store.sms)
        transport.esme.start()
        try:
            await smsc.wait_until(lambda: len(_failures(caplog)) >= 2, timeout=10.0)
        finally:
            await transport.esme.close()
        attempts = len(smsc.binds)
    await store.close()

    failures = _failures(caplog)
    assert attempts == 2 and len(failures) == attempts  # one line per failed bind
    for record in failures:
        assert record.levelno == logging.WARNING
        text = record.getMessage()
        assert "ESME_RINVPASWD" in text and "retrying in" in text and "badpw1" not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert transport.link == "bind failed"
