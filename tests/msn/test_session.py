"""MsnSession against the fake server: alice, bob and friends, over loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from transports.msn.chat import DeliveryStatus
from transports.msn.client import (
    CommandError,
    Disconnected,
    LoginError,
    MsnSession,
    Reconnected,
)
from transports.msn.errors import LoginFailure
from transports.msn.fake_directory import guid_for
from transports.msn.fake_server import FakeMsnServer
from transports.msn.ns_events import (
    ListChanged,
    ListSynced,
    PersonalMessageChanged,
    PresenceChanged,
    SignedOutElsewhere,
)
from transports.msn.payload import MAX_MSG_PAYLOAD
from transports.msn.sb import MessageReceived, TypingReceived
from transports.msn.status import ListBit, Status

from .conftest import Recorder, config_for


async def test_login_syncs_masks_groups_and_phones(connect: Any) -> None:
    _, alice = await connect("alice@example.com")
    [synced] = alice.of_type(ListSynced)
    assert synced.friendly_name == "Alice"
    contacts = {c.handle: c for c in synced.contacts}
    bob = contacts["bob@example.com"]
    assert bob.lists == ListBit.FL | ListBit.AL | ListBit.RL
    assert bob.friendly_name == "Bob B"
    assert bob.guid == guid_for("bob@example.com")
    assert bob.mobile_phone == "+33612345678"
    assert [g.name for g in synced.groups] == ["Friends"]
    assert bob.groups == (synced.groups[0].guid,)
    assert contacts["erin@example.com"].lists == 19 and contacts["erin@example.com"].pending
    assert contacts["dave@example.com"].lists == ListBit.RL
    assert contacts["dave@example.com"].guid is None


async def test_bad_password_is_bad_credentials(server: FakeMsnServer) -> None:
    session = MsnSession(config_for(server, "alice@example.com", "wrong"), Recorder())
    with pytest.raises(LoginError) as err:
        await session.login()
    assert err.value.failure is LoginFailure.BAD_CREDENTIALS
    assert "wrong" not in err.value.reason
    await session.close()


async def test_dialect_refused(server: FakeMsnServer) -> None:
    server.dialects = ("MSNP8",)
    session = MsnSession(config_for(server, "alice@example.com"), Recorder())
    with pytest.raises(LoginError) as err:
        await session.login()
    assert err.value.failure is LoginFailure.DIALECT
    assert "server accepts none" in err.value.reason or "MSNP8" in err.value.reason
    await session.close()


async def test_server_error_code_while_refusing_logins(server: FakeMsnServer) -> None:
    server.refuse_logins(600, duration=30)
    session = MsnSession(config_for(server, "alice@example.com"), Recorder())
    with pytest.raises(LoginError) as err:
        await session.login()
    assert (err.value.failure, err.value.code) == (LoginFailure.SERVER_ERROR, 600)
    await session.close()


async def test_redirect_is_followed(server: FakeMsnServer, connect: Any) -> None:
    server.redirect_first_login = True
    _, alice = await connect("alice@example.com")
    assert alice.of_type(ListSynced)
    assert "alice@example.com" in server.redirected_handles


async def test_unreachable_advertised_login_url_and_override(server: FakeMsnServer, connect: Any) -> None:
    server.advertised_login_url = "http://127.0.0.1:9/login"
    session = MsnSession(config_for(server, "alice@example.com"), Recorder())
    with pytest.raises(LoginError) as err:
        await session.login()
    assert err.value.failure is LoginFailure.UNREACHABLE
    assert "http://127.0.0.1:9/login" in err.value.reason
    await session.close()
    _, alice = await connect("alice@example.com", login_url=server.login_url)
    assert alice.of_type(ListSynced)


async def test_presence_and_personal_message_both_ways(connect: Any) -> None:
    _, bob_events = await connect("bob@example.com")
    alice, alice_events = await connect("alice@example.com", personal_message="On mobile")
    await alice_events.wait_for(
        lambda e: isinstance(e, PresenceChanged) and e.handle == "bob@example.com" and e.status is Status.NLN
    )
    await bob_events.wait_for(
        lambda e: (
            isinstance(e, PresenceChanged) and e.handle == "alice@example.com" and e.status is Status.NLN
        )
    )
    await bob_events.wait_for(lambda e: e == PersonalMessageChanged("alice@example.com", "On mobile"))
    alice.set_presence(Status.AWY, "Gone <fishing> & back")
    await bob_events.wait_for(lambda e: isinstance(e, PresenceChanged) and e.status is Status.AWY)
    await bob_events.wait_for(
        lambda e: e == PersonalMessageChanged("alice@example.com", "Gone <fishing> & back")
    )
    alice.set_presence(Status.HDN)
    await bob_events.wait_for(lambda e: isinstance(e, PresenceChanged) and e.status is Status.FLN)


async def test_chat_both_ways_long_and_typing(server: FakeMsnServer, connect: Any) -> None:
    bob, bob_events = await connect("bob@example.com")
    alice, alice_events = await connect("alice@example.com")
    result = await alice.send_message("bob@example.com", "Grüß dich, Bob 👋")
    assert result.ok, result
    got = await bob_events.wait_for(lambda e: isinstance(e, MessageReceived))
    assert isinstance(got, MessageReceived)
    assert (got.sender, got.text) == ("alice@example.com", "Grüß dich, Bob 👋")

    alice.send_typing("bob@example.com")
    await bob_events.wait_for(lambda e: e == TypingReceived("alice@example.com"))

    long_text = "".join(f"{i} ünïcødé ✓ " for i in range(600))
    assert len(long_text.encode()) > 3 * MAX_MSG_PAYLOAD
    result = await alice.send_message("bob@example.com", long_text)
    assert result.ok, result
    assert all(len(body) <= MAX_MSG_PAYLOAD for _, _, body in server.messages)

    async def reassembled() -> str:
        while True:
            texts = [e.text for e in bob_events.of_type(MessageReceived)][1:]
            if "".join(texts) == long_text:
                return "".join(texts)
            await asyncio.sleep(0.01)

    assert await asyncio.wait_for(reassembled(), 5) == long_text

    reply = await bob.send_message("alice@example.com", "Bien reçu")
    assert reply.ok
    await alice_events.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "Bien reçu")
    assert len(server.sb_sessions) == 1  # bob answered on the switchboard alice opened


async def test_offline_contact_gives_217(server: FakeMsnServer, connect: Any) -> None:
    alice, _ = await connect("alice@example.com")
    result = await alice.send_message("carol@example.com", "are you there?")
    assert (result.status, result.code) == (DeliveryStatus.OFFLINE, 217)
    _, _ = await connect("bob@example.com")
    server.force_217("bob@example.com")
    result = await alice.send_message("bob@example.com", "hello?")
    assert result.status is DeliveryStatus.OFFLINE


async def test_contact_who_left_is_called_back(server: FakeMsnServer, connect: Any) -> None:
    bob, bob_events = await connect("bob@example.com")
    alice, _ = await connect("alice@example.com")
    assert (await alice.send_message("bob@example.com", "first")).ok
    await bob_events.wait_for(lambda e: isinstance(e, MessageReceived))
    await bob.end_chat("alice@example.com")  # bob leaves: alice's switchboard gets BYE
    await asyncio.sleep(0.05)
    assert (await alice.send_message("bob@example.com", "second")).ok
    got = await bob_events.wait_for(lambda e: isinstance(e, MessageReceived) and e.text == "second")
    assert got is not None
    assert [r for _, r, b in server.messages if b.endswith(b"second")] == [("bob@example.com",)]


async def test_list_changes_confirmed_and_seen_by_the_other_side(server: FakeMsnServer, connect: Any) -> None:
    _, dave_events = await connect("dave@example.com")
    alice, _ = await connect("alice@example.com")
    echo = await alice.add_to_list(ListBit.FL, "dave@example.com", "Dave")
    assert echo.guid == guid_for("dave@example.com") and echo.lists == ListBit.FL | ListBit.RL
    await dave_events.wait_for(
        lambda e: (
            isinstance(e, ListChanged) and e.added and e.lst is ListBit.RL and e.handle == "alice@example.com"
        )
    )
    await alice.add_to_list(ListBit.AL, "dave@example.com")
    removed = await alice.remove_from_list(ListBit.FL, "dave@example.com")
    assert not removed.added and removed.lists == ListBit.AL | ListBit.RL
    await dave_events.wait_for(lambda e: isinstance(e, ListChanged) and not e.added and e.lst is ListBit.RL)
    with pytest.raises(CommandError) as err:
        await alice.add_to_list(ListBit.FL, "nobody@example.com")
    assert err.value.code == 205
    # accepting a pending contact: REM PL, after which the server lists them with RL
    await alice.remove_from_list(ListBit.PL, "erin@example.com")
    alice_record = server.directory.get("alice@example.com")
    assert alice_record is not None
    assert alice_record.mask_for("erin@example.com") == ListBit.FL | ListBit.AL | ListBit.RL


async def test_dropped_connection_relogs_in_with_backoff_and_full_sync(server: FakeMsnServer) -> None:
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0.01)

    events = Recorder()
    session = MsnSession(
        config_for(server, "alice@example.com", backoff_initial=1.0, backoff_max=4.0),
        events,
        sleep=fake_sleep,
    )
    await session.login()
    try:
        server.refuse_logins(500, duration=0.3)
        await server.drop_connections("alice@example.com")
        lost = await events.wait_for(lambda e: isinstance(e, Disconnected))
        assert isinstance(lost, Disconnected) and lost.reconnecting
        back = await events.wait_for(lambda e: isinstance(e, Reconnected))
        assert isinstance(back, Reconnected) and back.attempts >= 2
        assert len(events.of_type(ListSynced)) == 2
        assert all(0.5 * min(4.0, 2**i) <= d <= min(4.0, 2**i) for i, d in enumerate(delays))
        assert (await session.add_to_list(ListBit.BL, "dave@example.com")).added
    finally:
        await session.close()


async def test_signed_out_elsewhere_is_not_fought(server: FakeMsnServer, connect: Any) -> None:
    _, first = await connect("alice@example.com")
    _, second = await connect("alice@example.com")
    await first.wait_for(lambda e: isinstance(e, SignedOutElsewhere))
    gone = await first.wait_for(lambda e: isinstance(e, Disconnected))
    assert isinstance(gone, Disconnected) and not gone.reconnecting
    await asyncio.sleep(0.2)
    assert not second.of_type(SignedOutElsewhere) and not second.of_type(Disconnected)
    assert len(first.of_type(ListSynced)) == 1
